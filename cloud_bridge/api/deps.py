"""What every route may depend on: a database session, the bridge's context, pages, errors."""

from __future__ import annotations

import pathlib
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import Authenticated, authenticate
from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.broker_link import BrokerLink
from cloud_bridge.enrolment import BrokerAccounts, EnrolmentSettings
from cloud_bridge.startup import DatabaseWait
from contract.clinical import BloodPressureGuideline
from cloud_bridge.jobs import CommandPublisher
from cloud_bridge.metrics import BridgeMetrics
from cloud_bridge.rollouts import Delivery
from contract.storable import EARLIEST_TIME, INT32_MAX, INT64_MAX, LATEST_TIME

# The dashboard's login keeps its session token in this cookie (HttpOnly, SameSite=Strict).
SESSION_COOKIE = "doorstep_session"

MAX_PAGE = 500


@dataclass
class BridgeContext:
    """What the API needs of the running bridge, passed in (no module-level state)."""

    engine: Engine
    secret_key: str = "development-only-secret"
    session_lifetime: timedelta = timedelta(hours=12)
    metrics: BridgeMetrics = field(default_factory=BridgeMetrics)
    publisher: CommandPublisher | None = None  # None: commands are published by a worker's sweep
    command_ttl: timedelta = timedelta(minutes=5)
    notify: bool = False
    on_alerts: Callable[[], None] = lambda: None  # wake the webhook sender
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    alert_rules: AlertRules = field(default_factory=AlertRules)
    blood_pressure_guideline: BloodPressureGuideline = field(default_factory=BloodPressureGuideline)
    dashboard_refresh_s: float = 5.0
    broker_link: BrokerLink | None = None  # None: no ingest in this process
    startup: DatabaseWait | None = None  # None: started already (tests, tools)
    enrolment: EnrolmentSettings = field(default_factory=EnrolmentSettings)
    broker_accounts: BrokerAccounts | None = None  # None: enrolment.admin not set, kiosks cannot enrol
    payload_public_key: str | None = None  # handed to each kiosk that enrols
    resident_keys: Mapping[str, SecretStr] = field(default_factory=dict)  # per site (cloud_bridge/resident_lookup.py)
    time_zone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))  # the sites' local days
    releases_dir: pathlib.Path = pathlib.Path("doorstep-releases")
    releases_max_bytes: int = 512 * 1024 * 1024
    delivery: Delivery = field(default_factory=lambda: Delivery("http://127.0.0.1:8080", timedelta(days=1)))


def get_context(request: Request) -> BridgeContext:
    context: BridgeContext = request.app.state.context
    return context


def get_session(context: Annotated[BridgeContext, Depends(get_context)]) -> Iterator[Session]:
    with Session(context.engine) as session:
        yield session


ContextDep = Annotated[BridgeContext, Depends(get_context)]
SessionDep = Annotated[Session, Depends(get_session)]


_bearer = HTTPBearer(auto_error=False, description="a token from POST /api/v1/login or `doorstep tokens create`")


def authenticated(
    request: Request,
    session: SessionDep,
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Authenticated:
    token = credentials.credentials if credentials is not None else request.cookies.get(SESSION_COOKIE)
    found = authenticate(session, context.secret_key, token, context.clock()) if token else None
    if found is None:
        if credentials is None and _is_a_browser_opening(request):
            # An API address opened in a browser (the demo prints some): its login first, then
            # back here, rather than a 401 in JSON that a person cannot act on.
            raise HTTPException(status_code=303, headers={"Location": _login_then(request)})
        raise HTTPException(
            status_code=401,
            detail={"error": "unauthenticated", "reason": "a valid token is required (Authorization: Bearer …)"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


def _is_a_browser_opening(request: Request) -> bool:
    """A person's browser opening this address itself (a link, the address bar), not a script
    (Fetch Metadata, https://www.w3.org/TR/fetch-metadata/ §2.3 Sec-Fetch-Mode)."""
    return request.method == "GET" and request.headers.get("sec-fetch-mode") == "navigate"


def _login_then(request: Request) -> str:
    asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/dashboard/?" + urllib.parse.urlencode({"next": asked})


AuthenticatedDep = Annotated[Authenticated, Depends(authenticated)]


def principal(found: AuthenticatedDep) -> Principal:
    return found.principal


PrincipalDep = Annotated[Principal, Depends(principal)]


def forbidden(reason: str) -> HTTPException:
    return HTTPException(status_code=403, detail={"error": "forbidden", "reason": reason})


def require(capability: Capability) -> Any:
    """A dependency: the principal, if it holds `capability` over some site at least."""

    def check(who: PrincipalDep) -> Principal:
        if not who.may(capability):
            raise forbidden(f"a {who.role} may not use {capability}")
        return who

    return Depends(check)


def site_in_scope(who: Principal, capability: Capability, site: str | None) -> str | None:
    """The site a query is limited to: the one asked for, or the principal's own when its role
    is bound to a site. Asking for another site is forbidden, not silently narrowed."""
    if not who.may(capability, site):
        raise forbidden(f"a {who.role} of site {who.site} may not use {capability} at site {site}")
    return site if site is not None else who.sites(capability)


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


class PageParams:
    def __init__(
        self,
        limit: int = Query(default=100, ge=1, le=MAX_PAGE, description=f"at most {MAX_PAGE}"),
        # Bounded like the databases' 64-bit integers: a larger offset is refused (422), not a 500.
        offset: int = Query(default=0, ge=0, le=INT64_MAX),
    ) -> None:
        self.limit, self.offset = limit, offset


PageDep = Annotated[PageParams, Depends()]

# A row's id in a path: ids are 32-bit columns, and PostgreSQL casts the parameter to the
# column's type (a larger one is "integer out of range", a 500), so larger ids are refused.
RowId = Annotated[int, Path(ge=1, le=INT32_MAX)]


def _storable_time(value: datetime) -> datetime:
    """A time to compare with stored ones: within the contract's years (contract/storable.py), so
    that converting it to UTC for the query cannot overflow (year 1 at +14:00 would)."""
    earliest, latest = EARLIEST_TIME.replace(tzinfo=None), LATEST_TIME.replace(tzinfo=None)
    naive = value.replace(tzinfo=None)
    if not earliest <= naive <= latest:
        raise ValueError(f"must lie between {EARLIEST_TIME.year} and {LATEST_TIME.year}")
    return value


QueryTime = Annotated[datetime, AfterValidator(_storable_time)]

Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int
    limit: int
    offset: int


class ApiError(BaseModel):
    """Every error the API answers: a machine-readable code and a reason in plain words."""

    error: str
    reason: str
    problems: list[dict[str, Any]] | None = None


def not_found(reason: str) -> HTTPException:
    return HTTPException(status_code=404, detail={"error": "not_found", "reason": reason})


def conflict(reason: str) -> HTTPException:
    return HTTPException(status_code=409, detail={"error": "conflict", "reason": reason})


def unprocessable(reason: str) -> HTTPException:
    return HTTPException(status_code=422, detail={"error": "invalid_request", "reason": reason})


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ApiError, "description": "no valid token"},
    403: {"model": ApiError, "description": "the token's role may not do this (here)"},
    404: {"model": ApiError, "description": "no such thing"},
    409: {"model": ApiError, "description": "not allowed in its present state"},
    422: {"model": ApiError, "description": "the request does not fit (the reason names the field)"},
}
