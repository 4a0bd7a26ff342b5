"""Enrolment of a new kiosk by a one-time code, and its revocation (issue 19).

    technician: POST /api/v1/enrolment-codes {site, kiosk}  ──▶ a code, shown once
    the fresh Pi: doorstep enrol --bridge URL --code CODE   ──▶ POST /api/v1/enrol {code, key}
    the bridge: code checked and spent ─▶ broker account {site}.{kiosk} granted on the running
                broker (dynamic-security plugin) ─▶ broker address, CA, sealed password, payload key

A code is 60 random bits in Crockford's base32 (12 characters, typed in three groups of four),
kept only as its HMAC-SHA256 under the bridge's `secret_key` (as API tokens are,
cloud_bridge/accounts.py), valid for `enrolment.code_hours` and spent by its first successful
use. Guessing is limited per caller address by the login attempt limiter (5 tries in 5 minutes):
with 2^60 codes and a handful live, a guess succeeds about once in 10^17 tries. Every creation,
use, refusal and cancellation is in the audit log.

Spending is one conditional UPDATE (still unspent, not cancelled, not expired), so two kiosks
racing with one code cannot both be enrolled. If the broker then cannot be reached, the code is
given back: the technician's code still works once the broker is back.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, Field, FilePath
from sqlalchemy import update
from sqlmodel import Field as Column
from sqlmodel import Session, SQLModel, col, select

from broker_admin import access
from broker_admin.dynsec import DynsecAdmin
from cloud_bridge.accounts import token_hash
from runtime.mqtt import BrokerSettings

# Crockford's base32: no I, L, O or U, so a code read aloud or off a phone is not mistyped.
CODE_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS: Final = 12  # 60 bits
CODE_GROUP: Final = 4
# What people type for what they see (Crockford's decoding).
_READ_AS: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})


class KioskBrokerSettings(BaseModel):
    """The broker as kiosks reach it (not the bridge's own loopback `broker`)."""

    host: str = Field(description="the name kiosks dial, one the broker's certificate holds")
    port: int = Field(default=8883, ge=1, le=65535, description="the TLS and password listener")
    ca_file: FilePath | None = Field(default=None, description="the CA of the broker's certificate, handed to each kiosk; "
                                     "none: plaintext (a laptop only)")


class EnrolmentSettings(BaseModel):
    code_hours: float = Field(default=24, gt=0, le=24 * 30, description="an enrolment code expires this long after it is made")
    admin: BrokerSettings | None = Field(
        default=None, description="the dynamic-security plugin's admin account on the broker's loopback listener "
        "(`doorstep broker init`); none: codes can be made, but a kiosk's enrolment is refused (503)")
    kiosk_broker: KioskBrokerSettings | None = Field(default=None, description="the broker as kiosks reach it")


class CodeRefusal(StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


REFUSAL_REASONS: Final = {
    CodeRefusal.UNKNOWN: "no such enrolment code: check it, or ask the technician for a new one",
    CodeRefusal.USED: "this enrolment code has been used already: ask the technician for a new one",
    CodeRefusal.EXPIRED: "this enrolment code has expired: ask the technician for a new one",
    CodeRefusal.CANCELLED: "this enrolment code was cancelled: ask the technician for a new one",
}


class EnrolmentCodeBase(SQLModel):
    id: int | None = Column(default=None, primary_key=True)
    site: str = Column(max_length=32)
    kiosk: str = Column(max_length=32)
    created_by: str = Column(max_length=64)
    created_at: datetime
    expires_at: datetime = Column(index=True)
    used_at: datetime | None = None
    used_from: str | None = Column(default=None, max_length=64, description="the address the kiosk enrolled from")
    cancelled_at: datetime | None = None


class EnrolmentCode(EnrolmentCodeBase, table=True):
    __tablename__ = "enrolment_codes"

    code_hash: str = Column(max_length=64, unique=True, index=True)


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i:i + CODE_GROUP] for i in range(0, CODE_CHARS, CODE_GROUP))


def normalise_code(typed: str) -> str:
    return "".join(typed.split()).replace("-", "").upper().translate(_READ_AS)


def state_of(row: EnrolmentCodeBase, now: datetime) -> str:
    if row.used_at is not None:
        return CodeRefusal.USED.value
    if row.cancelled_at is not None:
        return CodeRefusal.CANCELLED.value
    return CodeRefusal.EXPIRED.value if row.expires_at <= now else "open"


def create_code(
    session: Session, secret_key: str, *, site: str, kiosk: str, created_by: str, now: datetime, lifetime: timedelta
) -> tuple[str, EnrolmentCode]:
    """A new code (returned once, never stored) and its row, in the caller's transaction."""
    code = new_code()
    row = EnrolmentCode(site=site, kiosk=kiosk, created_by=created_by, created_at=now, expires_at=now + lifetime,
                        code_hash=token_hash(secret_key, normalise_code(code)))
    session.add(row)
    return code, row


def find_code(session: Session, secret_key: str, typed: str) -> EnrolmentCode | None:
    return session.exec(select(EnrolmentCode).where(
        col(EnrolmentCode.code_hash) == token_hash(secret_key, normalise_code(typed)))).first()


def spend_code(session: Session, code_id: int, now: datetime, client: str | None) -> bool:
    """Mark the code used, if nobody did meanwhile; committed at once, before the broker is asked."""
    result = session.execute(
        update(EnrolmentCode)
        .where(col(EnrolmentCode.id) == code_id, col(EnrolmentCode.used_at).is_(None),
               col(EnrolmentCode.cancelled_at).is_(None), col(EnrolmentCode.expires_at) > now)
        .values(used_at=now, used_from=client[:64] if client else None)
    )
    session.commit()
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def give_back_code(session: Session, code_id: int) -> None:
    """The broker did not take the account: the code is unspent again (the caller commits)."""
    session.execute(update(EnrolmentCode).where(col(EnrolmentCode.id) == code_id).values(used_at=None, used_from=None))


class BrokerAccounts:
    """The bridge's hold on the broker's accounts: one admin connection per change, one change at
    a time in this worker (the admin account's client id is its username on the shipped broker,
    so two connections at once would take each other's session: broker_admin/dynsec.py)."""

    def __init__(self, admin: BrokerSettings) -> None:
        self._admin = admin
        self._lock = threading.Lock()

    def grant_kiosk(self, site: str, kiosk: str) -> str:
        """A new password for kiosk {site}.{kiosk}, with its rules; a kiosk enrolled before gets a
        new password and whoever held the old one is disconnected. Raises DynsecError."""
        password = access.new_password()
        with self._lock, DynsecAdmin(self._admin) as admin:
            access.grant(admin, access.kiosk_username(site, kiosk), password)
        return password

    def revoke_kiosk(self, site: str, kiosk: str) -> bool:
        """Take the kiosk's account away; the broker disconnects it at once. False: it had none."""
        with self._lock, DynsecAdmin(self._admin) as admin:
            return access.revoke(admin, access.kiosk_username(site, kiosk))
