"""Health readings sealed for the bridge: the kiosk can write them but never read them back.

A kiosk keeps residents' readings for days on an SD card that can be stolen with the kiosk, and
sends them through a broker that may be exposed. So a reading's payload is sealed, when the
record is first saved, with libsodium's sealed box (crypto_box_seal: an ephemeral X25519 key
agreed with the bridge's public key, then XSalsa20-Poly1305) for the bridge's public key. The
kiosk holds no key that opens it; only the bridge's workers hold the private key. The rest of
the envelope (ids, sequence, times, device) stays readable, as routing and deduplication need.

Keys are named by `key_id`, the first 8 bytes of the SHA-256 of the public key in hex, so a
bridge can hold an old and a new key while kiosks move from one to the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from contract.envelope import SealedPayload
from contract.errors import ContractError


class UnknownPayloadKey(LookupError):
    """Sealed for a key this bridge does not hold: a configuration to fix here, not the
    kiosk's fault, so the message is neither stored nor refused (the kiosk sends it again)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"sealed for payload key {key_id}, which this bridge does not hold")
        self.key_id = key_id


def key_id_of(public_key: PublicKey) -> str:
    return hashlib.sha256(bytes(public_key)).hexdigest()[:16]


def encode_key(key: PublicKey | PrivateKey) -> str:
    return base64.b64encode(bytes(key)).decode()


def public_key_from(text: str) -> PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return PublicKey(raw)
    except (binascii.Error, ValueError, TypeError) as error:
        raise ValueError(f"not a base64 X25519 public key (32 bytes): {error}") from None


def private_key_from_file(path: Path) -> PrivateKey:
    try:
        raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
        return PrivateKey(raw)
    except OSError as error:
        raise ValueError(f"{path}: cannot read: {error.strerror}") from None
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a base64 X25519 private key (32 bytes): {error}") from None


def write_key_pair(directory: Path) -> tuple[Path, str]:
    """A new key pair: the private key in `directory`/payload.key (mode 0600), for the bridge;
    returns that path and the public key (base64), for every kiosk's configuration."""
    directory.mkdir(parents=True, exist_ok=True)
    private = PrivateKey.generate()
    path = directory / "payload.key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(encode_key(private) + "\n")
    return path, encode_key(private.public_key)


@dataclass(frozen=True, slots=True)
class Sealer:
    """The kiosk's side: seals payloads for one public key."""

    public_key: PublicKey

    @classmethod
    def from_text(cls, text: str) -> Sealer:
        return cls(public_key_from(text))

    def seal(self, payload: dict[str, Any]) -> SealedPayload:
        plain = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        box = SealedBox(self.public_key).encrypt(plain)
        return SealedPayload(key_id=key_id_of(self.public_key), box=base64.b64encode(box).decode())


class Opener:
    """The bridge's side: opens payloads sealed for any of its private keys."""

    def __init__(self, keys: list[PrivateKey]) -> None:
        self._boxes = {key_id_of(key.public_key): SealedBox(key) for key in keys}

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._boxes)

    def open(self, sealed: SealedPayload) -> bytes:
        """The payload's JSON, for the reader to validate as it would an unsealed payload;
        UnknownPayloadKey for a key not held, ContractError for a box that is not one
        (tampered, truncated, not sealed for this key)."""
        box = self._boxes.get(sealed.key_id)
        if box is None:
            raise UnknownPayloadKey(sealed.key_id)
        try:
            return box.decrypt(base64.b64decode(sealed.box, validate=True))
        except (CryptoError, binascii.Error, ValueError) as error:
            raise ContractError(f"sealed: cannot be opened with key {sealed.key_id}: {error}") from None
