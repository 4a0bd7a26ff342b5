"""The release key (Ed25519, PyNaCl): a private key file on the machine that signs, and the
public key every kiosk trusts, as base64 text."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from releases.errors import Reason, ReleaseError


def public_key_text(key: VerifyKey) -> str:
    return base64.b64encode(bytes(key)).decode()


def verify_key_from(text: str) -> VerifyKey:
    """A public key as base64 text; ValueError if it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except binascii.Error as error:
        raise ValueError(f"not base64: {error}") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
    return VerifyKey(raw)


def keygen(output: Path) -> VerifyKey:
    """A new release key in `output`, readable by its owner only (created 0600, never widened);
    refuses to replace an existing file."""
    key = SigningKey.generate()
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(base64.b64encode(bytes(key)).decode() + "\n")
    return key.verify_key


def load_signing_key(path: Path) -> SigningKey:
    """The key `keygen` wrote; ValueError if the file is not one."""
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
    except (OSError, binascii.Error) as error:
        raise ValueError(f"{path}: not a release key ({error})") from None
    if len(raw) != 32:
        raise ValueError(f"{path}: not a release key (32 bytes of seed expected)")
    return SigningKey(raw)


def check_signature(message: bytes, signature: bytes, signer: str, trusted: list[str]) -> None:
    """ReleaseError unless `signer` is one of the `trusted` keys and signed exactly `message`."""
    if signer not in {text.strip() for text in trusted}:
        raise ReleaseError(Reason.UNKNOWN_KEY, f"signed by {signer}, which this kiosk does not trust")
    try:
        verify_key_from(signer).verify(message, signature)
    except (BadSignatureError, ValueError):
        raise ReleaseError(Reason.BAD_SIGNATURE, "the manifest is not what the release key signed") from None
