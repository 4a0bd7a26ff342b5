"""People and scripts who use the bridge's API, their tokens, and the audit log.

Nothing secret is stored as given. Passwords are kept as scrypt hashes (RFC 7914; n=2^14, r=8,
p=1, a 16-byte salt each). Tokens are 32 random bytes shown once; the database keeps their
HMAC-SHA256 under the bridge's `secret_key`, so a copy of the database alone cannot be used to
check a stolen token, and rotating the key revokes every token at once. A login makes a session
token that expires; `doorstep tokens create` makes a long-lived one for a script.

Every login (and every refused one), logout, token issued and command sent is written to
`audit_log`: who, what, when, from where, and the result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import JSON, func, update
from sqlmodel import Field, Session, SQLModel, col, select

from cloud_bridge.access import ROLES_WITH_A_SITE, Principal, Role

# scrypt's cost: about 50 ms and 16 MB per login on a small server (RFC 7914, section 2).
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
TOKEN_BYTES: Final = 32
# Failed logins of one username within the window, after which logins are refused for it.
LOGIN_FAILURES_ALLOWED: Final = 5
LOGIN_FAILURE_WINDOW: Final = timedelta(minutes=5)
# last_used_at is written at most this often per token: not a database write per request.
LAST_USED_RESOLUTION: Final = timedelta(minutes=1)


class User(SQLModel, table=True):
    __tablename__ = "users"

    username: str = Field(primary_key=True, max_length=64, regex=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    role: str = Field(max_length=32)
    site: str | None = Field(default=None, max_length=32, description="for station staff and doctors: their site")
    password_hash: str | None = Field(default=None, max_length=256, description="None: tokens only (a script)")
    created_at: datetime
    disabled: bool = False


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)
    username: str = Field(index=True, max_length=64)
    purpose: str = Field(max_length=16, description="session (a login) or api (a script's)")
    label: str | None = Field(default=None, max_length=100)
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str = Field(max_length=64, index=True, description="the username, as given when it is a refused login")
    action: str = Field(max_length=32)
    target: str | None = Field(default=None, max_length=200)
    result: str = Field(max_length=16, description="ok, refused or failed")
    client: str | None = Field(default=None, max_length=64, description="the caller's address")
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class AccountError(ValueError):
    pass


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    return hmac.compare_digest(actual, expected)


def token_hash(secret_key: str, token: str) -> str:
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def add_user(session: Session, *, username: str, role: Role, site: str | None, password: str | None, now: datetime) -> User:
    if role in ROLES_WITH_A_SITE and site is None:
        raise AccountError(f"a {role} belongs to a site: give --site")
    if role not in ROLES_WITH_A_SITE and site is not None:
        raise AccountError(f"a {role} is not bound to a site: leave --site out")
    if session.get(User, username) is not None:
        raise AccountError(f"there is already a user {username!r}")
    user = User(username=username, role=role.value, site=site, created_at=now,
                password_hash=hash_password(password) if password else None)
    User.model_validate(user.model_dump())  # the username's pattern (table models skip validation)
    session.add(user)
    return user


def issue_token(
    session: Session, secret_key: str, *, username: str, purpose: str, now: datetime, lifetime: timedelta | None,
    label: str | None = None,
) -> tuple[str, ApiToken]:
    """A new token (returned once, never stored) and its row."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken(token_hash=token_hash(secret_key, token), username=username, purpose=purpose, label=label,
                   created_at=now, expires_at=now + lifetime if lifetime else None)
    session.add(row)
    return token, row


@dataclass(frozen=True, slots=True)
class Authenticated:
    principal: Principal
    token_hash: str


def authenticate(session: Session, secret_key: str, token: str, now: datetime) -> Authenticated | None:
    """The principal a token stands for, or None (unknown, expired, revoked, or a disabled user)."""
    hashed = token_hash(secret_key, token)
    found = session.exec(
        select(ApiToken, User).join(User, col(User.username) == col(ApiToken.username)).where(col(ApiToken.token_hash) == hashed)
    ).first()
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or user.disabled or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(col(ApiToken.token_hash) == hashed).values(last_used_at=now))
        session.commit()
    return Authenticated(Principal(user.username, Role(user.role), user.site), hashed)


def login(session: Session, username: str, password: str, now: datetime) -> User | None:
    """The user, if the password is theirs and they are not locked out by recent failures."""
    if recent_login_failures(session, username, now) >= LOGIN_FAILURES_ALLOWED:
        return None
    user = session.get(User, username)
    if user is None or user.disabled or user.password_hash is None:
        hash_password(password)  # the same time whether or not the user exists
        return None
    return user if password_matches(password, user.password_hash) else None


def recent_login_failures(session: Session, username: str, now: datetime) -> int:
    return int(
        session.exec(
            select(func.count()).select_from(AuditEntry).where(
                col(AuditEntry.actor) == username[:64],
                col(AuditEntry.action) == "login",
                col(AuditEntry.result) == "refused",
                col(AuditEntry.at) > now - LOGIN_FAILURE_WINDOW,
            )
        ).one()
    )


def revoke_all(session: Session, username: str, now: datetime) -> int:
    """End every live token of `username`; returns how many."""
    result = session.execute(
        update(ApiToken)
        .where(col(ApiToken.username) == username, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke(session: Session, token_hash_value: str, now: datetime) -> None:
    session.execute(update(ApiToken).where(col(ApiToken.token_hash) == token_hash_value).values(revoked_at=now))


def audit(
    session: Session, *, actor: str, action: str, result: str, now: datetime, target: str | None = None,
    client: str | None = None, **detail: Any,
) -> None:
    """Add an audit entry to the session's transaction (the caller commits)."""
    session.add(AuditEntry(at=now, actor=actor[:64], action=action, target=target[:200] if target else None,
                           result=result, client=client[:64] if client else None, detail=detail))
