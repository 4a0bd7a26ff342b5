"""What kiosks sent: readings, events, telemetry, command results, and the refused messages."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from cloud_bridge.access import Capability, Principal, Scope
from cloud_bridge.api.deps import (
    ERROR_RESPONSES, ContextDep, Page, PageDep, PageParams, QueryTime, SessionDep, require, site_in_scope,
)
from cloud_bridge.residents import blood_pressure_meaning
from cloud_bridge.store import (
    CommandResult,
    CommandResultPublic,
    DEAD_LETTER_RAW_LIMIT,
    DeadLetter,
    Event,
    EventPublic,
    Reading,
    ReadingPublic,
    Telemetry,
    TelemetryPublic,
)
from contract.clinical import dangerous_line
from contract.errors import ContractError
from contract.topics import TOPIC_ROOT, Channel, EventType, KioskTopics, ReadingKind, parse_topic

router = APIRouter(prefix="/api/v1", tags=["messages"], responses=ERROR_RESPONSES)


class KioskWindow:
    """The filters every kiosk-sent resource shares: which kiosks, which stretch of kiosk time."""

    def __init__(
        self,
        site: str | None = None,
        kiosk: str | None = None,
        since: QueryTime | None = Query(default=None, description="kiosk time, inclusive"),
        until: QueryTime | None = Query(default=None, description="kiosk time, exclusive"),
    ) -> None:
        self.site, self.kiosk, self.since, self.until = site, kiosk, since, until

    def page(
        self,
        session: Session,
        page: PageParams,
        table: type[Reading | Event | Telemetry | CommandResult],
        who: Principal,
        capability: Capability,
        *more: Any,
    ) -> tuple[list[Any], int]:
        """Rows of `table` matching these filters and `more` conditions, within what `who` may
        see, newest first, and the total."""
        conditions = [*more]
        site = site_in_scope(who, capability, self.site)
        if site is not None:
            conditions.append(col(table.site) == site)
        if self.kiosk is not None:
            conditions.append(col(table.kiosk) == self.kiosk)
        if self.since is not None:
            conditions.append(col(table.kiosk_time) >= self.since)
        if self.until is not None:
            conditions.append(col(table.kiosk_time) < self.until)
        total = session.exec(select(func.count()).select_from(table).where(*conditions)).one()
        rows = session.exec(
            select(table)
            .where(*conditions)
            .order_by(col(table.kiosk_time).desc(), col(table.seq).desc())
            .offset(page.offset)
            .limit(page.limit)
        ).all()
        return list(rows), total


WindowDep = Annotated[KioskWindow, Depends()]


@router.get("/readings", response_model=Page[ReadingPublic])
def list_readings(
    session: SessionDep, window: WindowDep, page: PageDep, context: ContextDep,
    who: Principal = require(Capability.HEALTH_READ), kind: ReadingKind | None = None, subject: str | None = None,
) -> Page[ReadingPublic]:
    """Readings, newest first, a page at a time; `subject` is a resident's pseudonym. Doctors only."""
    more = []
    if kind is not None:
        more.append(col(Reading.kind) == kind.value)
    if subject is not None:
        more.append(col(Reading.subject) == subject)
    rows, total = window.page(session, page, Reading, who, Capability.HEALTH_READ, *more)
    line = dangerous_line(context.blood_pressure_guideline, context.alert_rules.dangerous_blood_pressure)
    items = [
        ReadingPublic.model_validate(r, from_attributes=True).model_copy(
            update={"blood_pressure": blood_pressure_meaning(r, context.blood_pressure_guideline, line)}
        )
        for r in rows
    ]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/events", response_model=Page[EventPublic])
def list_events(
    session: SessionDep, window: WindowDep, page: PageDep, who: Principal = require(Capability.FLEET_READ),
    type: EventType | None = None,
) -> Page[EventPublic]:
    """Events (laundry machines and start transactions, ...), newest first, a page at a time."""
    more = [col(Event.type) == type.value] if type is not None else []
    rows, total = window.page(session, page, Event, who, Capability.FLEET_READ, *more)
    items = [EventPublic.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/telemetry", response_model=Page[TelemetryPublic])
def list_telemetry(
    session: SessionDep, window: WindowDep, page: PageDep, who: Principal = require(Capability.FLEET_READ)
) -> Page[TelemetryPublic]:
    """Kiosks' own health reports (outbox depth, disk, temperature, devices), newest first."""
    rows, total = window.page(session, page, Telemetry, who, Capability.FLEET_READ)
    items = [TelemetryPublic.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/command_results", response_model=Page[CommandResultPublic])
def list_command_results(
    session: SessionDep, window: WindowDep, page: PageDep, who: Principal = require(Capability.FLEET_READ),
    request_id: str | None = None,
) -> Page[CommandResultPublic]:
    """What kiosks answered to remote commands, newest first."""
    more = [col(CommandResult.request_id) == request_id] if request_id is not None else []
    rows, total = window.page(session, page, CommandResult, who, Capability.FLEET_READ, *more)
    items = [CommandResultPublic.model_validate(r, from_attributes=True) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


# Dead letters whose bytes hold nothing a technician cannot already read through this API
# (events, telemetry, command results, statuses: FLEET_READ). Every other one — a reading, a
# batch (it may hold readings), a topic outside the contract (a reading misfiled, say) — may
# hold a resident's data in clear (a kiosk without payload_public_key does not seal), so its
# bytes are shown only to whoever may read that site's readings (issue 16, finding 4).
FLEET_CHANNELS: Final = frozenset({Channel.STATUS, Channel.EVENTS, Channel.TELEMETRY, Channel.COMMAND_RESULTS})
WITHHELD = ("null when the message may hold a resident's data — a reading, a batch, or a topic outside the "
            "contract — and the caller may not read that site's readings (health:read)")


class DeadLetterPublic(BaseModel):
    id: int
    received_at: datetime
    topic: str
    site: str | None = Field(description="the sending kiosk's site, when the topic names one")
    kiosk: str | None = Field(description="the sending kiosk, when the topic names one")
    reason: str
    raw_size: int
    raw_base64: str | None = Field(
        description=f"the first bytes as received (at most {DEAD_LETTER_RAW_LIMIT}), base64; {WITHHELD}")


def _sender_and_channel(topic: str) -> tuple[KioskTopics | None, Channel | None]:
    """The kiosk a dead letter's topic names and its channel; the kiosk alone when the rest of
    the topic breaks the contract, None for either that cannot be read."""
    try:
        parsed = parse_topic(topic)
        return parsed.kiosk_topics, parsed.channel
    except ContractError:
        pass
    parts = topic.split("/")
    if len(parts) >= 4 and "/".join(parts[:2]) == TOPIC_ROOT:
        try:
            return KioskTopics(parts[2], parts[3]), None
        except ContractError:
            pass
    return None, None


def may_read_bytes(who: Principal, kiosk: KioskTopics | None, channel: Channel | None) -> bool:
    if channel in FLEET_CHANNELS:
        return True
    if kiosk is None:  # whose it is cannot be told: only for one who reads every site's readings
        return who.scope(Capability.HEALTH_READ) is Scope.ALL_SITES
    return who.may(Capability.HEALTH_READ, kiosk.site)


@router.get("/dead_letters", response_model=Page[DeadLetterPublic])
def list_dead_letters(
    session: SessionDep, page: PageDep, who: Principal = require(Capability.DEAD_LETTERS_READ), since: QueryTime | None = None
) -> Page[DeadLetterPublic]:
    """Messages refused for breaking the contract, newest first, with why and their first bytes
    — but not the bytes of one that may hold a resident's data, unless the caller may read that
    site's readings (raw_base64 is then null)."""
    conditions = [col(DeadLetter.received_at) >= since] if since is not None else []
    total = session.exec(select(func.count()).select_from(DeadLetter).where(*conditions)).one()
    rows = session.exec(
        select(DeadLetter).where(*conditions).order_by(col(DeadLetter.id).desc()).offset(page.offset).limit(page.limit)
    ).all()
    items = []
    for row in rows:
        kiosk, channel = _sender_and_channel(row.topic)
        items.append(DeadLetterPublic(
            id=row.id or 0, received_at=row.received_at, topic=row.topic,
            site=kiosk.site if kiosk else None, kiosk=kiosk.kiosk if kiosk else None,
            reason=row.reason, raw_size=row.raw_size,
            raw_base64=base64.b64encode(row.raw).decode() if may_read_bytes(who, kiosk, channel) else None,
        ))
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
