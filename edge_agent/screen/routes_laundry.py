"""The laundry room: every machine as the resident sees it, and starting one."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from drivers.laundry.vend import VendState
from edge_agent.laundry import LaundryRoom, MachineView
from edge_agent.screen.context import Context, ScreenContext, ScreenError
from edge_agent.store.laundry_ledger import price_of

router = APIRouter(prefix="/api/laundry", tags=["laundry"])

# What the resident is shown, from the driver's state and the start transaction. "unavailable":
# its state says nothing is wrong, yet it cannot start (door open, controller frozen): `reason`
# says why.
Shown = Literal["free", "busy", "done", "fault", "offline", "service", "starting", "unavailable", "unknown"]
# Reasons a machine that reads idle cannot start, so it is not shown free.
_IDLE_BUT_NOT_STARTABLE = frozenset({"door_open", "machine_frozen"})


class Text(BaseModel):
    zh: str
    en: str


class ProgramView(BaseModel):
    code: int
    name: Text
    minutes: int
    price_points: int


class Machine(BaseModel):
    unit: int
    kind: Literal["washer", "dryer"]
    shown: Shown
    # Why it cannot be started now, a code the screen has words for; None when it is free.
    reason: str | None
    minutes_left: int | None
    error: Text | None
    # Points given back for its last wash, which faulted before it had really run: the notice
    # the resident meets at the machine until the laundry is taken out.
    points_refunded: int
    programs: list[ProgramView]


class Resident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_number: str = Field(max_length=64)


class Account(BaseModel):
    balance: int
    free: bool  # starts are free for this resident (over the free_from_age)


class Start(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_number: str = Field(max_length=64)
    unit: int = Field(ge=1, le=247)
    program: int = Field(ge=1, le=0xFFFF)


class Started(BaseModel):
    outcome: Literal["started", "refused", "checking"]
    reason: str | None
    points_charged: int
    balance: int | None


def _room(context: ScreenContext) -> LaundryRoom:
    room = context.laundry()
    if room is None and context.settings.laundry is None:
        raise ScreenError(404, "no_laundry_room", "this kiosk has no laundry room (no laundry: section)")
    if room is None:
        # Configured, but the RS-485 line has not opened (yet): the agent retries it.
        raise ScreenError(503, "laundry_unavailable", "the laundry room's line is not open")
    return room


def _shown(view: MachineView) -> Shown:
    state = view.state
    if view.transaction is not None and view.transaction.state in (VendState.RESERVED, VendState.STARTING):
        return "starting"
    if state is None:
        return "unknown"
    if view.not_startable in _IDLE_BUT_NOT_STARTABLE:
        return "unavailable"  # before "offline": a frozen board still answers, and says so
    if state == "offline":
        return "offline"
    return {
        "idle": "free", "ready": "free", "running": "busy", "paused": "busy",
        "done": "done", "fault": "fault", "service": "service",
    }[state.value]  # type: ignore[return-value]


def _machine(view: MachineView) -> Machine:
    status = view.status
    shown = _shown(view)
    left = status.remaining_seconds if status is not None and shown == "busy" else None
    error = status.error_text if status is not None and shown == "fault" else None
    return Machine(
        unit=view.unit,
        kind=view.profile.kind,
        shown=shown,
        reason="machine_busy" if shown == "starting" else view.not_startable,
        minutes_left=None if left is None else math.ceil(left / 60),
        error=None if error is None else Text(zh=error.zh, en=error.en),
        points_refunded=view.points_refunded,
        programs=[
            ProgramView(code=p.code, name=Text(zh=p.name.zh, en=p.name.en), minutes=math.ceil(p.duration_s / 60),
                        price_points=p.price_points)
            for p in view.programs
        ],
    )


@router.get("")
async def machines(context: Context) -> list[Machine]:
    room = _room(context)
    return [_machine(view) for view in await asyncio.to_thread(room.machines)]


@router.post("/account")
async def account(body: Resident, context: Context) -> Account:
    """The resident's points at this station, and whether their starts are free."""
    room = _room(context)
    card = body.card_number
    subject = context.identify(lambda p: p.of_card(card))
    found = await asyncio.to_thread(room.ledger.account, subject)
    if found is None:
        raise ScreenError(404, "unknown_resident", "no points account for this card at this station")
    # The ledger's own rule decides, so the screen's promise and the charge cannot disagree.
    price = price_of(1, found.birth_year, datetime.now(UTC).date(), room.settings.free_from_age)
    return Account(balance=found.balance, free=price.free_reason is not None)


@router.post("/start")
async def start(body: Start, context: Context) -> Started:
    """The start transaction of docs/laundry.md: charged only on the machine's confirmation."""
    room = _room(context)
    card = body.card_number
    subject = context.identify(lambda p: p.of_card(card))
    result = await room.start_program(body.unit, body.program, subject)
    found = await asyncio.to_thread(room.ledger.account, subject)
    return Started(
        outcome=result.outcome, reason=result.reason, points_charged=result.points_charged,
        balance=None if found is None else found.balance,
    )
