"""For the station's technician, behind the local PIN: pair a new cuff (配对新血压计), and pair
again one that lost its bond (edge_agent/pairing.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.pairing import PairingDesk, PairingRefused
from edge_agent.screen.context import Context, ScreenContext, ScreenError, Technician

router = APIRouter(prefix="/api/admin/pairing", tags=["admin"], dependencies=[Technician])


class HeardDevice(BaseModel):
    address: str
    name: str | None
    rssi: int | None
    model: str | None = Field(description="the profile it matches; None: not a device the kiosk knows")
    kind: str | None = Field(description="blood_pressure, glucose, …: the matched profile's")
    configured: bool = Field(description="already one of this kiosk's devices")


class PairRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", description="as the scan listed it")


def _desk(context: ScreenContext) -> PairingDesk:
    if context.pairing is None:
        raise ScreenError(503, "pairing_unavailable", "this kiosk does not pair devices")
    return context.pairing


@router.get("")
async def progress(context: Context) -> dict[str, Any]:
    """The pairing under way or last ended, and the devices that lost their bond."""
    return _desk(context).snapshot()


@router.post("/scan")
async def scan(context: Context) -> list[HeardDevice]:
    desk = _desk(context)
    try:
        heard = await desk.scan()
    except PairingRefused as refused:
        raise ScreenError(refused.status, refused.reason, refused.detail) from None
    configured = {d.address.upper() for d in context.settings.devices}
    return [
        HeardDevice(address=d.address, name=d.name, rssi=d.rssi, model=d.model,
                    kind=desk.profiles[d.model].kind if d.model is not None else None,
                    configured=d.address.upper() in configured)
        for d in heard
    ]


@router.post("/pair", status_code=202)
async def pair(body: PairRequest, context: Context) -> dict[str, Any]:
    """Start pairing; the screen follows it with GET /api/admin/pairing."""
    desk = _desk(context)
    try:
        desk.pair(body.address)
    except PairingRefused as refused:
        raise ScreenError(refused.status, refused.reason, refused.detail) from None
    context.audit("pair_device", "started", address=body.address, model=desk.model)
    return desk.snapshot()


@router.delete("/devices/{address}")
async def unpair(address: str, context: Context) -> dict[str, Any]:
    """Take a cuff paired at this kiosk off its devices (replaced, or gone for good)."""
    desk = _desk(context)
    try:
        await desk.unpair(address)
    except PairingRefused as refused:
        raise ScreenError(refused.status, refused.reason, refused.detail) from None
    context.audit("unpair_device", "ok", address=address)
    return desk.snapshot()
