"""Release bundles technicians upload and kiosks download (issue 20).

A bundle is one uncompressed tar (`doorstep release build`: manifest.json, manifest.sig,
wheels/). The bridge keeps the file as uploaded under `releases_dir`, named by its version, with
its SHA-256 and size, computed while it streamed in: those two go into every `update_software`
command, so a kiosk refuses a file that is not, byte for byte, the one stored here. The bridge
reads the manifest (releases/manifest.py), to refuse a bundle uploaded under another version's
name or one that is no release's; it never checks the signature: the release key is kept off the bridge, and each kiosk verifies
the signature and every file's hash before installing anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import JSON, BigInteger
from sqlmodel import Field, Session, SQLModel, col, select

from releases.bundle import read_manifest as read_release_manifest
from releases.errors import ReleaseError


CHUNK_BYTES: Final = 256 * 1024


class ReleaseBase(SQLModel):
    version: str = Field(primary_key=True, max_length=48, description="as the manifest says (contract.software.VERSION_PATTERN)")
    sha256: str = Field(max_length=64, description="of the whole bundle file, as stored")
    size_bytes: int = Field(sa_type=BigInteger)
    notes: str | None = Field(default=None, max_length=4000, description="the manifest's release notes, if any")
    uploaded_by: str = Field(max_length=64)
    uploaded_at: datetime


class Release(ReleaseBase, table=True):
    __tablename__ = "releases"

    manifest: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, description="manifest.json as uploaded")


class ReleasePublic(ReleaseBase):
    pass


class BundleRefused(ValueError):
    """The uploaded file is not a bundle of the version it was uploaded as."""


def bundle_path(releases_dir: Path, version: str) -> Path:
    # The version matched VERSION_PATTERN (no path separators), so this stays in releases_dir.
    return releases_dir / f"{version}.tar"


def read_manifest(path: Path) -> dict[str, Any]:
    """manifest.json of the tar at `path`, validated by the release's own model (releases/);
    BundleRefused says what is wrong."""
    try:
        return read_release_manifest(path).model_dump(mode="json")
    except ReleaseError as error:
        raise BundleRefused(str(error)) from None


@dataclass
class Upload:
    """A bundle being received: written to a temporary file beside its final place, hashed as
    it comes."""

    releases_dir: Path
    version: str
    max_bytes: int

    def __post_init__(self) -> None:
        self.releases_dir.mkdir(parents=True, exist_ok=True)
        self.temporary = self.releases_dir / f".{self.version}.{os.getpid()}.{id(self)}.part"
        self._file = self.temporary.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise BundleRefused(f"the bundle exceeds {self.max_bytes} bytes (releases_max_bytes)")
        self._hash.update(chunk)
        self._file.write(chunk)

    def finish(self) -> tuple[str, dict[str, Any]]:
        """The file's SHA-256 and its manifest, once all of it has come (fsynced: a bundle the
        database lists must be on disk after a power cut)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.size == 0:
            raise BundleRefused("the body is empty: send the bundle file as the body")
        manifest = read_manifest(self.temporary)
        if manifest["version"] != self.version:
            raise BundleRefused(f"the bundle's manifest says version {manifest['version']!r}, not {self.version!r}")
        return self._hash.hexdigest(), manifest

    def keep(self) -> None:
        os.replace(self.temporary, bundle_path(self.releases_dir, self.version))

    def discard(self) -> None:
        self._file.close()
        self.temporary.unlink(missing_ok=True)


def record(session: Session, upload: Upload, sha256: str, manifest: dict[str, Any], *, by: str, now: datetime) -> Release:
    notes = manifest.get("notes", manifest.get("release_notes"))
    row = Release(version=upload.version, sha256=sha256, size_bytes=upload.size,
                  notes=notes[:4000] if isinstance(notes, str) else None, uploaded_by=by, uploaded_at=now,
                  manifest=manifest)
    session.add(row)
    return row


def listed(session: Session) -> list[Release]:
    return list(session.exec(select(Release).order_by(col(Release.uploaded_at).desc())))


# --- Serving: byte ranges (RFC 9110, section 14) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteRange:
    first: int
    last: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.last - self.first + 1


class RangeNotSatisfiable(ValueError):
    pass


def etag_of(sha256: str) -> str:
    """A strong validator (RFC 9110, 8.8.3): the bytes' own hash, the same on every worker."""
    return f'"{sha256}"'


def requested_range(range_header: str | None, if_range: str | None, etag: str, size: int) -> ByteRange | None:
    """The one range to send, or None for the whole file.

    Only a single `bytes=` range is served; anything else is ignored and the whole file sent, as
    RFC 9110 14.2 allows (a kiosk resuming asks for one range, `bytes=N-`). An If-Range that is
    not this file's ETag means the kiosk holds part of another file: the whole new one is sent
    (13.1.5); a date is never a match, since only the ETag is strong here.
    Raises RangeNotSatisfiable when the range starts past the end (14.1.2: 416)."""
    if range_header is None or (if_range is not None and if_range.strip() != etag):
        return None
    unit, _, spec = range_header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text.isdigit() or last_text.isdigit()):
        return None
    if not first_text:  # a suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        return ByteRange(max(0, size - suffix), size - 1)
    if last_text and not last_text.isdigit():
        return None
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size:
        raise RangeNotSatisfiable(f"the range starts at {first}, past the file's {size} bytes")
    if last < first:
        return None  # invalid: ignored (14.1.1)
    return ByteRange(first, last)


def read_bytes(path: Path, span: ByteRange, chunk: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's bytes in `span`, a chunk at a time (a bundle is tens of megabytes)."""
    with path.open("rb") as file:
        file.seek(span.first)
        left = span.length
        while left > 0:
            data = file.read(min(chunk, left))
            if not data:
                return
            left -= len(data)
            yield data
