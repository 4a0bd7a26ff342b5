"""This bridge worker's own connection to the broker, as the API and the jobs need to know it.

While a worker cannot hear the broker, what it last stored of each kiosk's status is stale: a
kiosk may have gone offline meanwhile, or come back. So the API shows kiosks "unknown" rather
than "online" (issue 18: a dashboard said online all through a broker outage), and the
heartbeat watchdog does not take the worker's own deafness for kiosks' silence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class LinkState:
    connected: bool
    since: datetime  # when it connected (subscribed) or lost the connection; the worker's start before either


class BrokerLink:
    """Set by the ingest (paho's thread), read by the API and the jobs (theirs)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state = LinkState(connected=False, since=clock())

    def connected(self) -> None:
        self._set(True)

    def lost(self) -> None:
        self._set(False)

    def _set(self, connected: bool) -> None:
        with self._lock:
            if self._state.connected != connected:
                self._state = LinkState(connected, self._clock())

    @property
    def state(self) -> LinkState:
        with self._lock:
            return self._state

    def hearing_since(self) -> datetime | None:
        """Since when the worker has heard the broker without a break; None while it does not."""
        state = self.state
        return state.since if state.connected else None
