"""A kiosk updated through its real parts: the command over a real Mosquitto, the bundle over
HTTP with ranges, a real install in a virtualenv of its own, the switch, the restart by a test
"systemd" through deploy/doorstep-launch, and the health trial that keeps the new version or
goes back. Version A is this checkout's own install (.venv, 0.1.0); B is built from it."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import FileResponse

from broker_admin.mosquitto import MosquittoProcess
from contract.software import UpdateState
from contract.topics import QOS_RELIABLE, KioskTopics
from runtime.mqtt import make_client
from tests.support import KIOSK, SITE, ServedApp, broker_settings, wait_for
from tests.updates.conftest import NEW_VERSION, ReleaseKit
from tests.updates.supervised import SupervisedKiosk, kiosk_config

A_VERSION = "0.1.0"  # this checkout's pyproject: what ./dev setup installed


class BundleServer:
    """Serves bundles as the bridge does (GET /api/v1/releases/{version}/bundle, Range requests
    answered 206 by Starlette's FileResponse)."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self.requests: list[str | None] = []
        app = FastAPI()

        @app.get("/api/v1/releases/{version}/bundle")
        def bundle(version: str, range: str | None = None) -> FileResponse:  # noqa: A002 - the header's name
            self.requests.append(range)
            return FileResponse(self.files[version])

        self.app = ServedApp(app)

    def command(self, version: str, bundle: Path) -> dict[str, Any]:
        self.files[version] = bundle
        data = bundle.read_bytes()
        return {"version": version, "url": f"http://127.0.0.1:{self.app.port}/api/v1/releases/{version}/bundle",
                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture
def bundles() -> Iterator[BundleServer]:
    server = BundleServer()
    with server.app:
        yield server


def send_update(broker: MosquittoProcess, args: dict[str, Any]) -> str:
    """The update_software command, published as the bridge does on the kiosk's command topic."""
    client = make_client(f"technician-{uuid.uuid4().hex[:8]}", broker_settings(broker))
    client.connect(broker.host, broker.port)
    client.loop_start()
    request_id = uuid.uuid4().hex
    body = {"command": "update_software", "issued_by": "tech-li", "issued_at": datetime.now(UTC).isoformat(),
            "args": args}
    try:
        client.publish(KioskTopics(SITE, KIOSK).command(request_id), json.dumps(body).encode(),
                       qos=QOS_RELIABLE).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return request_id


def update_state(workdir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((workdir / "updates" / "update.json").read_text())["report"]  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def wait_for_state(kiosk: SupervisedKiosk, state: UpdateState, timeout: float) -> dict[str, Any]:
    def reached() -> bool:
        report = update_state(kiosk.workdir)
        return report is not None and report["state"] == state.value

    try:
        wait_for(reached, timeout=timeout, what=f"the update to be {state.value}")
    except AssertionError:
        raise AssertionError(f"{update_state(kiosk.workdir)}\n{kiosk.all_logs()}") from None
    report = update_state(kiosk.workdir)
    assert report is not None
    return report


def started(kiosk: SupervisedKiosk, version: str, timeout: float = 30) -> None:
    try:
        wait_for(lambda: kiosk.running_version() == version, timeout=timeout, what=f"Doorstep {version} running")
    except AssertionError:
        raise AssertionError(kiosk.all_logs()) from None


def test_a_to_b_is_installed_side_by_side_switched_and_kept_when_healthy(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path, bundles: BundleServer
) -> None:
    config = kiosk_config(tmp_path, running_broker, release_kit.public_key, health_s=30)
    with SupervisedKiosk(tmp_path, config) as kiosk:
        started(kiosk, A_VERSION)
        send_update(running_broker, bundles.command(NEW_VERSION, good_bundle))
        report = wait_for_state(kiosk, UpdateState.HEALTHY, timeout=90)
        started(kiosk, NEW_VERSION)
    assert report["version"] == NEW_VERSION and report["reason"] is None
    root = tmp_path / "updates"
    assert os.readlink(root / "current") == str((root / "versions" / NEW_VERSION).resolve())
    assert Path(os.readlink(root / "previous")).resolve() == (Path(__file__).resolve().parents[2] / ".venv").resolve()
    assert not (root / "trial").exists()
    assert (root / "versions" / NEW_VERSION / "bin" / "doorstep").exists()


def test_a_b_that_crashes_at_start_is_rolled_back_by_the_launcher(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, bundles: BundleServer
) -> None:
    crashing = release_kit.bundle("0.2.1", edits={"doorstep/cli.py": (
        "    from edge_agent.logs import LogFileError, configure_logging\n",
        "    from edge_agent.logs import LogFileError, configure_logging\n"
        "    raise SystemExit('this build crashes at start (a test)')\n")})
    config = kiosk_config(tmp_path, running_broker, release_kit.public_key)
    with SupervisedKiosk(tmp_path, config) as kiosk:
        started(kiosk, A_VERSION)
        send_update(running_broker, bundles.command("0.2.1", crashing))
        report = wait_for_state(kiosk, UpdateState.ROLLED_BACK, timeout=90)
        started(kiosk, A_VERSION)
    assert "started 3 times and never confirmed its health" in report["reason"], report
    assert "this build crashes at start" in kiosk.all_logs()


def test_a_b_that_fails_its_health_check_goes_back_by_itself(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, bundles: BundleServer
) -> None:
    unhealthy = release_kit.bundle("0.2.2", edits={"edge_agent/agent.py": (
        "problems = [] if self.uplink.connected else",
        "problems = ['this build fails its health check (a test)'] if self.uplink.connected else")})
    config = kiosk_config(tmp_path, running_broker, release_kit.public_key, health_s=3)
    with SupervisedKiosk(tmp_path, config) as kiosk:
        started(kiosk, A_VERSION)
        send_update(running_broker, bundles.command("0.2.2", unhealthy))
        started(kiosk, "0.2.2", timeout=90)
        report = wait_for_state(kiosk, UpdateState.ROLLED_BACK, timeout=30)
        started(kiosk, A_VERSION)
    assert report["reason"] == "0.2.2 was not healthy within 3 s: this build fails its health check (a test)"
