"""Enrolment end to end against the shipped Mosquitto with its dynamic-security plugin: a
technician's code from the bridge's API, `doorstep enrol` run as a process against the bridge's
HTTP API, the configuration it writes used by a real agent whose sealed reading reaches the
bridge's database; a used, expired or unknown code refused; a revoked kiosk dropped by the
broker at once and refused when it comes back."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker_admin import access
from broker_admin.check import check_broker
from contract.sealing import write_key_pair
from edge_agent.settings import AgentSettings, DeviceSettings, ScreenSettings
from runtime.mqtt import BrokerSettings
from tests.shipped_broker import ShippedBroker, shipped_broker
from cloud_bridge.api import create_app
from tests.support import CUFF_ADDRESS, Bridge, ServedApp, running_agent, wait_until
from tests.tls_material import CertificateAuthority
from tests.test_end_to_end import assert_is_the_measurement, cuff_backends

SITE, KIOSK = "pudong-lujiazui", "kiosk-07"
BRIDGE_PASSWORD = "bridge " + "b" * 30


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    started = shipped_broker(tmp_path)
    started.add_bridge("bridge-1", BRIDGE_PASSWORD)
    started.process.start()
    yield started
    started.process.stop()


@pytest.fixture
def bridge(tmp_path: Path, broker: ShippedBroker, bridge_factory: Any) -> Bridge:
    """A worker as a city runs it: its own broker account, the plugin's admin for enrolment, a payload key."""
    key, _public = write_key_pair(tmp_path / "bridge-keys")
    config = broker.config
    worker: Bridge = bridge_factory(
        broker.process,
        broker_settings=BrokerSettings(host=config.host, port=config.port, username="bridge-1", password=BRIDGE_PASSWORD,  # type: ignore[arg-type]
                                       reconnect_min_s=1, reconnect_max_s=1),
        payload_keys=[key],
        enrolment={"admin": broker.admin_settings.model_dump(),
                   "kiosk_broker": {"host": "127.0.0.1", "port": config.tls_port, "ca_file": broker.ca.cert_file}},
    )
    return worker


def doorstep_enrol(api: ServedApp, code: str, config: Path, *extra: str, scheme: str = "http") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "doorstep", "enrol", "--bridge", f"{scheme}://127.0.0.1:{api.port}", "--code", code,
         "--config", str(config), *extra],
        capture_output=True, text=True, timeout=60,
    )


def new_code(api: ServedApp, kiosk: str = KIOSK, **fields: Any) -> str:
    created = api.post("/api/v1/enrolment-codes", {"site": SITE, "kiosk": kiosk, **fields})
    assert created.status == 201, created.body
    return str(created.body["code"])


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {name: value for name, value in pairs}


def enrolled_agent(config: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> AgentSettings:
    """The written files as systemd hands them to the agent (agent.env is its EnvironmentFile),
    with a simulated cuff and paths of the test's own."""
    for name, value in read_env(config.with_name("agent.env")).items():
        monkeypatch.setenv(name, value)
    settings = AgentSettings.from_file(config)
    return settings.model_copy(update={
        "outbox_path": work / "outbox.sqlite3", "screen": ScreenSettings(port=0), "ack_timeout_s": 1.0,
        "broker": settings.broker.model_copy(update={"reconnect_min_s": 1, "reconnect_max_s": 1}),
        "devices": [DeviceSettings(address=CUFF_ADDRESS, model="simulated", reconnect_interval_s=3600, idle_timeout_s=0.5)],
    })


@pytest.mark.asyncio
async def test_a_fresh_kiosk_enrols_with_a_code_and_delivers_then_is_revoked_at_once(
    tmp_path: Path, broker: ShippedBroker, bridge: Bridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "etc" / "agent.yaml"
    with bridge.api() as api:
        code = new_code(api)
        with broker.admin() as admin:  # nothing on the broker until the kiosk enrols
            assert [a.username for a in access.accounts(admin)] == ["bridge-1"]
        result = await asyncio.to_thread(doorstep_enrol, api, code, config)
        assert result.returncode == 0, result.stderr
        assert f"enrolled as kiosk {SITE}/{KIOSK}" in result.stdout
        assert stat.S_IMODE(config.with_name("agent.env").stat().st_mode) == 0o600
        assert "PASSWORD" not in config.read_text() and config.with_name("broker-ca.crt").read_bytes() == broker.ca.cert_file.read_bytes()
        settings = enrolled_agent(config, tmp_path, monkeypatch)
        assert (settings.broker.username, settings.broker.port) == (f"{SITE}.{KIOSK}", broker.config.tls_port)
        assert settings.payload_public_key == bridge.worker.context.payload_public_key is not None
        assert settings.broker.tls is not None

        async with running_agent(settings, cuff_backends()) as agent:
            await wait_until(lambda: bridge.reading_count() == 1, what="the enrolled kiosk's reading in the bridge")
            assert_is_the_measurement(bridge.readings()[0].payload)  # sealed for the key it was given, opened
            assert agent.uplink is not None and agent.uplink.connected
            # Revoked through the bridge: the broker drops it at once and refuses it back.
            revoked = api.request("DELETE", f"/api/v1/kiosks/{SITE}/{KIOSK}/broker-account")
            assert revoked.status == 204, revoked.body
            await wait_until(lambda: not agent.uplink.connected, timeout=5, what="the kiosk disconnected")  # type: ignore[union-attr]
            await asyncio.sleep(3)  # three of its reconnect attempts (1 s apart)
            assert not agent.uplink.connected
        check = check_broker(settings.broker, "kiosk")
        assert not check.ok and "refused" in check.detail, check.detail
        assert api.request("DELETE", f"/api/v1/kiosks/{SITE}/{KIOSK}/broker-account").status == 404
        actions = [(e["action"], e["result"]) for e in api.get("/api/v1/audit").body["items"]]
        assert actions[:3] == [("kiosk_revoke", "ok"), ("enrol", "ok"), ("enrolment_code_create", "ok")]


@pytest.mark.parametrize("bridge_database", ["sqlite"], indirect=True)  # the bridge's engine is not the subject
def test_enrolling_with_a_private_bridge_ca_keeps_a_copy_the_agent_trusts_for_updates(tmp_path: Path, bridge: Bridge) -> None:
    authority = CertificateAuthority(tmp_path / "bridge-pki", "doorstep bridge CA")
    given = tmp_path / "usb-stick" / "bridge-ca.pem"
    given.parent.mkdir()
    given.write_bytes(authority.issued.cert.read_bytes())
    config = tmp_path / "etc" / "agent.yaml"
    with bridge.api() as api, ServedApp(create_app(bridge.engine, bridge.worker.context),
                                        tls=authority.issue("bridge", "bridge.example.org", server=True)) as https:
        result = doorstep_enrol(https, new_code(api), config, "--bridge-ca", str(given), scheme="https")
    assert result.returncode == 0, result.stderr
    assert str(config.with_name("bridge-ca.crt")) in result.stdout
    given.unlink()  # the stick is taken away: the kiosk keeps its own copy
    settings = AgentSettings.from_file(config)
    assert settings.bridge_ca == config.with_name("bridge-ca.crt").resolve()
    assert settings.bridge_ca.read_bytes() == authority.issued.cert.read_bytes()


def test_used_expired_and_unknown_codes_are_refused_and_nothing_is_overwritten(
    tmp_path: Path, broker: ShippedBroker, bridge: Bridge
) -> None:
    with bridge.api() as api:
        code = new_code(api)
        assert doorstep_enrol(api, code, tmp_path / "first" / "agent.yaml").returncode == 0
        # The same code again, on another machine: spent.
        used = doorstep_enrol(api, code, tmp_path / "second" / "agent.yaml")
        assert used.returncode == 1 and "used already" in used.stderr and "(code_used)" in used.stderr, used.stderr
        assert not (tmp_path / "second").exists()
        # A code past its time (hours: 0.0003 is about a second).
        expiring = new_code(api, kiosk="kiosk-08", hours=0.0003)
        time.sleep(1.5)
        expired = doorstep_enrol(api, expiring, tmp_path / "third" / "agent.yaml")
        assert expired.returncode == 1 and "(code_expired)" in expired.stderr, expired.stderr
        unknown = doorstep_enrol(api, "ABCD-EFGH-JKMN", tmp_path / "fourth" / "agent.yaml")
        assert unknown.returncode == 1 and "(code_unknown)" in unknown.stderr
        with broker.admin() as admin:  # only the one enrolled kiosk got an account
            assert [a.username for a in access.accounts(admin)] == ["bridge-1", f"{SITE}.{KIOSK}"]
        # An enrolled kiosk's files are not replaced without --force (the bridge is not asked).
        fresh = new_code(api)
        exists = doorstep_enrol(api, fresh, tmp_path / "first" / "agent.yaml")
        assert exists.returncode == 2 and "--force" in exists.stderr
        refusals = [(e["detail"]["reason"], e["target"])
                    for e in api.get("/api/v1/audit", action="enrol").body["items"] if e["result"] == "refused"]
        assert refusals == [("code_unknown", None), ("code_expired", f"{SITE}/kiosk-08"), ("code_used", f"{SITE}/{KIOSK}")]
        # A bridge that is not there.
        api_port = api.port
    gone = subprocess.run([sys.executable, "-m", "doorstep", "enrol", "--bridge", f"http://127.0.0.1:{api_port}",
                           "--code", fresh, "--config", str(tmp_path / "fifth" / "agent.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 3 and "cannot reach the bridge" in gone.stderr, gone.stderr
