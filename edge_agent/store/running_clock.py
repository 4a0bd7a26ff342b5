"""The kiosk's running time: a monotonic clock whose total is kept in the file, so that it goes
on across restarts. Records, fingerprints and deliveries age by it (edge_agent/store/outbox.py).

Never the wall clock, which on a Pi jumps by days or decades (no RTC; NTP steps it): a jump
forward would expire every undelivered event and forget every fingerprint (so a cuff's replayed
memory would be saved again, a duplicate), a jump back would keep records for ever.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import bindparam, func, update
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlmodel import Field, Session, SQLModel

from edge_agent.store.prepared import Prepared


class OutboxClock(SQLModel, table=True):
    """The running time so far, in seconds: one row (made by the migrations), written by
    deliveries, pruning, eviction and closing. A save writes its running time in its record
    instead, a page less per save: the newest record carries the clock on."""

    __tablename__ = "outbox_clock"

    id: int = Field(default=1, primary_key=True)
    running_s: float = 0.0


_CLOCK = OutboxClock.__table__  # type: ignore[attr-defined]
# An UPDATE of the one row (a merge's SELECT-then-INSERT races between threads); max(): writers
# in two threads may commit out of order.
_TICK = update(_CLOCK).where(_CLOCK.c.id == 1).values(running_s=func.max(_CLOCK.c.running_s, bindparam("running")))
_TICK_PREPARED = Prepared(_TICK)


class RunningClock:
    def __init__(self, session: Session, *, carried: float, monotonic: Callable[[], float]) -> None:
        """Go on from the larger of the stored row and `carried`, the running time of the newest
        record (written after the row, if the kiosk lost power rather than closing)."""
        stored = session.get(OutboxClock, 1)
        assert stored is not None, "the migrations make the clock's row"
        self._at_open = max(stored.running_s, carried)
        self._monotonic = monotonic
        self._monotonic_at_open = monotonic()

    def running_s(self) -> float:
        return self._at_open + max(0.0, self._monotonic() - self._monotonic_at_open)

    def tick(self, session: Session) -> float:
        """The running time now, written in `session`: it commits with the caller's change."""
        running = self.running_s()
        session.execute(_TICK, {"running": running})
        return running

    def tick_on(self, cursor: DBAPICursor) -> None:
        """The same, on a DBAPI cursor in the caller's transaction (a save that evicts)."""
        _TICK_PREPARED.run(cursor, {"running": self.running_s()})
