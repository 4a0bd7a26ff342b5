"""People and scripts who use the bridge's API, their tokens, and the audit log.

Nothing secret is stored as given. Passwords are kept as scrypt hashes (RFC 7914; n=2^14, r=8,
p=1, a 16-byte salt each). Tokens are 32 random bytes shown once; the database keeps their
HMAC-SHA256 under the bridge's `secret_key`, so a copy of the database alone cannot be used to
check a stolen token, and rotating the key revokes every token at once. A login makes a session
token that expires; `doorstep tokens create` makes a long-lived one for a script.

Every login (and every refused one), logout, token issued and command sent is written to
`audit_log`: who, what, when, from where, and the result.

Guessing is limited per username in `login_attempts`, and the limit holds under concurrency and
across workers: an attempt is reserved in the database, in one atomic statement committed on
its own, *before* its password is checked; the reservation's number decides whether it may be
checked at all. (Counting the audit log's refusals before the check and writing them after it
let a burst of simultaneous guesses all see "no failures yet": 20 at once cost 20 checks.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import JSON, case, delete, update
from sqlmodel import Field, Session, SQLModel, col, select

from cloud_bridge.access import ROLES_WITH_A_SITE, Principal, Role
from cloud_bridge.store import dialect_insert, table_of

# scrypt's cost: about 50 ms and 16 MB per login on a small server (RFC 7914, section 2).
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
TOKEN_BYTES: Final = 32
# Password checks of one username within a window (from its first attempt), beyond which its
# logins are refused unchecked until the window ends. A successful login gives its own back.
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


class LoginAttempts(SQLModel, table=True):
    """The password checks reserved for one username in its current window. Any username that
    is tried has a row, whether or not it exists, so a lockout does not tell which exist."""

    __tablename__ = "login_attempts"

    username: str = Field(primary_key=True, max_length=64)
    window_started_at: datetime = Field(index=True, description="the first attempt of the window")
    attempts: int = Field(description="checks reserved in the window, less the logins that succeeded")


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


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    user: User | None  # None: refused
    locked_out: bool = False  # refused unchecked: the username's checks in this window are spent


def login(session: Session, username: str, password: str, now: datetime) -> LoginOutcome:
    """The user, if the password is theirs and the username's allowance of checks is not
    spent. Commits `session` (call it with nothing pending).

    The allowance is taken first (reserve_login_attempt, committed on its own), so N
    simultaneous guesses, on any number of workers, cost at most LOGIN_FAILURES_ALLOWED checks.
    An unknown, disabled or token-only user costs one scrypt check all the same, so the answer
    takes as long whether or not the username exists."""
    if not reserve_login_attempt(session, username, now):
        return LoginOutcome(None, locked_out=True)
    user = session.get(User, username)
    if user is None or user.disabled or user.password_hash is None:
        password_matches(password, _dummy_hash())
        return LoginOutcome(None)
    if not password_matches(password, user.password_hash):
        return LoginOutcome(None)
    give_back_attempt(session, username)
    return LoginOutcome(user)


def reserve_login_attempt(session: Session, username: str, now: datetime) -> bool:
    """Take one password check from `username`'s allowance: whether it may be checked.

    One INSERT … ON CONFLICT DO UPDATE … RETURNING, committed before any check: PostgreSQL
    locks the row and SQLite its database for the statement, so concurrent attempts (threads or
    workers) each get a distinct count and no two read the same one. A window that has ended
    starts afresh with this attempt."""
    table = table_of(LoginAttempts)
    ended = table.c.window_started_at <= now - LOGIN_FAILURE_WINDOW
    statement = dialect_insert(session, LoginAttempts).values(username=username[:64], window_started_at=now, attempts=1)
    upsert = statement.on_conflict_do_update(
        index_elements=["username"],
        # Both read the row as it was (SQL evaluates every SET against the old row).
        set_={"attempts": case((ended, 1), else_=table.c.attempts + 1),
              "window_started_at": case((ended, now), else_=table.c.window_started_at)},
    ).returning(table.c.attempts)
    attempts = int(session.execute(upsert).scalar_one())
    session.commit()
    return attempts <= LOGIN_FAILURES_ALLOWED


def give_back_attempt(session: Session, username: str) -> None:
    """A right password is not a failure: its reservation is returned (in the caller's
    transaction, committed with the login), so a person logging in often is never locked out."""
    session.execute(update(LoginAttempts).where(col(LoginAttempts.username) == username, col(LoginAttempts.attempts) > 0)
                    .values(attempts=col(LoginAttempts.attempts) - 1))


def prune_login_attempts(session: Session, now: datetime) -> int:
    """Delete the rows of windows that have ended (a guesser's made-up usernames among them)."""
    result = session.execute(delete(LoginAttempts).where(col(LoginAttempts.window_started_at) <= now - LOGIN_FAILURE_WINDOW))
    return int(result.rowcount)  # type: ignore[attr-defined]


def _dummy_hash() -> str:
    """A stored hash with the real parameters but a random salt and digest: no password is its
    (a 2**-512 chance), and checking one costs what checking a user's does."""
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(secrets.token_bytes(16)).decode(), base64.b64encode(secrets.token_bytes(64)).decode()])


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
