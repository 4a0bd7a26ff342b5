"""The bridge's HTTP API (FastAPI; its OpenAPI document is at /openapi.json, browsable at
/docs, both for a token of any role: docs/security.md).

Every error is JSON: {"error": code, "reason": plain words, "problems": [...] for a request
that does not fit}. Lists are pages of at most MAX_PAGE items, never unbounded. A body over
64 KiB (413; but a release bundle's upload, which streams to disk), a JSON body not in UTF-8 (400), JSON nested over 32 levels or holding U+0000 (422)
are refused before anything parses it (runtime/http_limits.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_bridge import dashboard as dashboard_pages
from cloud_bridge.access import Capability, Principal
from cloud_bridge.api import (
    alerts, auth, commands, dashboard, desired_config, enrolment, fhir, fleet, messages, releases, residents,
    rollouts, support_bundles,
)
from cloud_bridge.api.deps import MAX_PAGE, BridgeContext, ContextDep, PrincipalDep, require
from cloud_bridge.startup import StartupState
from runtime.http_limits import RequestLimits

__all__ = ["MAX_PAGE", "BridgeContext", "create_app"]

ops = APIRouter(tags=["operations"])


@ops.get("/healthz", response_model=StartupState, responses={503: {"model": StartupState}})
def healthz(context: ContextDep) -> JSONResponse:
    """Whether this worker is up: 200 "ok", or 503 while it waits for its database at start
    (how long, how many tries, the last error). The only path that needs no token."""
    if context.startup is None:
        return JSONResponse({"status": "ok"})
    state = context.startup.state
    return JSONResponse(state.model_dump(mode="json"), status_code=200 if state.status == "ok" else 503)


async def _while_starting(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Before the database has answered, every path but /healthz is 503 (not a 500 from a
    database that is not there)."""
    startup = request.app.state.context.startup
    if startup is not None and not startup.ready and request.url.path != "/healthz":
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content={"error": "starting", "reason": "the bridge is waiting for its database"})
    return await call_next(request)


@ops.get("/metrics", response_class=Response)
def metrics(context: ContextDep, _who: Principal = require(Capability.METRICS_READ)) -> Response:
    """Prometheus metrics of this worker."""
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# The API's own description, for anyone logged in (any role), not for the internet: it maps every
# route, parameter and role to whoever scans for one (issue 16, finding 7). Left out of the
# document itself, as FastAPI's own /openapi.json and /docs are.
@ops.get("/openapi.json", include_in_schema=False)
def openapi_document(request: Request, _who: PrincipalDep) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@ops.get("/docs", include_in_schema=False)
def openapi_browser(_who: PrincipalDep) -> HTMLResponse:
    """Swagger UI: it fetches /openapi.json with the dashboard's session cookie (log in there
    first) or, from a script, the bearer token it was itself fetched with."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Doorstep bridge API")


def _where(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part != "body" or len(location) == 1)


async def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"field": _where(tuple(e.get("loc", ()))), "problem": e.get("msg", "")} for e in error.errors()
    ]
    reason = "; ".join(f"{p['field']}: {p['problem']}" for p in problems) or "the request does not fit"
    return JSONResponse(status_code=422, content={"error": "invalid_request", "reason": reason, "problems": problems})


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if isinstance(error.detail, dict) and "error" in error.detail:
        content = error.detail
    else:
        content = {"error": {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error"),
                   "reason": str(error.detail)}
    return JSONResponse(status_code=error.status_code, content=content, headers=getattr(error, "headers", None))


def create_app(engine: Engine, context: BridgeContext | None = None) -> FastAPI:
    # FastAPI's own /openapi.json, /docs and /redoc answer anyone: replaced by openapi_document
    # and openapi_browser above, which want a token.
    app = FastAPI(title="Doorstep bridge", version="1", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.context = context or BridgeContext(engine)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Outermost: an oversized or too deeply nested body is refused before anything reads it.
    app.middleware("http")(_while_starting)
    app.add_middleware(RequestLimits, streamed=releases.UPLOAD_PATH)
    # Outermost of all: an error under /fhir, whoever answered it, leaves as an OperationOutcome.
    app.add_middleware(fhir.FhirErrors)
    app.include_router(ops)
    for module in (auth, messages, fleet, alerts, commands, desired_config, enrolment, support_bundles, residents,
                   releases, rollouts, dashboard, fhir):
        app.include_router(module.router)
    dashboard_pages.mount(app)
    return app
