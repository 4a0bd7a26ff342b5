"""The kiosk screen's FastAPI app: the JSON API under /api, the page and its files at /."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http_limits import RequestLimits
from edge_agent.screen import routes_admin, routes_health, routes_help, routes_laundry, routes_pairing, routes_relay
from edge_agent.screen.context import Context, ScreenContext, ScreenError
from edge_agent.screen.same_origin import SameOriginOnly, mint_page_token, own_host_names
from firmware_configs.profiles import load_ble_profiles

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# The page may load only what this server serves: the kiosk works with the network down, and a
# page that fetched a font or a script from the internet would break exactly then. Nor may a page
# of another origin frame it: framed, the page still holds its token and acts for whoever
# draws over it (same_origin.py keeps other origins from acting directly).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)


def create_app(context: ScreenContext) -> FastAPI:
    app = FastAPI(title="Doorstep kiosk screen", docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.context = context
    # One per start of the screen: a page loaded before a restart is refused once, fetches the
    # new one and goes on (kiosk.js).
    page_token = mint_page_token()
    # Bodies over 64 KiB and JSON nested too deep are refused before anything parses them.
    app.add_middleware(RequestLimits, refuse_nul=False)

    @app.exception_handler(ScreenError)
    async def screen_error(_request: Request, error: ScreenError) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        return ScreenError(422, "bad_request", problems or "malformed request").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        reason = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return ScreenError(error.status_code, reason, str(error.detail)).response()

    @app.exception_handler(Exception)
    async def our_bug(request: Request, error: Exception) -> JSONResponse:
        # Our bug or the disk: said loudly in the log; the person sees "please ask staff".
        log.error("kiosk screen: %s %s failed", request.method, request.url.path, exc_info=error)
        return ScreenError(500, "kiosk_error", "the kiosk failed; it is logged").response()

    @app.get("/api/screen", tags=["screen"])
    async def screen(context: Context) -> dict[str, Any]:
        """What the page needs to know at start: its language, which screens this kiosk has."""
        settings = context.settings
        return {
            "language": settings.screen.language,
            "idle_reset_s": settings.screen.idle_reset_s,
            "health": any(d for d in settings.devices if _is_cuff(d.model)),
            "relay": settings.relay is not None,
            "laundry": settings.laundry is not None,
            "records": context.pseudonyms is not None,
            "speech": context.speaker is not None,
            "printer": context.printer is not None,
            "bands": settings.screen.blood_pressure_bands.model_dump(),
        }

    @app.get("/api/page-token", tags=["screen"])
    async def page_token_for_the_page(response: Response) -> PageToken:
        """The token the page sends in X-Page-Token with every request that changes something
        (edge_agent/screen/same_origin.py). Only the kiosk's own page can read it: no CORS
        header is sent, and a request from another origin or under another host name is refused."""
        response.headers["cache-control"] = "no-store"
        return PageToken(token=page_token)

    for module in (routes_health, routes_relay, routes_laundry, routes_admin, routes_pairing, routes_help):
        app.include_router(module.router)
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="static")
    # Outside the body limits (a foreign page's request is refused before it is read) and
    # inside the content security policy (a refusal carries it too).
    names = own_host_names(context.settings.screen.host, context.settings.screen.allowed_hosts)
    app.add_middleware(SameOriginOnly, token=page_token, host_names=names)
    app.add_middleware(_NoNetworkMiddleware)
    return app


class PageToken(BaseModel):
    token: str


class _NoNetworkMiddleware:
    """Adds the content security policy (and nosniff) to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        await self._app(scope, receive, send_with_headers)


def _is_cuff(model: str) -> bool:
    profile = load_ble_profiles().get(model)
    return profile is not None and profile.kind == "blood_pressure"
