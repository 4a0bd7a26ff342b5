"""FHIR R4 for doctors' systems: a search subset and a bulk export, behind the same roles as
/api/v1/readings (HEALTH_READ; a site-bound doctor sees their own site only).

- GET /fhir/Observation?patient=&date=&code=&_count=&_offset=  a searchset Bundle, oldest first,
  then the residents' home blood-pressure averages (code 96607-7), with a `next` link while there
  is more (R4 http.html#search, search.html#count)
- GET /fhir/Patient/{id}, GET /fhir/Device/{id}
- GET /fhir/$export?site=&_since=  the site's resources as NDJSON (application/fhir+ndjson), one
  resource a line, streamed in the same request: the Bulk Data kick-off (bulk-data IG 2.0,
  "$export") made synchronous, since one site's export is small enough to send at once.

Content type application/fhir+json; every error an OperationOutcome (R4 http.html#errors).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource
from sqlmodel import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_bridge.access import Capability, Principal
from cloud_bridge.api.deps import (
    MAX_PAGE, BridgeContext, ContextDep, SessionDep, not_found, require, site_in_scope,
)
from cloud_bridge.fhir.search import (
    MAX_OFFSET, Averaging, ObservationQuery, SearchError, export, find_device, find_patient, observation_page,
    start_of, tokens_of, window_of,
)
from contract.clinical import dangerous_line
from contract.topics import SLUG_PATTERN

FHIR_JSON: Final = "application/fhir+json"
FHIR_NDJSON: Final = "application/fhir+ndjson"
PREFIX: Final = "/fhir"
DEFAULT_COUNT: Final = 50

# A resource id (R4 datatypes: id) in a path: at most 64 characters.
ResourceId = Annotated[str, Path(max_length=64)]

# R4 valueset-issue-type, by HTTP status.
_ISSUE_CODES: Final = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                       413: "too-costly", 503: "transient"}

router = APIRouter(prefix=PREFIX, tags=["fhir"], responses={
    code: {"description": "an OperationOutcome", "content": {FHIR_JSON: {}}} for code in (400, 401, 403, 404)})


def _operation_outcome(status: int, diagnostics: str) -> bytes:
    """An error as FHIR answers one: an OperationOutcome with one issue."""
    return OperationOutcome.model_validate({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": _ISSUE_CODES.get(status, "exception"), "diagnostics": diagnostics}],
    }).model_dump_json().encode()


class FhirErrors:
    """Every error under /fhir as an OperationOutcome (R4 http.html#errors), whoever answered it:
    these routes, the API's login and roles, its request checks, the limits on a request
    (runtime/http_limits.py). They all answer the API's {"error", "reason"}; its reason becomes
    the issue's diagnostics; the status stays but 422, which FHIR does not use for a request
    it cannot read (400, R4 search.html#errors); headers such as WWW-Authenticate stay."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        body = bytearray()

        async def translate(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] >= 400 and content_type.startswith(b"application/json"):
                    held = message  # sent once its body has been read and turned into an outcome
                    return
            elif held is not None and message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._send_outcome(send, held, bytes(body))
                return
            await send(message)

        await self.app(scope, receive, translate)

    @staticmethod
    async def _send_outcome(send: Send, start: Message, body: bytes) -> None:
        status = 400 if start["status"] == 422 else int(start["status"])
        try:
            reason = json.loads(body).get("reason")
        except (ValueError, AttributeError):
            reason = None
        outcome = _operation_outcome(status, reason if isinstance(reason, str) else f"HTTP {status}")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
        headers += [(b"content-type", FHIR_JSON.encode()), (b"content-length", str(len(outcome)).encode())]
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": outcome})


def _resource(resource: Resource) -> Response:
    return Response(resource.model_dump_json(), media_type=FHIR_JSON)


def _read(found: Resource | None, reference: str) -> Response:
    """A read's answer: the resource, or 404 (also for one at another site: its existence is not told)."""
    if found is None:
        raise not_found(f"no {reference} here")
    return _resource(found)


def _invalid(error: SearchError) -> HTTPException:
    # FHIR answers a search parameter it cannot read with 400 (R4 search.html#errors).
    return HTTPException(status_code=400, detail={"error": "invalid_request", "reason": str(error)})


def _pseudonym(parameter: str | None) -> str | None:
    """patient=Patient/{id} or patient={id}."""
    return None if parameter is None else parameter.removeprefix("Patient/")


def _averaging(context: BridgeContext) -> Averaging:
    """The home averages as the doctor's page computes them (cloud_bridge/api/residents.py)."""
    guideline = context.blood_pressure_guideline
    return Averaging(guideline, dangerous_line(guideline, context.alert_rules.dangerous_blood_pressure),
                     context.time_zone)


def _next_url(request: Request, offset: int) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "_offset"] + [("_offset", str(offset))]
    return str(request.url.replace(query=urllib.parse.urlencode(query)))


@router.get("/Observation", response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def search_observations(
    request: Request, session: SessionDep, context: ContextDep, who: Principal = require(Capability.HEALTH_READ),
    patient: Annotated[str | None, Query(max_length=80, description="Patient/{pseudonym} or the pseudonym")] = None,
    date: Annotated[list[str] | None, Query(description="eq, ge, gt, le, lt then a FHIR date; repeat to bound both ends")] = None,
    code: Annotated[str | None, Query(max_length=500, description="system|code or code; several comma-separated")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=MAX_PAGE)] = DEFAULT_COUNT,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """Observations of the residents of the caller's site (a doctor's own), oldest first, then
    their home blood-pressure averages."""
    try:
        query = ObservationQuery(site=who.sites(Capability.HEALTH_READ), patient=_pseudonym(patient),
                                 window=window_of(date or []), tokens=tokens_of(code) if code else [])
        found, more = observation_page(session, query, _averaging(context), offset, count)
    except SearchError as error:
        raise _invalid(error) from None
    base = str(request.base_url).rstrip("/") + PREFIX
    links = [{"relation": "self", "url": str(request.url)}]
    if more:
        links.append({"relation": "next", "url": _next_url(request, offset + count)})
    bundle = Bundle.model_validate({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"fullUrl": f"{base}/Observation/{o.id}", "resource": o, "search": {"mode": "match"}} for o in found],
    })
    return _resource(bundle)


@router.get("/Patient/{patient_id}", response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def read_patient(session: SessionDep, patient_id: ResourceId, who: Principal = require(Capability.HEALTH_READ)) -> Response:
    """A resident by pseudonym: found only among the residents of the caller's site."""
    return _read(find_patient(session, patient_id, who.sites(Capability.HEALTH_READ)), f"Patient/{patient_id}")


@router.get("/Device/{device_id}", response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def read_device(session: SessionDep, device_id: ResourceId, who: Principal = require(Capability.HEALTH_READ)) -> Response:
    """A measuring device or a kiosk (the gateway) of the caller's site."""
    return _read(find_device(session, device_id, who.sites(Capability.HEALTH_READ)), f"Device/{device_id}")


@router.get("/$export", response_class=StreamingResponse, responses={200: {"content": {FHIR_NDJSON: {}}}})
def export_site(
    context: ContextDep, who: Principal = require(Capability.HEALTH_READ),
    site: Annotated[str | None, Query(pattern=SLUG_PATTERN, description="default: the caller's own site, or every site")] = None,
    since: Annotated[str | None, Query(alias="_since", max_length=40, description="readings from this date or instant")] = None,
) -> Response:
    """A site's residents, kiosks, devices, observations and home averages as NDJSON, one resource a line."""
    scope = site_in_scope(who, Capability.HEALTH_READ, site)
    try:
        start = start_of(since) if since is not None else None
    except SearchError as error:
        raise _invalid(error) from None

    def lines() -> Iterator[bytes]:
        with Session(context.engine) as session:
            for resource in export(session, scope, start, _averaging(context)):
                yield resource.model_dump_json().encode() + b"\n"

    return StreamingResponse(lines(), media_type=FHIR_NDJSON)
