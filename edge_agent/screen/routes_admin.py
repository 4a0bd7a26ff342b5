"""For the station's technician, behind the local PIN: open a resident's points account, and
see what the kiosk is doing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.screen.context import Context, ScreenError, Technician

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Technician])


class ResidentAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_number: str = Field(max_length=64)
    birth_year: int | None = Field(default=None, ge=1900, le=2100, description="the over-80s start machines free")
    balance: int = Field(default=0, ge=-10_000, le=100_000, description="volunteer points")


class Opened(BaseModel):
    subject: str  # the pseudonym: what the cloud and the books know the resident by
    balance: int
    birth_year: int | None


@router.put("/residents")
async def open_account(body: ResidentAccount, context: Context) -> Opened:
    room = context.laundry()
    if room is None:
        raise ScreenError(503, "laundry_unavailable", "the laundry room's book is not open")
    if body.birth_year is not None and body.birth_year > datetime.now(UTC).year:
        raise ScreenError(422, "bad_birth_year", "a birth year in the future")
    card = body.card_number
    subject = context.identify(lambda p: p.of_card(card))
    await asyncio.to_thread(room.ledger.open_account, subject, balance=body.balance, birth_year=body.birth_year)
    await asyncio.to_thread(context.audit, "open_account", "ok", subject=subject, balance=body.balance,
                            birth_year=body.birth_year)
    return Opened(subject=subject, balance=body.balance, birth_year=body.birth_year)


@router.get("/status")
async def status(context: Context) -> dict[str, Any]:
    return await asyncio.to_thread(context.status)
