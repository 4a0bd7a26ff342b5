"""The blood-pressure screen: identify (or not), put on the cuff, watch it, read the result,
show the resident's code as a QR for the doctor, print it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterable

import segno
from fastapi import APIRouter, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from contract.resident_code import ResidentCode
from drivers.receipt_printer import PrinterFault
from edge_agent.receipt import receipt_for
from edge_agent.screen.context import Context, ScreenContext, ScreenError
from edge_agent.screen.measurement import ShownResult

router = APIRouter(prefix="/api/bp", tags=["blood pressure"])


class Begin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card_number: str | None = Field(default=None, max_length=64, description="typed, or typed by a QR/card scanner")
    scan: str | None = Field(default=None, max_length=64, description="the token of a serial reader's scan (a `scan` event)")
    anonymous: bool = Field(default=False, description="measure without saving to my record")


class DeskState(BaseModel):
    state: str
    record: bool


@router.post("/begin")
async def begin(body: Begin, context: Context) -> DeskState:
    """The next new reading from the cuff goes on this resident's record (or on none)."""
    if [body.anonymous, body.card_number is not None, body.scan is not None].count(True) != 1:
        raise ScreenError(422, "bad_request", "give one of card_number, scan or anonymous: true")
    subject = None
    if body.card_number is not None:
        card = body.card_number
        subject = context.identify(lambda p: p.of_card(card))
    elif body.scan is not None:
        scan = None if context.scans is None else context.scans.claim(body.scan)
        if scan is None:
            raise ScreenError(404, "scan_expired", "no such scan: claimed already, or too old; swipe again")
        subject = scan.pseudonym
    return DeskState.model_validate(context.desk.begin(subject))


@router.post("/cancel")
async def cancel(context: Context) -> DeskState:
    return DeskState.model_validate(context.desk.cancel())


def _shown(context: ScreenContext, seq: int) -> ShownResult:
    shown = context.desk.shown(seq)
    if shown is None:
        raise ScreenError(404, "no_result", "that result is no longer on the screen")
    return shown


@router.get("/result/{seq}/resident-code.svg", response_class=Response)
async def resident_code(seq: int, context: Context) -> Response:
    """The resident's code for her doctor (contract/resident_code.py), as a QR code: only for a
    result on a resident's record, while it is on the screen. Made here, offline (segno)."""
    shown = _shown(context, seq)
    if shown.subject is None:
        raise ScreenError(404, "no_resident_code", "an anonymous result has no resident's code")
    svg = io.BytesIO()
    # Error correction M (15%): a phone still reads it off a smudged screen; scale 8 for a big screen.
    segno.make_qr(ResidentCode(context.settings.site, shown.subject).text(), error="m").save(
        svg, kind="svg", scale=8, border=2, xmldecl=False, svgns=True)
    return Response(svg.getvalue(), media_type="image/svg+xml", headers={"cache-control": "no-store"})


class Printed(BaseModel):
    outcome: str  # printed


@router.post("/result/{seq}/print")
async def print_result(seq: int, context: Context) -> Printed:
    """"打印": the result on the receipt printer. 503 with printer_paper_out, printer_offline or
    printer_error when it could not; the screen goes on either way."""
    shown = _shown(context, seq)
    if context.printer is None:
        raise ScreenError(404, "no_printer", "this kiosk has no receipt printer")
    paper = context.printer.settings
    receipt = receipt_for(shown, context.settings.site, chinese=paper.chinese, columns=paper.characters_per_line)
    try:
        await context.printer.print(receipt)
    except PrinterFault as fault:
        raise ScreenError(503, f"printer_{fault.kind}", str(fault)) from None
    return Printed(outcome="printed")


@router.get("/events", response_class=EventSourceResponse)
async def events(context: Context) -> AsyncIterable[ServerSentEvent]:
    """`state` (idle, waiting, measuring), `pressure` (the cuff inflating, mmHg), `result`
    (sent only once the outbox holds the reading) and `ended` (how a session ended: finished,
    cuff_lost, no_result, expired, cancelled or replaced; with `record`, whether it was on a
    resident's record). A page that connects while the desk is idle gets the last `ended` too.
    `scan`: a serial reader read a card or QR code (`token`, for begin's `scan`, and `kind`),
    or something that is none (`error`)."""
    async for event in context.desk.events():
        yield ServerSentEvent(event=event.name, data=event.data)
