"""The 24-hour love relay station's book: who is inside, by pseudonym, and the check-in and
check-out events that tell the cloud.

It lives in the outbox's SQLite file, like the laundry ledger, so a visit's row and the event
about it commit together: a worker told "checked in" has an event in the outbox, and a crash
between the two cannot leave one without the other.

One open visit per pseudonym: tapping "check in" twice is answered "already inside", not
counted twice. A visit not closed within `max_stay` no longer counts as inside; `expire` closes
it with a `relay_checkout` event of reason `expired`, so the cloud's occupancy agrees.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import Index, text
from sqlmodel import Field, Session, SQLModel, col, func, select

from contract.payloads import RelayCheckinEvent, RelayCheckoutEvent, RelayMethod
from contract.topics import EventType, KioskTopics
from edge_agent.store.outbox import Outbox

log = logging.getLogger(__name__)


class RelayVisit(SQLModel, table=True):
    __tablename__ = "relay_visits"
    # The database itself allows one open visit per pseudonym, so two taps racing each other
    # cannot both check in.
    __table_args__ = (
        Index("uq_relay_one_open_visit", "subject", unique=True, sqlite_where=text("checked_out_at IS NULL")),
    )

    id: str = Field(primary_key=True, max_length=36)
    subject: str = Field(index=True, max_length=64, description="pseudonym; never the digits")
    method: str = Field(max_length=16)
    checked_in_at: datetime = Field(index=True)
    checked_out_at: datetime | None = Field(default=None, index=True)
    reason: str | None = Field(default=None, max_length=16)


@dataclass(frozen=True, slots=True)
class RelayAnswer:
    """What the worker is told."""

    outcome: Literal["checked_in", "already_inside", "checked_out", "not_inside"]
    since: datetime | None  # when the visit began
    stay_s: float | None  # for a check-out
    inside: int


def _aware(moment: datetime) -> datetime:
    # SQLite gives datetimes back without their zone; we only ever store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RelayBook:
    def __init__(
        self,
        outbox: Outbox,
        topics: KioskTopics,
        *,
        max_stay: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        saved: Callable[[], None] = lambda: None,
    ) -> None:
        """`saved` is called after an event is committed (to wake the uplink)."""
        self._outbox = outbox
        self._topics = topics
        self._max_stay = max_stay
        self._clock = clock
        self._saved = saved

    def inside(self) -> int:
        with self._outbox.unit_of_work() as session:
            return self._inside(session, self._clock())

    def _inside(self, session: Session, now: datetime) -> int:
        statement = select(func.count()).select_from(RelayVisit).where(
            col(RelayVisit.checked_out_at).is_(None), col(RelayVisit.checked_in_at) > now - self._max_stay
        )
        return int(session.exec(statement).one())

    def _open_visit(self, session: Session, subject: str) -> RelayVisit | None:
        return session.exec(
            select(RelayVisit).where(RelayVisit.subject == subject, col(RelayVisit.checked_out_at).is_(None))
        ).first()

    def check_in(self, subject: str, method: RelayMethod) -> RelayAnswer:
        now = self._clock()
        with self._outbox.unit_of_work() as session:
            visit = self._open_visit(session, subject)
            if visit is not None and _aware(visit.checked_in_at) > now - self._max_stay:
                return RelayAnswer("already_inside", _aware(visit.checked_in_at), None, self._inside(session, now))
            if visit is not None:  # a visit of yesterday never checked out: closed first
                self._close(session, visit, now, "expired")
            visit = RelayVisit(id=str(uuid.uuid4()), subject=subject, method=method, checked_in_at=now)
            session.add(visit)
            session.flush()
            inside = self._inside(session, now)
            event = RelayCheckinEvent(visit_id=uuid.UUID(visit.id), subject=subject, method=method, inside=inside)
            # Kept like a health reading, even over the budget (outbox.record_class_of).
            self._outbox.add(session, self._topics.event(EventType.RELAY_CHECKIN), event)
            session.commit()
        self._saved()
        return RelayAnswer("checked_in", now, None, inside)

    def check_out(self, subject: str) -> RelayAnswer:
        """`subject` ends their visit; 'not_inside' if they have none (or it expired)."""
        now = self._clock()
        with self._outbox.unit_of_work() as session:
            visit = self._open_visit(session, subject)
            if visit is None or _aware(visit.checked_in_at) <= now - self._max_stay:
                if visit is not None:
                    self._close(session, visit, now, "expired")
                    session.commit()
                    self._saved()
                return RelayAnswer("not_inside", None, None, self._inside(session, now))
            since = _aware(visit.checked_in_at)
            stay_s = self._close(session, visit, now, "checked_out")
            session.commit()
            inside = self._inside(session, now)
        self._saved()
        return RelayAnswer("checked_out", since, stay_s, inside)

    def expire(self) -> int:
        """Close every visit past the maximum stay, each with its event; how many."""
        now = self._clock()
        with self._outbox.unit_of_work() as session:
            stale = list(
                session.exec(
                    select(RelayVisit).where(
                        col(RelayVisit.checked_out_at).is_(None), col(RelayVisit.checked_in_at) <= now - self._max_stay
                    )
                )
            )
            for visit in stale:
                self._close(session, visit, now, "expired")
            session.commit()
        if stale:
            log.info("relay station: %d visit(s) past the maximum stay closed as expired", len(stale))
            self._saved()
        return len(stale)

    def _close(self, session: Session, visit: RelayVisit, now: datetime, reason: Literal["checked_out", "expired"]) -> float:
        # A Pi's clock can step back (no RTC): a stay is never negative.
        stay_s = max(0.0, (now - _aware(visit.checked_in_at)).total_seconds())
        visit.checked_out_at, visit.reason = now, reason
        session.add(visit)
        session.flush()
        event = RelayCheckoutEvent(
            visit_id=uuid.UUID(visit.id),
            subject=visit.subject,
            method=visit.method,  # type: ignore[arg-type]
            reason=reason,
            stay_s=stay_s,
            inside=self._inside(session, now),
        )
        self._outbox.add(session, self._topics.event(EventType.RELAY_CHECKOUT), event)
        return stay_s
