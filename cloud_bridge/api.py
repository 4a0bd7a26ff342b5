"""The bridge's HTTP API (FastAPI; its OpenAPI document is at /docs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from doorstep.wire import EventType, ReadingKind
from cloud_bridge.store import Event, EventPublic, Reading, ReadingPublic

MAX_PAGE = 500


class ReadingPage(BaseModel):
    items: list[ReadingPublic]
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


@router.get("/api/v1/readings", response_model=ReadingPage)
def list_readings(
    session: SessionDep,
    site: str | None = None,
    kiosk: str | None = None,
    kind: ReadingKind | None = None,
    subject: str | None = None,
    since: datetime | None = Query(default=None, description="kiosk time, inclusive"),
    until: datetime | None = Query(default=None, description="kiosk time, exclusive"),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
    offset: int = Query(default=0, ge=0),
) -> ReadingPage:
    """Readings, newest first, a page at a time."""
    conditions = []
    if site is not None:
        conditions.append(col(Reading.site) == site)
    if kiosk is not None:
        conditions.append(col(Reading.kiosk) == kiosk)
    if kind is not None:
        conditions.append(col(Reading.kind) == kind.value)
    if subject is not None:
        conditions.append(col(Reading.subject) == subject)
    if since is not None:
        conditions.append(col(Reading.kiosk_time) >= since)
    if until is not None:
        conditions.append(col(Reading.kiosk_time) < until)
    total = session.exec(select(func.count()).select_from(Reading).where(*conditions)).one()
    rows = session.exec(
        select(Reading)
        .where(*conditions)
        .order_by(col(Reading.kiosk_time).desc(), col(Reading.seq).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return ReadingPage(
        items=[ReadingPublic.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/api/v1/events", response_model=EventPage)
def list_events(
    session: SessionDep,
    site: str | None = None,
    kiosk: str | None = None,
    type: EventType | None = None,
    since: datetime | None = Query(default=None, description="kiosk time, inclusive"),
    until: datetime | None = Query(default=None, description="kiosk time, exclusive"),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
    offset: int = Query(default=0, ge=0),
) -> EventPage:
    """Events (laundry machines and start transactions, ...), newest first, a page at a time."""
    conditions = []
    if site is not None:
        conditions.append(col(Event.site) == site)
    if kiosk is not None:
        conditions.append(col(Event.kiosk) == kiosk)
    if type is not None:
        conditions.append(col(Event.type) == type.value)
    if since is not None:
        conditions.append(col(Event.kiosk_time) >= since)
    if until is not None:
        conditions.append(col(Event.kiosk_time) < until)
    total = session.exec(select(func.count()).select_from(Event).where(*conditions)).one()
    rows = session.exec(
        select(Event)
        .where(*conditions)
        .order_by(col(Event.kiosk_time).desc(), col(Event.seq).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return EventPage(
        items=[EventPublic.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="Doorstep bridge", version="1")
    app.state.engine = engine
    app.include_router(router)
    return app
