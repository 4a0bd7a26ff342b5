"""Release bundles through a real server: uploaded by a technician (streamed, hashed, the
manifest's version checked), listed, deleted, and downloaded by kiosks resumably (RFC 9110
ranges with If-Range on the ETag)."""

from __future__ import annotations

import hashlib
from email.message import Message
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.accounts import AuditEntry
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.settings import DEVELOPMENT_SECRET
from tests.bridge.release_files import bundle_bytes, unversioned_bundle_bytes
from tests.support import ServedApp, api_token

TAR = {"content-type": "application/x-tar"}


@dataclass
class Served:
    api: ServedApp
    releases_dir: Path
    engine: Engine

    def upload(self, version: str, body: bytes) -> tuple[int, object]:
        answer = self.api.request("PUT", f"/api/v1/releases/{version}", body, headers=TAR)
        return answer.status, answer.body

    def download(self, version: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
        """As a kiosk fetches it: no token."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.api.port}/api/v1/releases/{version}/bundle",
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()


@pytest.fixture
def served(bridge_engine: Engine, tmp_path: Path) -> Iterator[Served]:
    context = BridgeContext(bridge_engine, secret_key=DEVELOPMENT_SECRET, releases_dir=tmp_path / "releases",
                            releases_max_bytes=2 * 1024 * 1024)
    token = api_token(bridge_engine, DEVELOPMENT_SECRET, "technician")
    with ServedApp(create_app(bridge_engine, context), token=token) as api:
        yield Served(api, tmp_path / "releases", bridge_engine)


def test_a_bundle_is_uploaded_listed_and_downloaded_resuming_where_a_cut_left_it(served: Served) -> None:
    bundle = bundle_bytes("0.2.0", wheel_bytes=1_000_000)  # over the 64 KiB API body limit
    digest = hashlib.sha256(bundle).hexdigest()
    status, body = served.upload("0.2.0", bundle)
    assert status == 201, body
    assert isinstance(body, dict)
    assert (body["version"], body["sha256"], body["size_bytes"], body["notes"]) == ("0.2.0", digest, len(bundle), "release 0.2.0")
    assert [r["version"] for r in served.api.get("/api/v1/releases").body] == ["0.2.0"]
    assert (served.releases_dir / "0.2.0.tar").read_bytes() == bundle
    assert [p.name for p in served.releases_dir.iterdir()] == ["0.2.0.tar"]  # no temporary file left

    status, headers, whole = served.download("0.2.0")
    assert (status, whole, headers["Accept-Ranges"], headers["ETag"]) == (200, bundle, "bytes", f'"{digest}"')

    # A weak link drops the download a third of the way: the kiosk kept what came, and asks
    # for the rest of the same file.
    request = urllib.request.Request(f"http://127.0.0.1:{served.api.port}/api/v1/releases/0.2.0/bundle")
    with urllib.request.urlopen(request, timeout=10) as response:
        kept = response.read(len(bundle) // 3)
    status, headers, rest = served.download("0.2.0", {"Range": f"bytes={len(kept)}-", "If-Range": f'"{digest}"'})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {len(kept)}-{len(bundle) - 1}/{len(bundle)}"
    assert hashlib.sha256(kept + rest).hexdigest() == digest

    # If-Range names another file (the kiosk holds part of an older upload): the whole new one.
    status, _, again = served.download("0.2.0", {"Range": "bytes=100-", "If-Range": '"' + "0" * 64 + '"'})
    assert (status, again) == (200, bundle)
    status, _, tail = served.download("0.2.0", {"Range": "bytes=-10"})
    assert (status, tail) == (206, bundle[-10:])
    status, headers, _ = served.download("0.2.0", {"Range": f"bytes={len(bundle)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(bundle)}")
    assert served.download("9.9.9")[0] == 404


def test_an_upload_that_is_not_its_versions_bundle_is_refused_and_leaves_nothing(served: Served) -> None:
    status, body = served.upload("0.3.0", bundle_bytes("0.2.9"))
    assert status == 422 and isinstance(body, dict) and "0.2.9" in body["reason"], body
    status, body = served.upload("0.3.0", b"not a tar at all" * 100)
    assert status == 422, body
    status, body = served.upload("0.3.0", unversioned_bundle_bytes())
    assert status == 422 and isinstance(body, dict) and "version" in body["reason"]
    status, body = served.upload("0.3.0", bundle_bytes("0.3.0", wheel_bytes=3 * 1024 * 1024))
    assert status == 413, body
    assert served.api.get("/api/v1/releases").body == []
    assert list(served.releases_dir.iterdir()) == []

    first = bundle_bytes("0.3.0")
    assert served.upload("0.3.0", first)[0] == 201
    assert served.upload("0.3.0", bundle_bytes("0.3.0"))[0] == 409  # a version is never replaced
    assert (served.releases_dir / "0.3.0.tar").read_bytes() == first
    with Session(served.engine) as session:
        audited = [(e.action, e.target, e.result) for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert audited == [("release_upload", "0.3.0", "refused")] * 4 + [
        ("release_upload", "0.3.0", "ok"), ("release_upload", "0.3.0", "refused")]


def test_a_deleted_release_is_gone_with_its_file(served: Served) -> None:
    assert served.upload("0.4.0", bundle_bytes("0.4.0"))[0] == 201
    assert served.api.request("DELETE", "/api/v1/releases/0.4.0").status == 204
    assert served.api.get("/api/v1/releases").body == []
    assert not (served.releases_dir / "0.4.0.tar").exists()
    assert served.download("0.4.0")[0] == 404
    assert served.api.request("DELETE", "/api/v1/releases/0.4.0").status == 404
    with Session(served.engine) as session:
        assert session.exec(select(AuditEntry.action)).all() == ["release_upload", "release_delete"]
