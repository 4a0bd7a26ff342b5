"""Logging in and out, who am I, and the audit log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from cloud_bridge.access import ROLE_CAPABILITIES, Capability, Principal
from cloud_bridge.accounts import AuditEntry, audit, issue_token, login, revoke
from cloud_bridge.api.deps import (
    ERROR_RESPONSES,
    SESSION_COOKIE,
    AuthenticatedDep,
    ContextDep,
    Page,
    PageDep,
    PrincipalDep,
    SessionDep,
    client_address,
    require,
)

router = APIRouter(prefix="/api/v1", tags=["auth"], responses=ERROR_RESPONSES)


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionToken(BaseModel):
    token: str
    expires_at: datetime
    username: str
    role: str
    site: str | None


class Me(BaseModel):
    username: str
    role: str
    site: str | None
    capabilities: dict[str, str]


@router.post("/login", response_model=SessionToken)
def log_in(credentials: Credentials, request: Request, response: Response, session: SessionDep, context: ContextDep) -> SessionToken:
    """A session token for a person (also set as an HttpOnly cookie for the dashboard). A
    username has five password checks in five minutes from its first attempt, reserved before
    each check (so concurrent guesses cannot share one): past them it is locked out for the rest
    of that window. Every refusal is the same 401, whether the username exists or not."""
    now = context.clock()
    outcome = login(session, credentials.username, credentials.password, now)
    user = outcome.user
    client = client_address(request)
    if user is None:
        # The audit tells a lockout from a wrong password (for whoever reads it); the answer does not.
        audit(session, actor=credentials.username, action="login", result="refused", now=now, client=client,
              locked_out=outcome.locked_out)
        session.commit()
        raise HTTPException(status_code=401, detail={"error": "unauthenticated", "reason": "wrong username or password"})
    token, row = issue_token(session, context.secret_key, username=user.username, purpose="session", now=now,
                             lifetime=context.session_lifetime)
    audit(session, actor=user.username, action="login", result="ok", now=now, client=client)
    session.commit()
    assert row.expires_at is not None
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        max_age=int(context.session_lifetime.total_seconds()), secure=request.url.scheme == "https")
    return SessionToken(token=token, expires_at=row.expires_at, username=user.username, role=user.role, site=user.site)


@router.post("/logout", status_code=204)
def log_out(found: AuthenticatedDep, request: Request, response: Response, session: SessionDep, context: ContextDep) -> None:
    """The token used for this request stops working."""
    now = context.clock()
    revoke(session, found.token_hash, now)
    audit(session, actor=found.principal.username, action="logout", result="ok", now=now, client=client_address(request))
    session.commit()
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me", response_model=Me)
def whoami(who: PrincipalDep) -> Me:
    return Me(username=who.username, role=who.role.value, site=who.site,
              capabilities={c.value: s.value for c, s in ROLE_CAPABILITIES[who.role].items()})


class AuditPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    result: str
    client: str | None
    detail: dict[str, object]


@router.get("/audit", response_model=Page[AuditPublic])
def list_audit(
    session: SessionDep, page: PageDep, _who: Principal = require(Capability.AUDIT_READ),
    actor: str | None = None, action: str | None = None,
) -> Page[AuditPublic]:
    """Logins, logouts, tokens issued and commands sent, newest first."""
    conditions = []
    if actor is not None:
        conditions.append(col(AuditEntry.actor) == actor)
    if action is not None:
        conditions.append(col(AuditEntry.action) == action)
    total = session.exec(select(func.count()).select_from(AuditEntry).where(*conditions)).one()
    rows = session.exec(
        select(AuditEntry).where(*conditions).order_by(col(AuditEntry.id).desc()).offset(page.offset).limit(page.limit)
    ).all()
    return Page(items=[AuditPublic.model_validate(r, from_attributes=True) for r in rows], total=total,
                limit=page.limit, offset=page.offset)
