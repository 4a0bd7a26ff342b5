"""The bridge's HTTP API (FastAPI; its OpenAPI document is at /docs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from cloud_bridge.store import (
    CommandResult,
    CommandResultPublic,
    Event,
    EventPublic,
    Reading,
    ReadingPublic,
    Telemetry,
    TelemetryPublic,
)
from doorstep.wire import EventType, ReadingKind

MAX_PAGE = 500


class ReadingPage(BaseModel):
    items: list[ReadingPublic]
    total: int
    limit: int
    offset: int


class TelemetryPage(BaseModel):
    items: list[TelemetryPublic]
    total: int
    limit: int
    offset: int


class CommandResultPage(BaseModel):
    items: list[CommandResultPublic]
    total: int
    limit: int
    offset: int


class EventPage(BaseModel):
    items: list[EventPublic]
    total: int
    limit: int
    offset: int


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


class KioskWindow:
    """The filters every kiosk-sent resource shares: which kiosks, which stretch of kiosk time,
    which page."""

    def __init__(
        self,
        site: str | None = None,
        kiosk: str | None = None,
        since: datetime | None = Query(default=None, description="kiosk time, inclusive"),
        until: datetime | None = Query(default=None, description="kiosk time, exclusive"),
        limit: int = Query(default=100, ge=1, le=MAX_PAGE),
        offset: int = Query(default=0, ge=0),
    ) -> None:
        self.site, self.kiosk, self.since, self.until = site, kiosk, since, until
        self.limit, self.offset = limit, offset

    def page(self, session: Session, table: type[Reading | Event | Telemetry | CommandResult], *more: Any) -> tuple[list[Any], int]:
        """Rows of `table` matching these filters and `more` conditions, newest first, and the total."""
        conditions = [*more]
        if self.site is not None:
            conditions.append(col(table.site) == self.site)
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
            .offset(self.offset)
            .limit(self.limit)
        ).all()
        return list(rows), total


WindowDep = Annotated[KioskWindow, Depends()]


@router.get("/api/v1/readings", response_model=ReadingPage)
def list_readings(
    session: SessionDep, window: WindowDep, kind: ReadingKind | None = None, subject: str | None = None
) -> ReadingPage:
    """Readings, newest first, a page at a time."""
    more = []
    if kind is not None:
        more.append(col(Reading.kind) == kind.value)
    if subject is not None:
        more.append(col(Reading.subject) == subject)
    rows, total = window.page(session, Reading, *more)
    items = [ReadingPublic.model_validate(r, from_attributes=True) for r in rows]
    return ReadingPage(items=items, total=total, limit=window.limit, offset=window.offset)


@router.get("/api/v1/events", response_model=EventPage)
def list_events(session: SessionDep, window: WindowDep, type: EventType | None = None) -> EventPage:
    """Events (laundry machines and start transactions, ...), newest first, a page at a time."""
    rows, total = window.page(session, Event, *([col(Event.type) == type.value] if type is not None else []))
    items = [EventPublic.model_validate(r, from_attributes=True) for r in rows]
    return EventPage(items=items, total=total, limit=window.limit, offset=window.offset)


@router.get("/api/v1/telemetry", response_model=TelemetryPage)
def list_telemetry(session: SessionDep, window: WindowDep) -> TelemetryPage:
    """Kiosks' own health reports (outbox depth, disk, temperature, devices), newest first."""
    rows, total = window.page(session, Telemetry)
    items = [TelemetryPublic.model_validate(r, from_attributes=True) for r in rows]
    return TelemetryPage(items=items, total=total, limit=window.limit, offset=window.offset)


@router.get("/api/v1/command_results", response_model=CommandResultPage)
def list_command_results(session: SessionDep, window: WindowDep, request_id: str | None = None) -> CommandResultPage:
    """What kiosks answered to remote commands, newest first."""
    more = [col(CommandResult.request_id) == request_id] if request_id is not None else []
    rows, total = window.page(session, CommandResult, *more)
    items = [CommandResultPublic.model_validate(r, from_attributes=True) for r in rows]
    return CommandResultPage(items=items, total=total, limit=window.limit, offset=window.offset)


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="Doorstep bridge", version="1")
    app.state.engine = engine
    app.include_router(router)
    return app
