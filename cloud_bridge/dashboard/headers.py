"""What the browser is told about every response of the bridge: keep nothing, frame nothing,
load nothing from elsewhere."""

from __future__ import annotations

from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EVERYWHERE: Final = {
    "x-content-type-options": "nosniff",
    # A resident's pseudonym may be in a URL; it must not travel to anyone in a Referer.
    "referrer-policy": "no-referrer",
}
# Readings and alerts must not stay in the disk cache of a clinic's shared computer.
API: Final = {"cache-control": "no-store"}
DASHBOARD: Final = {
    # Only this bridge's own files and API: no CDN, no inline script, so that text a kiosk sent
    # (a device model, an error text) can never run as script even if a page had a bug.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    # Revalidate every time: after an upgrade, no page runs with last version's scripts.
    "cache-control": "no-cache",
}


class BrowserHeaders:
    """Pure ASGI middleware (no buffering of bodies, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, dashboard_path: str) -> None:
        self.app = app
        self.dashboard_path = dashboard_path

    def headers_for(self, path: str) -> dict[str, str]:
        if path.startswith("/api/"):
            return EVERYWHERE | API
        if path == self.dashboard_path or path.startswith(self.dashboard_path + "/"):
            return EVERYWHERE | DASHBOARD
        return EVERYWHERE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
