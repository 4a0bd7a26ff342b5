"""Real release bundles built from this repository, once per session: Doorstep's wheel at a
chosen version and every dependency's wheel for this machine (from pip's cache where it can)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterator, Mapping
from typing import Annotated, Any
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI, Header
from fastapi.responses import FileResponse

from broker_admin.pki import Issued
from releases.build import dependency_wheels, doorstep_wheel
from releases.bundle import sign, write_bundle
from releases.keys import keygen, public_key_text
from tests.support import ServedApp

REPOSITORY = Path(__file__).resolve().parents[2]
# The version the kiosk's first update installs; the kiosk starts on the checkout's own (0.1.0).
NEW_VERSION = "0.2.0"


class ReleaseKit:
    """What a release machine has: a release key, and the dependencies' wheels already fetched."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = directory / "release.key"
        self.public_key = public_key_text(keygen(self.key))
        # Built as `doorstep release build --version` builds it: from a copy of this checkout.
        self.own = doorstep_wheel(REPOSITORY, directory / "own", NEW_VERSION)
        self.dependencies = [w for w in dependency_wheels(self.own, directory / "deps", ["host"])
                             if not w.name.startswith("doorstep-")]

    def bundle(self, version: str = NEW_VERSION, *, signed: bool = True, min_previous_version: str | None = None,
               edits: Mapping[str, tuple[str, str]] | None = None) -> Path:
        """A bundle of Doorstep at `version` with the session's dependency wheels; `edits`: a
        file of Doorstep's wheel -> (old, new) text, for a broken release."""
        where = self.directory / f"v{version}-{len(list(self.directory.glob('v*')))}"
        own = rewritten_wheel(self.own, where, version, edits or {})
        bundle = where / f"doorstep-{version}.bundle"
        write_bundle(bundle, [own, *self.dependencies], version=version, created_at=datetime.now(UTC),
                     platforms=["host"], notes=f"test release {version}", min_previous_version=min_previous_version)
        if signed:
            sign(bundle, self.key)
        return bundle


def rewritten_wheel(wheel: Path, dest: Path, version: str, edits: Mapping[str, tuple[str, str]]) -> Path:
    """`wheel` (Doorstep's, built by releases.build at NEW_VERSION) at another version, with `edits`
    made: what building a changed checkout would give, in a fraction of a second instead of the
    seconds pip's isolated build takes. Its RECORD is rewritten with the new hashes (PEP 376)."""
    old_info, new_info = f"doorstep-{NEW_VERSION}.dist-info", f"doorstep-{version}.dist-info"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"doorstep-{version}-py3-none-any.whl"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as source:
        for name in source.namelist():
            data = source.read(name)
            if name in edits:
                old, new = edits[name]
                assert data.decode().count(old) == 1, f"{name} no longer has {old!r}"
                data = data.replace(old.encode(), new.encode())
            if name == f"{old_info}/METADATA":
                data = data.replace(f"Version: {NEW_VERSION}\n".encode(), f"Version: {version}\n".encode())
            files[name.replace(old_info, new_info)] = data
    record = f"{new_info}/RECORD"
    files[record] = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in files.items() if name != record
    ).encode() + f"{record},,\n".encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in files.items():
            out.writestr(name, data)
    return target


@pytest.fixture(scope="session")
def release_kit(tmp_path_factory: pytest.TempPathFactory) -> ReleaseKit:
    return ReleaseKit(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="session")
def good_bundle(release_kit: ReleaseKit) -> Path:
    return release_kit.bundle()


class BundleServer:
    """Serves bundles as the bridge does (GET /api/v1/releases/{version}/bundle, Range requests
    answered 206 by Starlette's FileResponse)."""

    def __init__(self, tls: Issued | None = None) -> None:
        self.files: dict[str, Path] = {}
        self.scheme = "http" if tls is None else "https"
        self.requests: list[str | None] = []
        app = FastAPI()

        @app.get("/api/v1/releases/{version}/bundle")
        def bundle(version: str, range: Annotated[str | None, Header()] = None) -> FileResponse:  # noqa: A002
            self.requests.append(range)
            return FileResponse(self.files[version])

        self.app = ServedApp(app, tls=tls)

    def command(self, version: str, bundle: Path) -> dict[str, Any]:
        self.files[version] = bundle
        data = bundle.read_bytes()
        return {"version": version, "url": f"{self.scheme}://127.0.0.1:{self.app.port}/api/v1/releases/{version}/bundle",
                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture
def bundles() -> Iterator[BundleServer]:
    server = BundleServer()
    with server.app:
        yield server
