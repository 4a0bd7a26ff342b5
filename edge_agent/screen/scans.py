"""Identifications made by a serial card or QR reader, held for the screen to claim.

A reader's number becomes a pseudonym the moment it is read (edge_agent/readers.py); the screen
is told only that a scan happened, with a one-time token (the desk's events, `scan`), and begins
a measurement with that token as if the number had been typed: one swipe, one gesture. The
number never reaches the page, and a token unclaimed within `ttl_s` is forgotten, so a card
swiped and walked away from identifies nobody later.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from contract.pseudonym import IdentifierKind
from edge_agent.screen.measurement import DeskEvent

# Long enough for a page to hear of a scan and answer; short enough that nobody else claims it.
SCAN_TTL_S = 30.0
# Scans not yet claimed, at most: a reader left sending (a card taped on) must not grow memory.
MAX_PENDING = 8


@dataclass(frozen=True, slots=True, repr=False)
class Scan:
    kind: IdentifierKind
    pseudonym: str
    since: float


@dataclass
class ScanBox:
    announce: Callable[[DeskEvent], None]  # MeasurementDesk.announce: to every open screen
    ttl_s: float = SCAN_TTL_S
    monotonic: Callable[[], float] = time.monotonic
    _pending: dict[str, Scan] = field(default_factory=dict)

    def offer(self, kind: IdentifierKind, pseudonym: str) -> None:
        self._drop_stale()
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        token = secrets.token_urlsafe(16)
        self._pending[token] = Scan(kind, pseudonym, self.monotonic())
        self.announce(DeskEvent("scan", {"token": token, "kind": kind}))

    def refused(self, reason: str) -> None:
        """A reader read something that is no identifier (pseudonym.IdentifierError's reason):
        the screen says so, as it would for a number typed wrong."""
        self.announce(DeskEvent("scan", {"error": reason}))

    def claim(self, token: str) -> Scan | None:
        """The scan behind `token`, once; None if there is none (claimed, expired, never made)."""
        self._drop_stale()
        return self._pending.pop(token, None)

    def _drop_stale(self) -> None:
        now = self.monotonic()
        for token in [t for t, scan in self._pending.items() if now - scan.since > self.ttl_s]:
            del self._pending[token]
