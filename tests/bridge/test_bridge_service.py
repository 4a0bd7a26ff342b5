"""A bridge worker with its API, a real Mosquitto and real agents: the fleet view, alerts, and
a technician's command all the way to the kiosk and back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker_admin.mosquitto import MosquittoProcess, free_port
from contract.topics import QOS_RELIABLE
from runtime.mqtt import make_client
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure
from tests.support import KIOSK, SITE, Bridge, ServedApp, agent_settings, broker_settings, running_agent, wait_until
from tests.test_end_to_end import cuff_backends

pytestmark = pytest.mark.asyncio


def kiosk_status(api: ServedApp) -> str | None:
    found = api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}")
    return found.body["status"] if found.status == 200 else None


async def test_a_command_goes_to_the_kiosk_and_its_result_comes_back(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge: Bridge = bridge_factory(running_broker)
    with bridge.api() as api:
        assert api.post(f"/api/v1/kiosks/{SITE}/{KIOSK}/commands", {"command": "ping"}).status == 404  # never seen
        async with running_agent(agent_settings(tmp_path, running_broker)) as agent:
            await wait_until(lambda: kiosk_status(api) == "online", what="the kiosk online in the API")
            created = api.post(f"/api/v1/kiosks/{SITE}/{KIOSK}/commands", {"command": "ping"})
            assert created.status == 201 and created.body["status"] in ("pending", "delivered")
            request_id = created.body["request_id"]

            def status() -> str:
                return str(api.get(f"/api/v1/commands/{request_id}").body["status"])

            await wait_until(lambda: status() == "succeeded", what="the ping answered")
            done = api.get(f"/api/v1/commands/{request_id}").body
            assert done["detail"] == "pong" and "kiosk_time" in done["data"] and done["delivered_at"] is not None
            assert [a.request_id for a in agent.remote.audit()] == [request_id]  # type: ignore[union-attr]
            # The kiosk refuses what it cannot do, and the status says so.
            other = api.post(f"/api/v1/kiosks/{SITE}/{KIOSK}/commands",
                             {"command": "reconnect_device", "args": {"address": "AA:BB"}}).body["request_id"]
            await wait_until(lambda: api.get(f"/api/v1/commands/{other}").body["status"] == "refused", what="refused")
            assert "no device 'AA:BB'" in api.get(f"/api/v1/commands/{other}").body["detail"]
        # Arguments that do not fit are refused before anything is sent, with the field named.
        bad = api.post(f"/api/v1/kiosks/{SITE}/{KIOSK}/commands", {"command": "laundry_start", "args": {"unit": 300}})
        assert bad.status == 422 and bad.body["error"] == "invalid_request"
        assert "args.unit" in bad.body["reason"] and "args.subject" in bad.body["reason"]
        unknown = api.post(f"/api/v1/kiosks/{SITE}/{KIOSK}/commands", {"command": "dance"})
        assert unknown.status == 422 and unknown.body["problems"][0]["field"] == "command"
        listed = api.get("/api/v1/commands", site=SITE).body
        assert listed["total"] == 2 and listed["items"][0]["request_id"] == other


async def test_a_command_for_a_kiosk_that_is_away_waits_for_it_at_the_broker(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge: Bridge = bridge_factory(running_broker)
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    with bridge.api() as api:
        async with running_agent(settings):
            await wait_until(lambda: kiosk_status(api) == "online", what="the kiosk online")
        await wait_until(lambda: kiosk_status(api) == "offline", what="the kiosk offline after a clean stop")
        request_id = api.post(f"/api/v1/kiosks/{SITE}/{KIOSK}/commands", {"command": "status"}).body["request_id"]
        await wait_until(lambda: api.get(f"/api/v1/commands/{request_id}").body["status"] == "delivered",
                         what="the broker holding it for the kiosk's session")
        async with running_agent(settings):
            await wait_until(lambda: api.get(f"/api/v1/commands/{request_id}").body["status"] == "succeeded",
                             what="the kiosk answering once back")


class AlertReceiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                received.append(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def alert_receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def test_a_planned_stop_is_an_alert_to_see_not_a_critical_one(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    """A technician's restart or a clean stop (the agent says goodbye itself) used to raise the
    same critical alert as a kiosk lost; it is a warning now. A Last Will stays critical (the
    test after this one)."""
    bridge: Bridge = bridge_factory(running_broker)
    with bridge.api() as api:
        async with running_agent(agent_settings(tmp_path, running_broker, with_cuff=False)):
            await wait_until(lambda: kiosk_status(api) == "online", what="the kiosk online")
        await wait_until(lambda: kiosk_status(api) == "offline", what="the kiosk offline after a clean stop")
        [alert] = api.get("/api/v1/alerts", state="open", kind="kiosk_offline").body["items"]
        assert alert["severity"] == "warning" and alert["title"] == "kiosk offline: stopped cleanly"
        assert alert["data"]["planned"] is True


async def test_a_kiosk_killed_goes_offline_with_an_alert_posted_to_the_webhook(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any, alert_receiver: AlertReceiver
) -> None:
    bridge: Bridge = bridge_factory(running_broker, webhook={"url": f"http://127.0.0.1:{alert_receiver.port}/hook"})
    config = tmp_path / "agent.yaml"
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    with open(tmp_path / "agent.log", "wb") as log:  # the child keeps its own descriptor
        agent = subprocess.Popen([sys.executable, "-m", "doorstep", "agent", "--config", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=log)
    try:
        with bridge.api() as api:
            await wait_until(lambda: kiosk_status(api) == "online", timeout=30, what="the agent process online")
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait()
            await wait_until(lambda: kiosk_status(api) == "offline", what="the Last Will")
            kiosk = api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").body
            assert kiosk["status_reason"] == "connection lost (Last Will)" and kiosk["open_alerts"] == 1
            [alert] = api.get("/api/v1/alerts", state="open").body["items"]
            assert (alert["kind"], alert["severity"]) == ("kiosk_offline", "critical")
            await wait_until(lambda: len(alert_receiver.bodies) >= 1, what="the webhook post")
            assert b'"kiosk_offline"' in alert_receiver.bodies[0]
            # A technician takes it, then it resolves itself when the kiosk is back.
            taken = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", {"note": "on my way"})
            assert taken.status == 200 and taken.body["state"] == "acknowledged"
            assert api.post(f"/api/v1/alerts/{alert['id']}/acknowledge").status == 409
            async with running_agent(settings):
                await wait_until(lambda: api.get(f"/api/v1/alerts/{alert['id']}").body["state"] == "resolved",
                                 what="the alert resolved by the kiosk's return")
            await wait_until(lambda: len(alert_receiver.bodies) >= 3, what="acknowledged and resolved posted")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


async def test_fleet_view_shows_devices_and_a_dangerous_reading_alert(
    running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge: Bridge = bridge_factory(running_broker)
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    client = make_client("wire-kiosk", broker_settings(running_broker))
    client.connect(running_broker.host, running_broker.port)
    client.loop_start()
    try:
        await wait_until(lambda: bridge.ingest.connected, what="the bridge connected")
        await asyncio.sleep(0.3)
        for reading in (kiosk.reading(blood_pressure(126, 80)), kiosk.reading(blood_pressure(182, 95, subject="ef" * 32))):
            client.publish(reading.topic, reading.body, qos=QOS_RELIABLE).wait_for_publish(5)
        with bridge.api(role="doctor", site=SITE) as doctor:
            await wait_until(lambda: doctor.get("/api/v1/alerts").body["total"] == 1, what="the alert")
            [alert] = doctor.get("/api/v1/alerts").body["items"]
            assert (alert["kind"], alert["about"], alert["severity"]) == ("dangerous_reading", "ef" * 32, "critical")
            assert doctor.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").body["open_alerts"] == 1
        with bridge.api() as api:
            assert api.get("/api/v1/alerts").body["total"] == 0  # a technician sees no resident's health
            [listed] = api.get("/api/v1/kiosks").body["items"]
            # Nor a count of it: the kiosk's only open alert is the doctor's.
            assert (listed["kiosk"], listed["open_alerts"], listed["last_seq"]) == (KIOSK, 0, 2)
            assert api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").body["open_alerts"] == 0
            [device] = api.get("/api/v1/devices", kiosk=KIOSK).body["items"]
            assert (device["address"], device["firmware"]) == ("A4:C1:38:12:34:56", "1.2.0")
            assert api.get("/api/v1/kiosks/nowhere/none").status == 404
            assert api.get("/api/v1/alerts/999").body == {"error": "not_found", "reason": "no alert 999"}
    finally:
        client.disconnect()
        client.loop_stop()


async def test_a_test_kiosk_can_be_retired_from_the_fleet(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    """A kiosk set up to try things stayed in the fleet for ever, offline, with its alert. A
    technician retires it: its row, its devices and its kiosk alerts go (audited), its readings
    and a doctor's alerts stay; should it send again, it is listed again."""
    bridge: Bridge = bridge_factory(running_broker)
    with bridge.api() as api:
        async with running_agent(agent_settings(tmp_path, running_broker), cuff_backends()) as agent:
            await wait_until(lambda: kiosk_status(api) == "online", what="the kiosk online")
            await wait_until(lambda: bridge.reading_count() == 1, what="its cuff's reading stored")
            await wait_until(lambda: api.get("/api/v1/devices", kiosk=KIOSK).body["total"] >= 1, what="its devices")
            assert agent.uplink is not None
        await wait_until(lambda: kiosk_status(api) == "offline", what="the kiosk offline")
        [offline] = api.get("/api/v1/alerts", state="open", kind="kiosk_offline").body["items"]
        assert api.request("DELETE", f"/api/v1/kiosks/{SITE}/{KIOSK}", None).status == 204
        assert api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").status == 404
        assert api.get("/api/v1/kiosks").body["items"] == []
        assert api.get("/api/v1/devices", kiosk=KIOSK).body["items"] == []
        resolved = api.get(f"/api/v1/alerts/{offline['id']}").body
        assert (resolved["state"], resolved["resolved_by"]) == ("resolved", "technician-all")
        assert bridge.reading_count() == 1
        [entry] = [e for e in api.get("/api/v1/audit").body["items"] if e["action"] == "kiosk_retire"]
        assert (entry["actor"], entry["target"]) == ("technician-all", f"{SITE}/{KIOSK}")
        assert api.request("DELETE", f"/api/v1/kiosks/{SITE}/{KIOSK}", None).status == 404
        async with running_agent(agent_settings(tmp_path, running_broker, with_cuff=False)):
            await wait_until(lambda: kiosk_status(api) == "online", what="the kiosk listed again when it sends")
