"""Issue 20's process test end to end: a technician uploads the real signed bundle to a real
bridge and starts a rollout through its API; the bridge's rollout job asks a real kiosk (A, under
the test "systemd") over a real Mosquitto; the kiosk downloads the bundle from the bridge, and the
rollout moves on from nothing but the telemetry the kiosk publishes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker_admin.mosquitto import MosquittoProcess, free_port
from cloud_bridge.api import create_app
from contract.software import UpdateState
from tests.support import KIOSK, SITE, Bridge, ServedApp, api_token, wait_for
from tests.updates.conftest import NEW_VERSION, ReleaseKit
from tests.updates.supervised import SupervisedKiosk, kiosk_config
from tests.updates.test_kiosk_update import A_VERSION, started

CRASHING = "0.2.1"


def upload(api: ServedApp, version: str, bundle: Path) -> None:
    answer = api.request("PUT", f"/api/v1/releases/{version}", bundle.read_bytes(),
                         headers={"content-type": "application/octet-stream"})
    assert answer.status == 201, answer


def rollout_to_the_kiosk(api: ServedApp, version: str) -> int:
    answer = api.post("/api/v1/rollouts", {"version": version, "kiosks": [f"{SITE}/{KIOSK}"], "max_failure_share": 0.5})
    assert answer.status == 201, answer
    return int(answer.body["id"])


def rollout_when(api: ServedApp, rollout_id: int, status: str, kiosk: SupervisedKiosk, timeout: float) -> dict[str, Any]:
    def reached() -> bool:
        return bool(api.get(f"/api/v1/rollouts/{rollout_id}").body["status"] == status)

    try:
        wait_for(reached, timeout=timeout, what=f"rollout {rollout_id} to be {status}")
    except AssertionError:
        raise AssertionError(f"{api.get(f'/api/v1/rollouts/{rollout_id}').body}\n{kiosk.all_logs()}") from None
    return dict(api.get(f"/api/v1/rollouts/{rollout_id}").body)


def fleet_version(api: ServedApp) -> str | None:
    return api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").body.get("software_version")  # type: ignore[no-any-return]


@pytest.mark.timeout(400)  # two installs, five restarts
@pytest.mark.parametrize("bridge_database", ["sqlite"], indirect=True)  # the bridge's engine is not the subject
def test_a_rollout_of_a_b_that_crashes_pauses_with_the_kiosk_back_on_a_and_one_of_a_healthy_b_completes(
    tmp_path: Path, running_broker: MosquittoProcess, release_kit: ReleaseKit, good_bundle: Path,
    bridge_factory: Callable[..., Bridge],
) -> None:
    # The bridge's address is chosen first: its rollouts tell kiosks to fetch bundles there.
    port = free_port()
    bridge = bridge_factory(running_broker, releases_dir=tmp_path / "releases", public_url=f"http://127.0.0.1:{port}")
    crashing = release_kit.bundle(CRASHING, edits={"doorstep/cli.py": (
        "from __future__ import annotations\n",
        "from __future__ import annotations\nraise SystemExit('this build crashes at start (a test)')\n")})
    token = api_token(bridge.engine, bridge.worker.context.secret_key, "technician")
    (tmp_path / "kiosk").mkdir()
    config = kiosk_config(tmp_path / "kiosk", running_broker, release_kit.public_key, health_s=20)
    with ServedApp(create_app(bridge.engine, bridge.worker.context), token=token, port=port) as api, \
            SupervisedKiosk(tmp_path / "kiosk", config) as kiosk:
        upload(api, CRASHING, crashing)
        upload(api, NEW_VERSION, good_bundle)
        started(kiosk, A_VERSION)
        wait_for(lambda: api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").status == 200 and fleet_version(api) == A_VERSION,
                 what="the fleet showing the kiosk on A")

        failed = rollout_when(api, rollout_to_the_kiosk(api, CRASHING), "paused", kiosk, timeout=150)
        started(kiosk, A_VERSION)
        [failure] = failed["failures"]
        assert (failure["site"], failure["kiosk"], failure["state"]) == (SITE, KIOSK, UpdateState.ROLLED_BACK.value)
        assert failure["reason"] == f"{CRASHING} was started 3 times and never confirmed its health (it crashed or " \
                                    "hung at start); back to .venv"
        assert failed["paused_reason"] == "paused automatically: 1 of the 1 kiosks asked failed, more than 50%"
        assert fleet_version(api) == A_VERSION

        done = rollout_when(api, rollout_to_the_kiosk(api, NEW_VERSION), "completed", kiosk, timeout=150)
        started(kiosk, NEW_VERSION)
        assert done["counts"] == {UpdateState.HEALTHY.value: 1} and done["failures"] == []
        wait_for(lambda: fleet_version(api) == NEW_VERSION, what="the fleet showing the kiosk on B")
