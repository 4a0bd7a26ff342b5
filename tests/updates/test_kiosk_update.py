"""A kiosk updated through its real parts: the command over a real Mosquitto, the bundle over
HTTP with ranges, a real install in a virtualenv of its own, the switch, the restart by a test
"systemd" through deploy/doorstep-launch, and the health trial that keeps the new version or
goes back. Version A is this checkout's own install (.venv, 0.1.0); B is built from it."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from broker_admin.mosquitto import MosquittoProcess
from cloud_bridge.store import Telemetry
from contract.software import UpdateState
from contract.topics import QOS_RELIABLE, KioskTopics
from runtime.mqtt import make_client
from tests.support import KIOSK, SITE, Bridge, broker_settings, wait_for
from tests.test_remote_commands import results
from tests.updates.conftest import NEW_VERSION, BundleServer, ReleaseKit
from tests.updates.supervised import REPOSITORY, SupervisedKiosk, kiosk_config

A_VERSION = "0.1.0"  # this checkout's pyproject: what ./dev setup installed


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


def outbox_readings(workdir: Path) -> set[str]:
    """The message ids of every reading the kiosk has saved (read beside the running agent: WAL)."""
    with sqlite3.connect(f"file:{workdir / 'outbox.sqlite3'}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT message_id FROM outbox WHERE topic LIKE '%/readings/%'")}


def reported_software(bridge: Bridge) -> tuple[str, str] | None:
    """The version and update state in the newest telemetry the bridge stored."""
    with Session(bridge.engine) as session:
        newest = session.exec(select(Telemetry).order_by(Telemetry.seq.desc())).first()  # type: ignore[attr-defined]
    software = None if newest is None else newest.payload.get("software")
    if not software or not software.get("update"):
        return None
    return software["version"], software["update"]["state"]


# Each step of an update, in order; a kill -9 at the first sight of each.
KILLED_AT = (UpdateState.DOWNLOADING, UpdateState.VERIFYING, UpdateState.INSTALLING, UpdateState.SWITCHING,
             UpdateState.CHECKING)


@pytest.mark.timeout(400)  # two installs (one cut short), five restarts: about 2 minutes on a loaded machine
@pytest.mark.parametrize("bridge_database", ["sqlite"], indirect=True)  # the bridge's engine is not the subject
def test_a_to_b_killed_at_every_step_ends_healthy_with_every_reading_at_the_bridge_once(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path, bundles: BundleServer,
    bridge_factory: Callable[..., Bridge],
) -> None:
    bridge = bridge_factory(running_broker)
    config = kiosk_config(tmp_path, running_broker, release_kit.public_key, health_s=60, cuff_every_s=1)
    killed: list[str] = []
    with SupervisedKiosk(tmp_path, config) as kiosk:
        started(kiosk, A_VERSION)
        wait_for(lambda: len(outbox_readings(tmp_path)) >= 1, what="a reading saved by A")
        request_id = send_update(running_broker, bundles.command(NEW_VERSION, good_bundle))
        deadline = time.monotonic() + 240
        while (report := update_state(tmp_path)) is None or report["state"] != UpdateState.HEALTHY.value:
            assert time.monotonic() < deadline, f"{report}\n{kiosk.all_logs()}"
            state = None if report is None else report["state"]
            if state in KILLED_AT and state not in killed:
                kiosk.kill()  # a power cut at this step: the supervisor starts the kiosk again
                killed.append(state)
                if state == UpdateState.SWITCHING.value:
                    saved_by_a = outbox_readings(tmp_path)
            time.sleep(0.02)
        started(kiosk, NEW_VERSION)
        wait_for(lambda: reported_software(bridge) == (NEW_VERSION, UpdateState.HEALTHY.value), timeout=30,
                 what="B's telemetry saying it runs, healthy, at the bridge")
        saved = outbox_readings(tmp_path)
        wait_for(lambda: saved <= {str(r.message_id) for r in bridge.readings()}, timeout=30,
                 what="every reading saved at the bridge")
    assert killed == [s.value for s in KILLED_AT], killed
    [answer] = results(bridge, request_id)  # answered once, at once: the update goes on in the background
    assert answer.command == "update_software" and answer.outcome == "succeeded", answer
    assert report["version"] == NEW_VERSION and report["reason"] is None
    assert saved_by_a and saved - saved_by_a, "readings saved by A before the switch and by B after it"
    stored = [str(r.message_id) for r in bridge.readings()]
    assert len(stored) == len(set(stored))  # each once
    root = tmp_path / "updates"
    assert os.readlink(root / "current") == str((root / "versions" / NEW_VERSION).resolve())
    assert Path(os.readlink(root / "previous")).resolve() == (REPOSITORY / ".venv").resolve()
    assert not (root / "trial").exists()


@pytest.mark.timeout(400)  # two installs, six restarts
def test_a_b_that_crashes_at_start_and_one_that_fails_its_health_check_each_go_back_to_a(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, bundles: BundleServer
) -> None:
    crashing = release_kit.bundle("0.2.1", edits={"doorstep/cli.py": (
        "from __future__ import annotations\n",
        "from __future__ import annotations\nraise SystemExit('this build crashes at start (a test)')\n")})
    unhealthy = release_kit.bundle("0.2.2", edits={"edge_agent/agent.py": (
        "problems = [] if self.uplink.connected else",
        "problems = ['this build fails its health check (a test)'] if self.uplink.connected else")})
    config = kiosk_config(tmp_path, running_broker, release_kit.public_key, health_s=3)
    with SupervisedKiosk(tmp_path, config) as kiosk:
        started(kiosk, A_VERSION)
        send_update(running_broker, bundles.command("0.2.1", crashing))
        crashed = wait_for_state(kiosk, UpdateState.ROLLED_BACK, timeout=120)
        started(kiosk, A_VERSION)
        assert "this build crashes at start" in kiosk.all_logs()
        send_update(running_broker, bundles.command("0.2.2", unhealthy))
        started(kiosk, "0.2.2", timeout=120)
        failed = wait_for_state(kiosk, UpdateState.ROLLED_BACK, timeout=30)
        started(kiosk, A_VERSION)
    assert crashed["version"] == "0.2.1"
    assert crashed["reason"] == "0.2.1 was started 3 times and never confirmed its health (it crashed or hung at " \
                                "start); back to .venv"
    assert failed["version"] == "0.2.2"
    assert failed["reason"] == "0.2.2 was not healthy within 3 s: this build fails its health check (a test)"
