"""Only the kiosk's own page acts on the kiosk's local API (issue 16, finding 5).

Listening on loopback keeps other machines out, not other pages: any page the kiosk's Chromium
shows can send requests to http://127.0.0.1:8088. A `fetch(..., {mode: 'no-cors'})` POST needs
no permission from us (the browser sends it and only hides the answer), so a page of another
origin could cancel a resident's measurement; and a host name whose DNS answer is switched to
127.0.0.1 (DNS rebinding) makes the browser treat our API as that page's own origin.

So every request passes, in this order:
1. **Host**: one of the screen's own names on the port it arrived on (127.0.0.1, localhost,
   [::1], the listening address, `screen.allowed_hosts`), for every request, the page included:
   a rebound name gets 421 for everything, so there is nothing to read and nothing to act on.
2. **Sec-Fetch-Site**, when the browser sends it (every Chromium since 2020 does, to loopback):
   `same-origin` for anything that changes something; for reads under /api also `none` (the
   address typed by a person). Another port on loopback is `same-site`, and is refused.
3. **Origin**, when present: exactly http://<the Host>, so an older browser's cross-origin POST
   (which names its page in Origin) is refused too.
4. **The page token**, for every method but GET and HEAD, and for reads under /api/admin (each
   counts as a try of the technician's PIN, so an <img> elsewhere could lock admin): the token
   the page fetched from GET /api/page-token, which another origin cannot read (no CORS header
   is ever sent, and 2.-3. refuse it there); compared in constant time.
5. **A body is JSON** (`Content-Type: application/json`): a text/plain or form body is what a
   page can send without a CORS preflight, so a JSON-only API is out of their reach.

The event stream (GET /api/bp/events) passes 1.-3. only: EventSource cannot send a header, and
a read needs no token as long as no other origin can read the answer.
Refusals are the API's JSON error ({"error", "reason"}) before anything else sees the request.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from edge_agent.screen.context import ScreenError

PAGE_TOKEN_HEADER = "x-page-token"
# Reads that change something: each is a try of the technician's PIN (counted, audited).
TOKEN_READS_UNDER = "/api/admin/"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Listening on every address says nothing about the name a browser uses.
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")
HTTP_DEFAULT_PORT = 80
READS = ("GET", "HEAD")


def mint_page_token() -> str:
    """A new token for the page: 256 random bits, once per start of the screen's server."""
    return secrets.token_urlsafe(32)


def own_host_names(listen_host: str, allowed: Iterable[str]) -> frozenset[str]:
    """The names the screen answers to, as they stand in a Host header (lower case)."""
    names = {*LOOPBACK_NAMES, *(name.lower() for name in allowed)}
    if listen_host not in WILDCARD_ADDRESSES:
        names.add(f"[{listen_host}]" if ":" in listen_host else listen_host.lower())
    return frozenset(names)


class SameOriginOnly:
    """Pure ASGI: refuses, with the screen's JSON error, any request that is not the kiosk's
    own page (or a technician's tool on the kiosk) talking to it under one of its own names."""

    def __init__(self, app: ASGIApp, *, token: str, host_names: frozenset[str]) -> None:
        self._app = app
        self._token = token.encode()
        self._host_names = host_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal.response()(scope, receive, send)
                return
        await self._app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ScreenError | None:
        headers = Headers(scope=scope)
        method: str = scope["method"]
        path: str = scope["path"]
        changes = method not in READS

        host = headers.get("host", "").strip().lower()
        if not host:
            return ScreenError(400, "no_host", "a request without a Host header")
        server = scope.get("server")
        if not self._is_ours(host, None if server is None else server[1]):
            return ScreenError(421, "foreign_host", f"this kiosk screen does not answer to the name {host!r} "
                                                    "(screen.allowed_hosts lists the names it does)")
        if not (changes or path.startswith("/api/")):
            return None  # the page itself and its files: public, and needed by whoever may open it

        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in (("same-origin",) if changes else ("same-origin", "none")):
            return ScreenError(403, "not_same_origin", f"sent by a page of another origin (Sec-Fetch-Site: {fetch_site})")
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host}":
            return ScreenError(403, "foreign_origin", f"sent by a page of another origin ({origin})")

        if changes or path.startswith(TOKEN_READS_UNDER):
            offered = headers.get(PAGE_TOKEN_HEADER)
            if offered is None:
                return ScreenError(403, "no_page_token", "no page token (X-Page-Token, from GET /api/page-token)")
            if not hmac.compare_digest(offered.encode(), self._token):
                # Also what a page loaded before the agent restarted gets: it fetches a new one.
                return ScreenError(403, "wrong_page_token", "the page token is not this screen's (reload the page)")

        if changes and _has_body(headers) and not _is_json(headers.get("content-type", "")):
            return ScreenError(415, "json_only", "a body must be JSON (Content-Type: application/json)")
        return None

    def _is_ours(self, host: str, port: int | None) -> bool:
        name, colon, port_text = host.rpartition(":")
        if not colon or name.endswith(":") or host.endswith("]"):  # no port: a bare name, or [::1]
            name, port_text = host, str(HTTP_DEFAULT_PORT)
        if not port_text.isdigit():
            return False
        return name in self._host_names and (port is None or int(port_text) == port)


def _has_body(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in ("", "0")


def _is_json(content_type: str) -> bool:
    # application/json with or without parameters (charset=utf-8); the page sends exactly that.
    return content_type.split(";", 1)[0].strip().lower() == "application/json"
