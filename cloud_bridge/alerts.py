"""Alerts: open -> acknowledged -> resolved, one open alert per condition.

A condition is (kind, site, kiosk, what it is about). While its alert is not resolved the row
holds that key in `open_key`, which is unique: raising the same condition again, from any
worker, only counts one more occurrence. Resolving sets `open_key` to NULL (NULLs never
collide), so the condition can open a new alert later. Every change is returned as an
AlertChange so the caller can notify (cloud_bridge/webhook.py) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, any_, bindparam, column, func
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, Session, SQLModel, col, select

from cloud_bridge.alert_rules import AlertKind, Raise, Signal
from cloud_bridge.store import dialect_insert, table_of


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertBase(SQLModel):
    # Plain strings in the database (an Enum column would be a PostgreSQL type to migrate).
    kind: str = Field(max_length=32, description="an AlertKind")
    severity: str = Field(max_length=16, description="critical or warning")
    site: str = Field(max_length=32)
    kiosk: str = Field(max_length=32)
    about: str = Field(default="", max_length=128, description="a device address, a resident pseudonym, a gap; '' = the kiosk")
    title: str = Field(max_length=500)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    state: str = Field(default=AlertState.OPEN.value, max_length=16, description="open, acknowledged or resolved")
    opened_at: datetime
    last_at: datetime = Field(description="when the condition was last reported")
    occurrences: int = 1
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = Field(default=None, max_length=64)
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(default=None, max_length=64, description="a person, or 'system' when the condition cleared")
    note: str | None = Field(default=None, max_length=2000)


class Alert(AlertBase, table=True):
    __tablename__ = "alerts"

    id: int | None = Field(default=None, primary_key=True)
    open_key: str | None = Field(default=None, unique=True, max_length=256)


class AlertPublic(AlertBase):
    id: int


class AlertEvent(StrEnum):
    OPENED = "opened"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertChange:
    event: AlertEvent
    alert: AlertPublic


class AlertNotFound(LookupError):
    pass


class AlertTransitionRefused(ValueError):
    """E.g. acknowledging a resolved alert."""


SYSTEM = "system"


def open_key(kind: AlertKind, site: str, kiosk: str, about: str) -> str:
    return f"{kind}|{site}|{kiosk}|{about}"


def apply_signals(session: Session, signals: Sequence[Signal]) -> list[AlertChange]:
    """Raise and clear, in the order given, within the session's transaction."""
    # Most signals are clears of conditions that are not open (a healthy device says so with
    # every telemetry): the open alerts they name are found in one query, not one each.
    open_alerts = _open_alerts(session, {_key_of(signal) for signal in signals})
    changes: list[AlertChange] = []
    for signal in signals:
        key = _key_of(signal)
        if isinstance(signal, Raise):
            alert_id, occurrences = _raise(session, signal)
            if occurrences == 1:
                opened = session.get(Alert, alert_id)
                assert opened is not None
                open_alerts[key] = opened
                changes.append(AlertChange(AlertEvent.OPENED, AlertPublic.model_validate(opened, from_attributes=True)))
            elif (known := open_alerts.get(key)) is not None:
                session.expire(known)  # the upsert counted it under the session: read afresh if used
            elif (fetched := session.get(Alert, alert_id)) is not None:  # opened by another worker since the look-up
                open_alerts[key] = fetched
        elif (found := open_alerts.pop(key, None)) is not None:
            changes.append(_resolve(session, found, SYSTEM, signal.note, signal.at))
    return changes


def _key_of(signal: Signal) -> str:
    return open_key(signal.kind, signal.site, signal.kiosk, signal.about)


def _open_alerts(session: Session, keys: set[str]) -> dict[str, Alert]:
    """The open alerts of these conditions, in one statement of one parameter: the keys as an
    array on PostgreSQL, a JSON array taken apart by json_each on SQLite. A batch of telemetry
    names ~1,000 conditions (every device's all-clear); as IN lists of 500 they cost more than
    storing the batch's messages (psycopg parses a statement of over 50 parameters afresh)."""
    if not keys:
        return {}
    wanted = sorted(keys)
    if session.get_bind().dialect.name == "postgresql":
        statement = select(Alert).where(col(Alert.open_key) == any_(bindparam("keys", wanted, type_=ARRAY(String))))
    else:
        listed = core_select(column("value", String)).select_from(func.json_each(bindparam("keys", wanted, type_=JSON)))
        statement = select(Alert).where(col(Alert.open_key).in_(listed.scalar_subquery()))
    found: dict[str, Alert] = {}
    for alert in session.exec(statement):
        assert alert.open_key is not None
        found[alert.open_key] = alert
    return found


def _raise(session: Session, signal: Raise) -> tuple[int, int]:
    """Open the condition's alert, or count one more occurrence of it: (its id, its occurrences)."""
    table = table_of(Alert)
    statement = dialect_insert(session, Alert).values(
        kind=signal.kind.value,
        severity=signal.severity.value,
        site=signal.site,
        kiosk=signal.kiosk,
        about=signal.about,
        title=signal.title[:500],
        data=signal.data | {"title_zh": signal.title_zh[:500]},
        state=AlertState.OPEN.value,
        opened_at=signal.at,
        last_at=signal.at,
        occurrences=1,
        open_key=_key_of(signal),
    )
    excluded = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=["open_key"],
        set_={
            "occurrences": table.c.occurrences + 1,
            "last_at": excluded.last_at,
            "title": excluded.title,
            "data": excluded.data,
            "severity": excluded.severity,  # the latest report's: a planned stop that became a lost kiosk
        },
    ).returning(table.c.id, table.c.occurrences)
    alert_id, occurrences = session.execute(upsert).one()
    return int(alert_id), int(occurrences)


def _resolve(session: Session, alert: Alert, by: str, note: str | None, at: datetime) -> AlertChange:
    alert.state, alert.resolved_at, alert.resolved_by, alert.open_key = AlertState.RESOLVED.value, at, by, None
    if note:
        alert.note = note[:2000]
    session.add(alert)
    session.flush()
    return AlertChange(AlertEvent.RESOLVED, AlertPublic.model_validate(alert, from_attributes=True))


def acknowledge(session: Session, alert_id: int, *, by: str, note: str | None, at: datetime) -> AlertChange:
    """A person has seen it and is on it; it stays open for deduplication until resolved."""
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id}")
    if alert.state != AlertState.OPEN:
        raise AlertTransitionRefused(f"alert {alert_id} is {alert.state}: only an open alert can be acknowledged")
    alert.state, alert.acknowledged_at, alert.acknowledged_by = AlertState.ACKNOWLEDGED.value, at, by
    if note:
        alert.note = note[:2000]
    session.add(alert)
    session.flush()
    return AlertChange(AlertEvent.ACKNOWLEDGED, AlertPublic.model_validate(alert, from_attributes=True))


def resolve(session: Session, alert_id: int, *, by: str, note: str | None, at: datetime) -> AlertChange:
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id}")
    if alert.state == AlertState.RESOLVED:
        raise AlertTransitionRefused(f"alert {alert_id} is already resolved")
    return _resolve(session, alert, by, note, at)
