"""The bundle file: written, signed, and verified before anything in it is used.

`verify` trusts nothing in the tar until the manifest's signature checks out, then accepts
exactly the files the manifest names, each with its size and SHA-256: a file more or less, or
one byte changed, and the whole bundle is refused."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from pathlib import Path
from datetime import datetime
from typing import IO, Final

from packaging.version import InvalidVersion, Version
from pydantic import ValidationError

from contract.codec import describe
from releases.errors import Reason, ReleaseError
from releases.keys import check_signature, load_signing_key, public_key_text
from releases.manifest import MANIFEST_NAME, SIGNATURE_NAME, FileEntry, Manifest, member_name

# A manifest or signature larger than this is not one of ours: refused before it is read.
MAX_MANIFEST_BYTES: Final = 1024 * 1024
_CHUNK: Final = 1024 * 1024


def file_entry(path: Path) -> FileEntry:
    with path.open("rb") as file:
        return FileEntry(sha256=_sha256(file), size=path.stat().st_size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def write_bundle(output: Path, wheels: Iterable[Path], *, version: str, created_at: datetime, platforms: list[str],
                 notes: str = "", min_previous_version: str | None = None) -> Manifest:
    """An unsigned bundle of `wheels` in `output` (then `sign` it)."""
    wheels = sorted(wheels, key=lambda p: p.name)
    manifest = Manifest(version=version, min_previous_version=min_previous_version, notes=notes,
                        created_at=created_at, platforms=platforms,
                        files={wheel.name: file_entry(wheel) for wheel in wheels})
    with tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST_NAME, manifest.to_bytes())
        for wheel in wheels:
            info = tar.gettarinfo(str(wheel), member_name(wheel.name))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with wheel.open("rb") as file:
                tar.addfile(info, file)
    return manifest


def sign(bundle: Path, key_file: Path) -> str:
    """Append the signature of the bundle's manifest; the signer's public key (base64)."""
    key = load_signing_key(key_file)
    with tarfile.open(bundle, "r:") as tar:
        names = tar.getnames()
        if SIGNATURE_NAME in names:
            raise ReleaseError(Reason.EXTRA_FILE, f"{bundle} is signed already")
        manifest = _read_small(tar, MANIFEST_NAME)
    signer = public_key_text(key.verify_key)
    signature = {"key": signer, "signature": base64.b64encode(key.sign(manifest).signature).decode()}
    with tarfile.open(bundle, "a:", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, SIGNATURE_NAME, json.dumps(signature).encode())
    return signer


def verify(bundle: Path, trusted_public_keys: list[str], *, running_version: str | None = None,
           extract_to: Path | None = None) -> Manifest:
    """The bundle's manifest, once its signature, every file's size and hash, and the list of
    files are right; ReleaseError otherwise. `running_version`: refused if below the release's
    minimum. `extract_to`: the wheels are extracted there (tarfile's 'data' filter: no path
    outside it, no links, no devices) and the extracted bytes are the ones hashed."""
    try:
        tar = tarfile.open(bundle, "r:")
    except (tarfile.TarError, OSError) as error:
        raise ReleaseError(Reason.NOT_A_BUNDLE, f"{bundle}: not an uncompressed tar ({error})") from None
    with tar:
        members = tar.getmembers()
        by_name: dict[str, tarfile.TarInfo] = {}
        for member in members:
            if member.name in by_name or not member.isfile():
                raise ReleaseError(Reason.EXTRA_FILE, f"{member.name!r}: a second entry of that name, or not a file")
            by_name[member.name] = member
        for name in (MANIFEST_NAME, SIGNATURE_NAME):
            if name not in by_name:
                raise ReleaseError(Reason.MISSING_FILE if name == SIGNATURE_NAME else Reason.NOT_A_BUNDLE,
                                   f"no {name}: {'unsigned' if name == SIGNATURE_NAME else 'not a release bundle'}")
        manifest_bytes = _read_small(tar, MANIFEST_NAME)
        signer, signature = _parse_signature(_read_small(tar, SIGNATURE_NAME))
        check_signature(manifest_bytes, signature, signer, trusted_public_keys)
        try:
            manifest = Manifest.model_validate_json(manifest_bytes)
        except ValidationError as error:
            raise ReleaseError(Reason.NOT_A_BUNDLE, f"a signed manifest that does not validate: {error}") from None
        _check_upgrade_path(manifest, running_version)
        expected = {member_name(name): entry for name, entry in manifest.files.items()}
        present = set(by_name) - {MANIFEST_NAME, SIGNATURE_NAME}
        if extra := sorted(present - set(expected)):
            raise ReleaseError(Reason.EXTRA_FILE, f"not in the manifest: {', '.join(extra)}")
        if missing := sorted(set(expected) - present):
            raise ReleaseError(Reason.MISSING_FILE, f"named in the manifest, not in the bundle: {', '.join(missing)}")
        for name, entry in sorted(expected.items()):
            member = by_name[name]
            if member.size != entry.size:
                raise ReleaseError(Reason.HASH_MISMATCH, f"{name}: {member.size} bytes, the manifest says {entry.size}")
            if extract_to is None:
                stream = tar.extractfile(member)
                assert stream is not None  # a regular file, checked above
                actual = _sha256(stream)
            else:
                tar.extract(member, extract_to, filter="data")
                with (extract_to / name).open("rb") as file:
                    actual = _sha256(file)
            if actual != entry.sha256:
                raise ReleaseError(Reason.HASH_MISMATCH, f"{name}: SHA-256 {actual}, the manifest says {entry.sha256}")
    return manifest


def read_manifest(bundle: Path) -> Manifest:
    """The bundle's manifest, validated but not verified: for the bridge, which holds no release
    key and only files a bundle under its version (kiosks `verify`); ReleaseError if it is not
    a bundle's."""
    try:
        tar = tarfile.open(bundle, "r:")
    except (tarfile.TarError, OSError) as error:
        raise ReleaseError(Reason.NOT_A_BUNDLE, f"not an uncompressed tar ({error})") from None
    with tar:
        raw = _read_small(tar, MANIFEST_NAME)
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as error:
        raise ReleaseError(Reason.NOT_A_BUNDLE, f"{MANIFEST_NAME} does not validate: {describe(error)}") from None


def _check_upgrade_path(manifest: Manifest, running_version: str | None) -> None:
    if running_version is None or manifest.min_previous_version is None:
        return
    try:
        too_old = Version(running_version) < Version(manifest.min_previous_version)
    except InvalidVersion as error:
        raise ReleaseError(Reason.TOO_OLD_TO_UPDATE_FROM, f"cannot compare versions: {error}") from None
    if too_old:
        raise ReleaseError(Reason.TOO_OLD_TO_UPDATE_FROM,
                           f"{manifest.version} installs over {manifest.min_previous_version} or newer; "
                           f"this kiosk runs {running_version}")


def _read_small(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ReleaseError(Reason.NOT_A_BUNDLE, f"no {name}") from None
    stream = tar.extractfile(member) if member.size <= MAX_MANIFEST_BYTES else None
    if stream is None:
        raise ReleaseError(Reason.NOT_A_BUNDLE, f"{name}: not a file of at most {MAX_MANIFEST_BYTES} bytes")
    return stream.read()


def _parse_signature(data: bytes) -> tuple[str, bytes]:
    try:
        parsed = json.loads(data)
        return str(parsed["key"]), base64.b64decode(parsed["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise ReleaseError(Reason.BAD_SIGNATURE, f"{SIGNATURE_NAME} is not a signature") from None


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
