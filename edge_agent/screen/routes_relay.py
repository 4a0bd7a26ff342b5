"""The 24-hour love relay station: check in, check out, how many are inside, what is on offer."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from contract.payloads import RelayMethod
from edge_agent.screen.context import Context, ScreenContext, ScreenError
from edge_agent.settings import Localised
from edge_agent.store.relay_station import RelayBook

router = APIRouter(prefix="/api/relay", tags=["relay station"])


class Station(BaseModel):
    inside: int
    offers: list[Localised]


class Visitor(BaseModel):
    """Exactly one of the two: what the worker typed or scanned."""

    model_config = ConfigDict(extra="forbid")

    phone_last4: str | None = Field(default=None, max_length=16)
    qr: str | None = Field(default=None, max_length=400)


class Answer(BaseModel):
    outcome: str  # checked_in, already_inside, checked_out, not_inside
    since: datetime | None
    stay_minutes: int | None
    inside: int


def _book(context: ScreenContext) -> RelayBook:
    book = context.relay()
    if book is None:
        raise ScreenError(404, "no_relay_station", "this kiosk is not a relay station (no relay: section)")
    return book


def _who(visitor: Visitor, context: ScreenContext) -> tuple[str, RelayMethod]:
    if (visitor.phone_last4 is None) == (visitor.qr is None):
        raise ScreenError(422, "bad_request", "give either phone_last4 or qr")
    if visitor.phone_last4 is not None:
        digits = visitor.phone_last4
        return context.identify(lambda p: p.of_phone_last4(digits)), "phone_last4"
    code = visitor.qr or ""
    return context.identify(lambda p: p.of_qr(code)), "qr"


@router.get("")
async def station(context: Context) -> Station:
    book = _book(context)
    assert context.settings.relay is not None
    return Station(inside=await asyncio.to_thread(book.inside), offers=context.settings.relay.offers)


@router.post("/checkin")
async def check_in(visitor: Visitor, context: Context) -> Answer:
    book = _book(context)
    subject, method = _who(visitor, context)
    answer = await asyncio.to_thread(book.check_in, subject, method)
    return Answer(outcome=answer.outcome, since=answer.since, stay_minutes=None, inside=answer.inside)


@router.post("/checkout")
async def check_out(visitor: Visitor, context: Context) -> Answer:
    book = _book(context)
    subject, _method = _who(visitor, context)
    answer = await asyncio.to_thread(book.check_out, subject)
    minutes = None if answer.stay_s is None else round(answer.stay_s / 60)
    return Answer(outcome=answer.outcome, since=answer.since, stay_minutes=minutes, inside=answer.inside)
