"""What kiosks sent: readings, events, telemetry, command results, and the refused messages."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from cloud_bridge.access import Capability, Principal
from cloud_bridge.api.deps import ERROR_RESPONSES, Page, PageDep, PageParams, QueryTime, SessionDep, require, site_in_scope
from cloud_bridge.store import (
    CommandResult,
    CommandResultPublic,
    DeadLetter,
    Event,
    EventPublic,
    Reading,
    ReadingPublic,
    Telemetry,
    TelemetryPublic,
)
from doorstep.wire import EventType, ReadingKind

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
    session: SessionDep, window: WindowDep, page: PageDep, who: Principal = require(Capability.HEALTH_READ),
    kind: ReadingKind | None = None, subject: str | None = None,
) -> Page[ReadingPublic]:
    """Readings, newest first, a page at a time; `subject` is a resident's pseudonym. Doctors only."""
    more = []
    if kind is not None:
        more.append(col(Reading.kind) == kind.value)
    if subject is not None:
        more.append(col(Reading.subject) == subject)
    rows, total = window.page(session, page, Reading, who, Capability.HEALTH_READ, *more)
    items = [ReadingPublic.model_validate(r, from_attributes=True) for r in rows]
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


class DeadLetterPublic(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str
    raw_size: int
    raw_base64: str  # the first bytes as received (at most DEAD_LETTER_RAW_LIMIT)


@router.get("/dead_letters", response_model=Page[DeadLetterPublic])
def list_dead_letters(
    session: SessionDep, page: PageDep, _who: Principal = require(Capability.DEAD_LETTERS_READ), since: QueryTime | None = None
) -> Page[DeadLetterPublic]:
    """Messages refused for breaking the contract, newest first, with why and their first bytes."""
    conditions = [col(DeadLetter.received_at) >= since] if since is not None else []
    total = session.exec(select(func.count()).select_from(DeadLetter).where(*conditions)).one()
    rows = session.exec(
        select(DeadLetter).where(*conditions).order_by(col(DeadLetter.id).desc()).offset(page.offset).limit(page.limit)
    ).all()
    items = [
        DeadLetterPublic(
            id=row.id or 0, received_at=row.received_at, topic=row.topic, reason=row.reason, raw_size=row.raw_size,
            raw_base64=base64.b64encode(row.raw).decode(),
        )
        for row in rows
    ]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
