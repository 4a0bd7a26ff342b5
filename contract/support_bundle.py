"""A support bundle: what a kiosk uploads when a technician asks for one (the command
`upload_support_bundle`), on `…/support_bundles/{request_id}` (docs/protocol.md, Support bundles).

The body is a gzip-compressed tar archive, not JSON: its first member is `manifest.json`
(BundleManifest: what the bundle holds and what was cut to fit), then `logs.txt`, `doctor.json`
and `config.json`. Both sides read the manifest with this one model: the kiosk writes it, the
bridge reads it (read_manifest) before it stores a bundle, and lists what each holds.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from typing import Final, Literal

from pydantic import AwareDatetime, Field, ValidationError

from contract.codec import describe
from contract.errors import ContractError
from contract.storable import StrictModel
from contract.topics import RequestId, Slug

# The most bytes a bundle may have, compressed. It travels as one MQTT message, and the shipped
# broker refuses packets over 128 KiB (deploy/mosquitto/doorstep.conf, max_packet_size 131072):
# 96 KiB leaves room for the topic and the packet's header. Logs compress about tenfold, so this
# holds roughly the newest megabyte of a kiosk's log.
MAX_BUNDLE_BYTES: Final = 96 * 1024
# The manifest is small (names, counts, one sentence): a larger first member is not one.
MAX_MANIFEST_BYTES: Final = 16 * 1024

MANIFEST = "manifest.json"
LOGS = "logs.txt"
DOCTOR = "doctor.json"
CONFIG = "config.json"
# What stands in the bundle instead of a secret's value.
REDACTED: Final = "<redacted>"


class BundleManifest(StrictModel):
    schema_version: Literal[1] = 1
    site: Slug
    kiosk: Slug
    request_id: RequestId
    created_at: AwareDatetime
    agent_version: str = Field(max_length=64)
    files: list[str] = Field(max_length=16, description="the archive's members, this one first")
    logs_source: str = Field(max_length=500, description="where the logs came from, or why there are none")
    logs_bytes: int = Field(ge=0, description="bytes of log text in logs.txt")
    logs_truncated: bool = Field(description="the oldest part of the logs was left out to fit MAX_BUNDLE_BYTES")
    logs_omitted_bytes: int = Field(ge=0, description="bytes of the oldest logs left out")
    redacted: list[str] = Field(max_length=200, description="the configuration's fields whose values were removed")


# What of a bundle is decompressed to read its manifest: its header, its text, the next header.
# No more: 96 KiB of gzip can inflate to ~100 MB (deflate's ratio reaches ~1000:1), and tarfile
# would read a hostile first header's whole extension into memory.
_HEAD_BYTES: Final = MAX_MANIFEST_BYTES + 2 * tarfile.BLOCKSIZE


def read_manifest(body: bytes) -> BundleManifest:
    """The manifest of a bundle, read without unpacking the rest; ContractError says why a body
    is not a bundle. Only the first _HEAD_BYTES are decompressed, whatever the rest holds."""
    if len(body) > MAX_BUNDLE_BYTES:
        raise ContractError(f"support bundle of {len(body)} bytes exceeds {MAX_BUNDLE_BYTES}")
    try:
        head = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(body, _HEAD_BYTES)  # gzip (RFC 1952)
        with tarfile.open(fileobj=io.BytesIO(head), mode="r:") as archive:
            first = archive.next()
            if first is None or first.name != MANIFEST or not first.isfile():
                raise ContractError(f"a support bundle's first member must be {MANIFEST}")
            if first.size > MAX_MANIFEST_BYTES:
                raise ContractError(f"{MANIFEST} of {first.size} bytes exceeds {MAX_MANIFEST_BYTES}")
            extracted = archive.extractfile(first)
            assert extracted is not None  # a regular file, checked above
            text = extracted.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise ContractError(f"not a gzip-compressed tar archive: {error}") from None
    try:
        return BundleManifest.model_validate_json(text)
    except ValidationError as error:
        raise ContractError(f"{MANIFEST}: {describe(error)}") from None
