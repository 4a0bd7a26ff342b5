"""Enrolment: what a fresh kiosk sends the bridge with its one-time code, and what it gets back
(`POST /api/v1/enrol`, docs/deployment.md "Enrolling a kiosk"). One definition for the bridge
that answers and `doorstep enrol` that asks.

The kiosk sends the public half of an X25519 key pair it has just made; the bridge seals the
broker password it made for the kiosk in a libsodium sealed box for that key (as readings are
sealed for the bridge, contract/sealing.py). Only the process that asked can open the answer: a
proxy that logs response bodies, or a bridge URL typed with http:// by mistake, shows a box,
not a password.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from pydantic import BaseModel, Field, field_validator

from contract.sealing import public_key_from
from contract.topics import Slug

ENROL_PATH: Final = "/api/v1/enrol"
# A code as a person types it: letters and digits of Crockford's base32 in groups (cloud_bridge/
# enrolment.py makes them); spaces and dashes are dropped before it is checked.
CODE_MAX_CHARS: Final = 64


class EnrolmentRequest(BaseModel):
    code: str = Field(min_length=1, max_length=CODE_MAX_CHARS, description="the one-time code a technician created")
    kiosk_public_key: str = Field(max_length=64, description="base64 X25519 public key the answer's secrets are sealed for")

    @field_validator("kiosk_public_key")
    @classmethod
    def _a_public_key(cls, text: str) -> str:
        public_key_from(text)
        return text


class KioskBrokerAccess(BaseModel):
    """Where the kiosk connects, and as whom (the account is `{site}.{kiosk}`, broker_admin/access.py)."""

    host: str
    port: int = Field(ge=1, le=65535)
    username: str
    sealed_password: str = Field(description="base64 sealed box of the password, for kiosk_public_key")
    ca_pem: str | None = Field(default=None, description="the CA that signed the broker's certificate; None: plaintext")


class EnrolmentGrant(BaseModel):
    site: Slug
    kiosk: Slug
    broker: KioskBrokerAccess
    payload_public_key: str | None = Field(
        default=None, description="the bridge's key readings are sealed for (the agent's payload_public_key)"
    )


def seal_secret(public_key_text: str, secret: str) -> str:
    return base64.b64encode(SealedBox(public_key_from(public_key_text)).encrypt(secret.encode())).decode()


def open_secret(private_key: PrivateKey, sealed: str) -> str:
    """ValueError when the box is not one sealed for this key."""
    try:
        return SealedBox(private_key).decrypt(base64.b64decode(sealed, validate=True)).decode()
    except (CryptoError, binascii.Error, UnicodeDecodeError) as error:
        raise ValueError(f"the sealed password cannot be opened with this kiosk's key: {error}") from None

