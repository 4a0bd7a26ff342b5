"""What every route may depend on: a database session, the bridge's context, pages, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from cloud_bridge.jobs import CommandPublisher
from cloud_bridge.metrics import BridgeMetrics

MAX_PAGE = 500


@dataclass
class BridgeContext:
    """What the API needs of the running bridge, passed in (no module-level state)."""

    engine: Engine
    metrics: BridgeMetrics = field(default_factory=BridgeMetrics)
    publisher: CommandPublisher | None = None  # None: commands are published by a worker's sweep
    command_ttl: timedelta = timedelta(minutes=5)
    notify: bool = False
    on_alerts: Callable[[], None] = lambda: None  # wake the webhook sender
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def get_context(request: Request) -> BridgeContext:
    context: BridgeContext = request.app.state.context
    return context


def get_session(context: Annotated[BridgeContext, Depends(get_context)]) -> Iterator[Session]:
    with Session(context.engine) as session:
        yield session


ContextDep = Annotated[BridgeContext, Depends(get_context)]
SessionDep = Annotated[Session, Depends(get_session)]


def current_actor() -> str:
    """Who is asking, for audit fields (issued_by, acknowledged_by). Until API tokens exist
    (the security issue), every caller is the same unauthenticated actor."""
    return "unauthenticated"


ActorDep = Annotated[str, Depends(current_actor)]


class PageParams:
    def __init__(
        self,
        limit: int = Query(default=100, ge=1, le=MAX_PAGE, description=f"at most {MAX_PAGE}"),
        offset: int = Query(default=0, ge=0),
    ) -> None:
        self.limit, self.offset = limit, offset


PageDep = Annotated[PageParams, Depends()]

Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int
    limit: int
    offset: int


class ApiError(BaseModel):
    """Every error the API answers: a machine-readable code and a reason in plain words."""

    error: str
    reason: str
    problems: list[dict[str, Any]] | None = None


def not_found(reason: str) -> HTTPException:
    return HTTPException(status_code=404, detail={"error": "not_found", "reason": reason})


def conflict(reason: str) -> HTTPException:
    return HTTPException(status_code=409, detail={"error": "conflict", "reason": reason})


def unprocessable(reason: str) -> HTTPException:
    return HTTPException(status_code=422, detail={"error": "invalid_request", "reason": reason})


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ApiError, "description": "no such thing"},
    409: {"model": ApiError, "description": "not allowed in its present state"},
    422: {"model": ApiError, "description": "the request does not fit (the reason names the field)"},
}
