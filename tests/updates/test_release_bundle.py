"""A real bundle of this repository is accepted as built and refused with the reason for every
change to it: one byte, another key, a file more or less, no signature, too old a kiosk."""

from __future__ import annotations

import io
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from releases.bundle import verify
from releases.errors import Reason, ReleaseError
from releases.keys import keygen, public_key_text
from releases.manifest import MANIFEST_NAME, SIGNATURE_NAME
from tests.updates.conftest import NEW_VERSION, ReleaseKit

DOORSTEP = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "doorstep")


def refused(bundle: Path, keys: list[str], **kwargs: object) -> Reason:
    with pytest.raises(ReleaseError) as caught:
        verify(bundle, keys, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def rewritten(bundle: Path, into: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of `bundle` with members replaced (bytes), removed (None) or added (a new name)."""
    with tarfile.open(bundle) as source, tarfile.open(into, "w") as target:
        for member in source.getmembers():
            if member.name in change:
                data = change.pop(member.name)
                if data is None:
                    continue
            else:
                data = source.extractfile(member).read()  # type: ignore[union-attr]
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
        for name, data in change.items():
            assert data is not None
            info = tarfile.TarInfo(name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return into


def test_a_bundle_as_built_and_signed_is_accepted_and_extracted(good_bundle: Path, release_kit: ReleaseKit,
                                                                 tmp_path: Path) -> None:
    manifest = verify(good_bundle, [release_kit.public_key], running_version="0.1.0", extract_to=tmp_path)
    assert manifest.version == NEW_VERSION
    assert f"doorstep-{NEW_VERSION}-py3-none-any.whl" in manifest.files
    assert any(name.startswith("pydantic_core-") for name in manifest.files)  # the dependencies too
    assert sorted(p.name for p in (tmp_path / "wheels").iterdir()) == sorted(manifest.files)


def test_one_byte_changed_in_a_wheel_is_refused(good_bundle: Path, release_kit: ReleaseKit, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.bundle"
    shutil.copy(good_bundle, tampered)
    with tarfile.open(good_bundle) as tar:
        wheel = next(m for m in tar.getmembers() if m.name.startswith("wheels/doorstep-"))
    with tampered.open("r+b") as file:  # a byte in the middle of Doorstep's own wheel, in place
        file.seek(wheel.offset_data + wheel.size // 2)
        byte = file.read(1)
        file.seek(-1, io.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0x01]))
    assert refused(tampered, [release_kit.public_key]) == Reason.HASH_MISMATCH


def test_one_byte_changed_in_the_manifest_is_refused(good_bundle: Path, release_kit: ReleaseKit, tmp_path: Path) -> None:
    with tarfile.open(good_bundle) as tar:
        manifest = tar.extractfile(MANIFEST_NAME).read()  # type: ignore[union-attr]
    changed = manifest.replace(NEW_VERSION.encode(), b"9.2.0", 1)
    assert refused(rewritten(good_bundle, tmp_path / "m.bundle", {MANIFEST_NAME: changed}),
                   [release_kit.public_key]) == Reason.BAD_SIGNATURE


def test_a_bundle_signed_by_another_key_is_refused(release_kit: ReleaseKit, tmp_path: Path) -> None:
    other = public_key_text(keygen(tmp_path / "other.key"))
    bundle = release_kit.bundle(signed=False)
    subprocess.run([DOORSTEP, "release", "sign", str(bundle), "--key", str(tmp_path / "other.key")], check=True,
                   capture_output=True)
    assert refused(bundle, [release_kit.public_key]) == Reason.UNKNOWN_KEY
    assert verify(bundle, [release_kit.public_key, other]).version == NEW_VERSION


def test_unsigned_extra_and_missing_files_and_not_a_tar_are_refused(good_bundle: Path, release_kit: ReleaseKit,
                                                                   tmp_path: Path) -> None:
    keys = [release_kit.public_key]
    with tarfile.open(good_bundle) as tar:
        wheel = next(name for name in tar.getnames() if name.startswith("wheels/pydantic"))
    assert refused(rewritten(good_bundle, tmp_path / "a", {SIGNATURE_NAME: None}), keys) == Reason.MISSING_FILE
    assert refused(rewritten(good_bundle, tmp_path / "b", {wheel: None}), keys) == Reason.MISSING_FILE
    assert refused(rewritten(good_bundle, tmp_path / "c", {"wheels/evil-1.0-py3-none-any.whl": b"x"}),
                   keys) == Reason.EXTRA_FILE
    assert refused(rewritten(good_bundle, tmp_path / "d", {"../../etc/cron.d/x": b"x"}), keys) == Reason.EXTRA_FILE
    (tmp_path / "e").write_bytes(b"not a tar at all" * 100)
    assert refused(tmp_path / "e", keys) == Reason.NOT_A_BUNDLE


def test_a_kiosk_older_than_the_minimum_refuses(release_kit: ReleaseKit) -> None:
    bundle = release_kit.bundle("0.3.0", min_previous_version="0.2.0")
    assert refused(bundle, [release_kit.public_key], running_version="0.1.0") == Reason.TOO_OLD_TO_UPDATE_FROM
    assert verify(bundle, [release_kit.public_key], running_version="0.2.0").version == "0.3.0"


def test_the_cli_makes_a_private_key_and_verifies(good_bundle: Path, release_kit: ReleaseKit, tmp_path: Path) -> None:
    key = tmp_path / "k"
    public = subprocess.run([DOORSTEP, "release", "keygen", "--output", str(key)], check=True, capture_output=True,
                            text=True).stdout.strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(public) == 44
    again = subprocess.run([DOORSTEP, "release", "keygen", "--output", str(key)], capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr
    ok = subprocess.run([DOORSTEP, "release", "verify", str(good_bundle), "--public-key", release_kit.public_key],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and NEW_VERSION in ok.stdout
    bad = subprocess.run([DOORSTEP, "release", "verify", str(good_bundle), "--public-key", public],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown_key" in bad.stderr
