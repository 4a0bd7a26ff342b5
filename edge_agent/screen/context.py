"""What the screen's routes work with, handed to them by FastAPI's dependency injection from
the app's state (no module-level globals: two agents in one process, as in tests, each serve
their own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from edge_agent.laundry import LaundryRoom
from contract.pseudonym import IdentifierError, Pseudonyms
from edge_agent.pairing import PairingDesk
from edge_agent.receipt import ReceiptPrinter
from edge_agent.screen.guard import PinGuard, RateLimit, Refused
from edge_agent.screen.measurement import MeasurementDesk
from edge_agent.screen.scans import ScanBox
from edge_agent.screen.speech import Speaker
from edge_agent.screen.staff_call import StaffCall
from edge_agent.settings import AgentSettings
from edge_agent.store.relay_station import RelayBook


@dataclass
class ScreenContext:
    settings: AgentSettings
    desk: MeasurementDesk
    pseudonyms: Pseudonyms | None  # None: no resident_secret, so no identified use
    lookups: RateLimit
    pin: PinGuard
    relay: Callable[[], RelayBook | None]
    laundry: Callable[[], LaundryRoom | None]  # None until the RS-485 line has opened
    status: Callable[[], dict[str, Any]]  # the agent's state, for the admin endpoint
    audit: Callable[..., None] = lambda action, result, **detail: None  # LocalAudit.record
    speaker: Speaker | None = None  # None: screen.speak_results is off
    staff: StaffCall | None = None  # None: no outbox to send a call through
    pairing: PairingDesk | None = None  # None: this kiosk pairs no devices from its screen
    scans: ScanBox | None = None  # None: no serial reader
    printer: ReceiptPrinter | None = None  # None: no receipt printer

    def identify(self, how: Callable[[Pseudonyms], str]) -> str:
        """A pseudonym through `how` (e.g. Pseudonyms.of_card with the typed number), counted
        against the look-up rate limit. Raises ScreenError."""
        if self.pseudonyms is None:
            raise ScreenError(503, "identification_unavailable", "this kiosk has no resident_secret configured")
        try:
            self.lookups.take()
        except Refused as refused:
            raise ScreenError(refused.status, refused.reason, "too many look-ups; wait", refused.retry_after_s) from None
        try:
            return how(self.pseudonyms)
        except IdentifierError as error:
            raise ScreenError(422, error.reason, str(error)) from None


class ScreenError(Exception):
    """An answer the screen shows as a message: `reason` is the code it turns into words."""

    def __init__(self, status: int, reason: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.retry_after_s = status, reason, detail, retry_after_s

    def response(self) -> JSONResponse:
        headers = {} if self.retry_after_s is None else {"Retry-After": str(int(self.retry_after_s))}
        body: dict[str, Any] = {"error": self.reason, "reason": self.detail}
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        return JSONResponse(body, status_code=self.status, headers=headers)


def _context(request: Request) -> ScreenContext:
    context: ScreenContext = request.app.state.context
    return context


Context = Annotated[ScreenContext, Depends(_context)]


def _technician(request: Request, context: Context, x_technician_pin: Annotated[str | None, Header()] = None) -> None:
    try:
        context.pin.check(x_technician_pin)
    except Refused as refused:
        context.audit("technician_pin", refused.reason, method=request.method, path=request.url.path)
        details = {
            "admin_disabled": "no technician_pin is configured: the admin endpoints are closed",
            "wrong_pin": "wrong technician PIN (header X-Technician-Pin)",
            "pin_locked": "too many wrong PINs: locked for a while",
        }
        raise ScreenError(refused.status, refused.reason, details[refused.reason], refused.retry_after_s) from None
    context.audit("technician_pin", "ok", method=request.method, path=request.url.path)


Technician = Depends(_technician)
