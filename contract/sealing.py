"""Health readings sealed for the bridge: the kiosk can write them but never read them back.

A kiosk keeps residents' readings for days on an SD card that can be stolen with the kiosk, and
sends them through a broker that may be exposed. So a reading's payload is sealed, when the
record is first saved, with libsodium's sealed box (crypto_box_seal: an ephemeral X25519 key
agreed with the bridge's public key, then XSalsa20-Poly1305) for the bridge's public key. The
kiosk holds no key that opens it; only the bridge's workers hold the private key. The rest of
the envelope (ids, sequence, times, device) stays readable, as routing and deduplication need.

Keys are named by `key_id`, the first 8 bytes of the SHA-256 of the public key in hex, so a
bridge can hold an old and a new key while kiosks move from one to the other.

A sealed box costs the bridge an X25519 agreement per reading (52 µs of its 100 µs a drained
record). So a kiosk whose bridge workers all say they open it seals with a *session box*
instead: crypto_box from a key pair the agent makes in memory and replaces every
SESSION_SEALS seals or SESSION_S seconds, whose public half travels as `sender`. The bridge
agrees a key once per session (kept for SESSIONS_KEPT sessions) and opens each reading with
XSalsa20-Poly1305 alone. The session's private key is never written anywhere, so the kiosk's
disk still holds nothing that opens a reading; what the running agent holds opens the readings
of its current session only, which that agent measured itself a moment before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import functools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey, SealedBox

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


# A session box's key pair serves at most this many seals, or this long: what one stolen from a
# running agent's memory opens, and what a bridge agrees a key for once.
SESSION_SEALS: Final = 1000
SESSION_S: Final = 3600.0
# Sessions whose agreed key a bridge keeps: a district's kiosks, each in its current session.
SESSIONS_KEPT: Final = 4096
# What a bridge worker names in its retained online status (an MQTT 5 user property, which a
# kiosk of before ignores), and the kinds of sealed payload it opens: a kiosk seals session
# boxes only while every worker online says SESSION_BOX.
OPENS_PROPERTY: Final = "doorstep-opens"
SEALED_BOX: Final = "sealed-box"
SESSION_BOX: Final = "session-box"
OPENS: Final = (SEALED_BOX, SESSION_BOX)


def _never() -> bool:
    return False


class Sealer:
    """The kiosk's side: seals payloads for one public key, in a sealed box, or in a session box
    while `session_boxes()` says every bridge worker opens one. Thread-safe."""

    def __init__(self, public_key: PublicKey, *, session_boxes: Callable[[], bool] = _never,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.public_key = public_key
        self._key_id = key_id_of(public_key)
        self._session_boxes = session_boxes
        self._clock = clock
        self._lock = threading.Lock()
        self._session: tuple[Box, str] | None = None
        self._session_seals = 0
        self._session_began = 0.0

    @classmethod
    def from_text(cls, text: str, *, session_boxes: Callable[[], bool] = _never) -> Sealer:
        return cls(public_key_from(text), session_boxes=session_boxes)

    def seal(self, payload: dict[str, Any]) -> SealedPayload:
        plain = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        if not self._session_boxes():
            box = SealedBox(self.public_key).encrypt(plain)
            return SealedPayload(key_id=self._key_id, box=base64.b64encode(box).decode())
        session, sender = self._current_session()
        # Box.encrypt draws a random 24-byte nonce and puts it before the ciphertext.
        return SealedPayload(key_id=self._key_id, sender=sender, box=base64.b64encode(session.encrypt(plain)).decode())

    def _current_session(self) -> tuple[Box, str]:
        with self._lock:
            now = self._clock()
            if self._session is None or self._session_seals >= SESSION_SEALS or now - self._session_began >= SESSION_S:
                private = PrivateKey.generate()  # in memory only, and dropped with the session
                self._session = (Box(private, self.public_key), encode_key(private.public_key))
                self._session_seals, self._session_began = 0, now
            self._session_seals += 1
            return self._session


class Opener:
    """The bridge's side: opens payloads sealed for any of its private keys. Thread-safe."""

    def __init__(self, keys: list[PrivateKey]) -> None:
        self._keys = {key_id_of(key.public_key): key for key in keys}
        self._boxes = {key_id: SealedBox(key) for key_id, key in self._keys.items()}
        # One X25519 agreement per session, not per reading (lru_cache is thread-safe).
        self._session_box = functools.lru_cache(maxsize=SESSIONS_KEPT)(self._agree)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._boxes)

    def open(self, sealed: SealedPayload) -> bytes:
        """The payload's JSON, for the reader to validate as it would an unsealed payload;
        UnknownPayloadKey for a key not held, ContractError for a box that is not one
        (tampered, truncated, not sealed for this key)."""
        if sealed.key_id not in self._keys:
            raise UnknownPayloadKey(sealed.key_id)
        try:
            raw = base64.b64decode(sealed.box, validate=True)
            if sealed.sender is None:
                return self._boxes[sealed.key_id].decrypt(raw)
            return self._session_box(sealed.key_id, sealed.sender).decrypt(raw)
        except (CryptoError, binascii.Error, ValueError, TypeError) as error:
            raise ContractError(f"sealed: cannot be opened with key {sealed.key_id}: {error}") from None

    def _agree(self, key_id: str, sender: str) -> Box:
        return Box(self._keys[key_id], public_key_from(sender))
