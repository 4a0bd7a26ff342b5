"""Enrolment codes (technicians), the kiosk's enrolment with one (no token: the code is the
credential), and taking a kiosk's broker account away. How it works: cloud_bridge/enrolment.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from broker_admin.access import BrokerAccessError, kiosk_username
from broker_admin.dynsec import DynsecError
from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import audit, give_back_attempt, reserve_login_attempt
from cloud_bridge.api.deps import (
    ERROR_RESPONSES,
    ApiError,
    ContextDep,
    Page,
    PageDep,
    RowId,
    SessionDep,
    client_address,
    conflict,
    not_found,
    require,
    site_in_scope,
    unprocessable,
)
from cloud_bridge.enrolment import (
    REFUSAL_REASONS,
    CodeRefusal,
    EnrolmentCode,
    EnrolmentCodeBase,
    create_code,
    find_code,
    give_back_code,
    spend_code,
    state_of,
)
from contract.enrolment import ENROL_PATH, EnrolmentGrant, EnrolmentRequest, KioskBrokerAccess, seal_secret
from contract.sealing import key_id_of, public_key_from
from contract.topics import Slug

router = APIRouter(prefix="/api/v1", tags=["enrolment"], responses=ERROR_RESPONSES)


class CodeRequest(BaseModel):
    site: Slug
    kiosk: Slug
    hours: float | None = Field(default=None, gt=0, le=24 * 30, description="valid this long; the bridge's "
                                "enrolment.code_hours if unset")


class EnrolmentCodePublic(EnrolmentCodeBase):
    state: str = Field(description="open, used, expired or cancelled")


class EnrolmentCodeCreated(EnrolmentCodePublic):
    code: str = Field(description="shown this once: only its hash is kept")


def _public(row: EnrolmentCode, now: datetime) -> dict[str, Any]:
    return row.model_dump(exclude={"code_hash"}) | {"state": state_of(row, now)}


@router.post("/enrolment-codes", response_model=EnrolmentCodeCreated, status_code=status.HTTP_201_CREATED)
def create_enrolment_code(
    session: SessionDep, context: ContextDep, request: Request, body: CodeRequest,
    who: Principal = require(Capability.FLEET_MANAGE),
) -> EnrolmentCodeCreated:
    """A one-time code with which the kiosk `site`/`kiosk` enrols (`doorstep enrol --code`). Audited."""
    site_in_scope(who, Capability.FLEET_MANAGE, body.site)
    now = context.clock()
    hours = body.hours if body.hours is not None else context.enrolment.code_hours
    code, row = create_code(session, context.secret_key, site=body.site, kiosk=body.kiosk, created_by=who.username,
                            now=now, lifetime=timedelta(hours=hours))
    session.flush()
    created = EnrolmentCodeCreated.model_validate(_public(row, now) | {"code": code})
    audit(session, actor=who.username, action="enrolment_code_create", target=f"{body.site}/{body.kiosk}", result="ok",
          now=now, client=client_address(request), code_id=row.id, expires_at=row.expires_at.isoformat())
    session.commit()
    return created


@router.get("/enrolment-codes", response_model=Page[EnrolmentCodePublic])
def list_enrolment_codes(
    session: SessionDep, context: ContextDep, page: PageDep, who: Principal = require(Capability.FLEET_MANAGE),
    site: str | None = None,
) -> Page[EnrolmentCodePublic]:
    """Codes made, newest first, with their state (never the code itself)."""
    site = site_in_scope(who, Capability.FLEET_MANAGE, site)
    conditions = [col(EnrolmentCode.site) == site] if site is not None else []
    total = session.exec(select(func.count()).select_from(EnrolmentCode).where(*conditions)).one()
    rows = session.exec(select(EnrolmentCode).where(*conditions).order_by(col(EnrolmentCode.id).desc())
                        .offset(page.offset).limit(page.limit)).all()
    now = context.clock()
    return Page(items=[EnrolmentCodePublic.model_validate(_public(r, now)) for r in rows], total=total,
                limit=page.limit, offset=page.offset)


@router.delete("/enrolment-codes/{code_id}", status_code=204, response_class=Response)
def cancel_enrolment_code(
    session: SessionDep, context: ContextDep, request: Request, code_id: RowId,
    who: Principal = require(Capability.FLEET_MANAGE),
) -> Response:
    """The code can no longer be used (one given to the wrong person). A used code stays used: 409."""
    row = session.get(EnrolmentCode, code_id, with_for_update=True)
    if row is None or not who.may(Capability.FLEET_MANAGE, row.site):
        raise not_found(f"no enrolment code {code_id}")
    now = context.clock()
    if row.used_at is not None:
        raise conflict(f"enrolment code {code_id} was used at {row.used_at.isoformat()}: revoke the kiosk instead")
    if row.cancelled_at is None:
        row.cancelled_at = now
        audit(session, actor=who.username, action="enrolment_code_cancel", target=f"{row.site}/{row.kiosk}",
              result="ok", now=now, client=client_address(request), code_id=code_id)
        session.commit()
    return Response(status_code=204)


def _refused(session: Session, status_code: int, error: str, reason: str, *, now: datetime, client: str | None,
             target: str | None = None, result: str = "refused") -> HTTPException:
    """The enrolment is audited, then answered with `error`."""
    audit(session, actor="kiosk", action="enrol", target=target, result=result, now=now, client=client, reason=error)
    session.commit()
    return HTTPException(status_code=status_code, detail={"error": error, "reason": reason})


ENROL_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": ApiError, "description": "the code is unknown, used, expired or cancelled (error names which)"},
    429: {"model": ApiError, "description": "too many attempts from this address: wait five minutes"},
    503: {"model": ApiError, "description": "this bridge cannot enrol now (not set up, or the broker is unreachable)"},
}


@router.post(ENROL_PATH.removeprefix("/api/v1"), response_model=EnrolmentGrant, responses=ENROL_RESPONSES)
def enrol(body: EnrolmentRequest, request: Request, session: SessionDep, context: ContextDep) -> EnrolmentGrant:
    """A kiosk spends its code: the broker gets the account `{site}.{kiosk}` with the kiosk's
    rules at once, and the kiosk gets where to connect, its password (sealed for the key it
    sent) and the bridge's payload key. No token: the code is the credential. Five tries per
    address in five minutes (as logins); every try is audited."""
    now, client = context.clock(), client_address(request)
    # Counted beside logins, under a name no username can be ('@' is not in their alphabet).
    attempts_key = f"enrol@{client or 'unknown'}"
    if not reserve_login_attempt(session, attempts_key, now):
        raise _refused(session, 429, "too_many_attempts", "too many enrolment attempts from this address: wait five "
                       "minutes", now=now, client=client)
    found = find_code(session, context.secret_key, body.code)
    state = CodeRefusal.UNKNOWN.value if found is None else state_of(found, now)
    if found is None or state != "open":  # the audit names the kiosk of a used or expired code
        refusal = CodeRefusal(state)
        raise _refused(session, 403, f"code_{refusal.value}", REFUSAL_REASONS[refusal], now=now, client=client,
                       target=f"{found.site}/{found.kiosk}" if found is not None else None)
    assert found.id is not None
    code_id, site, kiosk, target = found.id, found.site, found.kiosk, f"{found.site}/{found.kiosk}"
    accounts, broker = context.broker_accounts, context.enrolment.kiosk_broker
    if accounts is None or broker is None:
        raise _refused(session, 503, "enrolment_unavailable", "this bridge is not set up to enrol kiosks (its "
                       "enrolment.admin and enrolment.kiosk_broker settings): the code is still valid",
                       now=now, client=client, target=target, result="failed")
    if not spend_code(session, code_id, now, client):  # another kiosk spent it a moment ago
        raise _refused(session, 403, "code_used", REFUSAL_REASONS[CodeRefusal.USED], now=now, client=client, target=target)
    try:
        password = accounts.grant_kiosk(site, kiosk)
    except DynsecError as error:
        give_back_code(session, code_id)
        raise _refused(session, 503, "broker_unavailable", f"the broker did not take the kiosk's account ({error}): "
                       "the code is still valid, try again", now=now, client=client, target=target,
                       result="failed") from None
    give_back_attempt(session, attempts_key)
    audit(session, actor="kiosk", action="enrol", target=target, result="ok", now=now, client=client, code_id=code_id,
          kiosk_key_id=key_id_of(public_key_from(body.kiosk_public_key)))
    session.commit()
    return EnrolmentGrant(
        site=site, kiosk=kiosk, payload_public_key=context.payload_public_key,
        broker=KioskBrokerAccess(host=broker.host, port=broker.port, username=kiosk_username(site, kiosk),
                                 sealed_password=seal_secret(body.kiosk_public_key, password),
                                 ca_pem=broker.ca_file.read_text(encoding="ascii") if broker.ca_file else None),
    )


@router.delete("/kiosks/{site}/{kiosk}/broker-account", status_code=204, response_class=Response,
               responses={503: {"model": ApiError, "description": "the broker is unreachable"}})
def revoke_kiosk(
    session: SessionDep, context: ContextDep, request: Request, site: str, kiosk: str,
    who: Principal = require(Capability.FLEET_MANAGE),
) -> Response:
    """Take the kiosk's broker account away, on the running broker: it is disconnected at once and
    refused when it comes back. What it sent stays; enrol it again with a new code. Audited."""
    site_in_scope(who, Capability.FLEET_MANAGE, site)
    try:
        kiosk_username(site, kiosk)
    except BrokerAccessError as error:
        raise unprocessable(str(error)) from None
    if context.broker_accounts is None:
        raise conflict("this bridge holds no broker admin account (enrolment.admin): remove the kiosk on the broker "
                       "host with `doorstep broker remove`")
    now = context.clock()
    try:
        removed = context.broker_accounts.revoke_kiosk(site, kiosk)
    except DynsecError as error:
        raise HTTPException(status_code=503, detail={"error": "broker_unavailable", "reason": str(error)}) from None
    if not removed:
        raise not_found(f"kiosk {site}/{kiosk} has no account on the broker")
    audit(session, actor=who.username, action="kiosk_revoke", target=f"{site}/{kiosk}", result="ok", now=now,
          client=client_address(request))
    session.commit()
    return Response(status_code=204)
