"""The blood-pressure screen: identify (or not), put on the cuff, watch it, read the result."""

from __future__ import annotations

from collections.abc import AsyncIterable

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.screen.context import Context, ScreenError

router = APIRouter(prefix="/api/bp", tags=["blood pressure"])


class Begin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_number: str | None = Field(default=None, max_length=64, description="typed, or typed by a QR/card scanner")
    anonymous: bool = Field(default=False, description="measure without saving to my record")


class DeskState(BaseModel):
    state: str
    record: bool


@router.post("/begin")
async def begin(body: Begin, context: Context) -> DeskState:
    """The next new reading from the cuff goes on this resident's record (or on none)."""
    if body.anonymous == (body.card_number is not None):
        raise ScreenError(422, "bad_request", "give either card_number or anonymous: true")
    subject = None
    if body.card_number is not None:
        card = body.card_number
        subject = context.identify(lambda p: p.of_card(card))
    return DeskState.model_validate(context.desk.begin(subject))


@router.post("/cancel")
async def cancel(context: Context) -> DeskState:
    return DeskState.model_validate(context.desk.cancel())


@router.get("/events", response_class=EventSourceResponse)
async def events(context: Context) -> AsyncIterable[ServerSentEvent]:
    """`state` (idle, waiting, measuring), `pressure` (the cuff inflating, mmHg), `result`
    (sent only once the outbox holds the reading) and `ended` (how a session ended: finished,
    cuff_lost, no_result, expired, cancelled or replaced; with `record`, whether it was on a
    resident's record). A page that connects while the desk is idle gets the last `ended` too."""
    async for event in context.desk.events():
        yield ServerSentEvent(event=event.name, data=event.data)
