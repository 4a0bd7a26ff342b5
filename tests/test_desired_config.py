"""Desired configuration through real parts (issue 19): a technician's change in the bridge's API,
retained on a real Mosquitto, applied by the in-process agent, reported back through its
telemetry into the bridge's table; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import json
import queue
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, col, select

from broker_admin.mosquitto import MosquittoProcess, free_port
from cloud_bridge.accounts import AuditEntry
from cloud_bridge.fleet import Kiosk
from contract.payloads import DeviceIdentity
from contract.topics import KioskTopics
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from edge_agent.agent import Agent
from edge_agent.desired_config import config_path
from edge_agent.settings import AgentSettings
from edge_agent.store.outbox import RecordState, SavedRecord
from runtime.mqtt import make_client
from tests.kiosk_support import ROOM, acall, kiosk_settings
from tests.test_kiosk_laundry_api import CARD, laundry_kiosk, open_account, room_read
from tests.support import CUFF_ADDRESS, KIOSK, SITE, Bridge, agent_settings, broker_settings, running_agent, wait_until

# Now and then a socket with no peer (laddr 127.0.0.1 only) is finalised unclosed by the cycle
# collector after these tests, which stop agents, move one to a broker that refuses it and start
# bridge workers: paho's, as far as we could tell (the clients' own sockets are closed now,
# runtime/mqtt.py release), not found for sure by the deadline. It is collected here, within this
# module's tests, so it cannot surface as an error in another module's.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collected() -> Iterator[None]:
    yield
    gc.collect()


CONFIG = f"/api/v1/kiosks/{SITE}/{KIOSK}/config"
SECOND_CUFF = "SIM:CU:FF:00:00:02"
# A real Bluetooth address: no such device answers here.
SILENT_CUFF = "A4:C1:38:00:00:99"
HEALTH_S = 3.0


def settings_of(tmp_path: Path, broker: MosquittoProcess) -> AgentSettings:
    return agent_settings(tmp_path, broker).model_copy(update={"config_health_s": HEALTH_S})


def cuff(address: str, model: str = "simulated", **more: Any) -> dict[str, Any]:
    """A device as tests/support.py configures the kiosk's cuff (the "simulated" model is the simulator)."""
    return {"address": address, "model": model, "reconnect_interval_s": 3600, "idle_timeout_s": 0.5, **more}


def kiosk_row(bridge: Bridge) -> Kiosk | None:
    with Session(bridge.engine) as session:
        return session.get(Kiosk, (SITE, KIOSK))


async def reported(bridge: Bridge, what: str, **columns: Any) -> Kiosk:
    def matches() -> bool:
        row = kiosk_row(bridge)
        return row is not None and all(getattr(row, name) == value for name, value in columns.items())

    await wait_until(matches, timeout=30, what=what)
    row = kiosk_row(bridge)
    assert row is not None
    return row


class Readings:
    """Readings saved through the agent's own path, each different; and the id of every reading
    the agent saved (these, and its devices')."""

    def __init__(self) -> None:
        self.saved = 0
        self.ids: list[uuid.UUID] = []

    def on_saved(self, record: SavedRecord, _reading: object) -> None:
        self.ids.append(record.message_id)

    async def save(self, agent: Agent, count: int) -> None:
        for _ in range(count):
            self.saved += 1
            reading = BloodPressureMeasurement(
                unit=BloodPressureUnit.MMHG, systolic=120.0 + self.saved % 20, diastolic=80.0, mean_arterial_pressure=93.0,
                timestamp=datetime(2026, 12, 1, 8, 0) + timedelta(minutes=self.saved),
            )
            assert await agent.save_reading(reading, DeviceIdentity(model="simulated", address=CUFF_ADDRESS)) is not None


@pytest.mark.asyncio
async def test_a_change_reaches_the_running_kiosk_only_what_changed_restarts_and_a_failing_one_is_rolled_back(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    readings = Readings()
    with bridge.api() as api:
        async with running_agent(settings_of(tmp_path, running_broker), on_saved=readings.on_saved) as agent:
            await wait_until(lambda: agent.uplink is not None and agent.uplink.connected, what="the agent connected")
            await readings.save(agent, 20)
            first_cuff = agent._device_tasks[CUFF_ADDRESS]  # noqa: SLF001 - the watch that must not restart
            changed = api.request("PUT", CONFIG, json.dumps({
                "screen": {"language": "en", "blood_pressure_bands": {"high": {"systolic": 135, "diastolic": 85}}},
                "devices": [cuff(CUFF_ADDRESS), cuff(SECOND_CUFF, simulated=True)],
                "telemetry_every_s": 30,
            }).encode())
            assert changed.status == 200, changed.body
            assert [(c["kiosk"], c["version"]) for c in changed.body["changed"]] == [(KIOSK, 1)]
            row = await reported(bridge, "version 1 applied", config_version=1, config_outcome="applied")
            assert row.config_tried_version == 1 and row.config_reason is None
            assert agent.settings.screen.language == "en" and agent.settings.telemetry_every_s == 30
            assert agent.desk.bands.high.systolic == 135
            # The unchanged cuff's watch was not restarted; the new one answered.
            assert agent._device_tasks[CUFF_ADDRESS] is first_cuff  # noqa: SLF001
            assert SECOND_CUFF in agent._device_tasks  # noqa: SLF001
            assert agent.settings.broker == agent.base_settings.broker  # not in the document: the kiosk's own

            # A bad value is refused by the API, whole, with every problem by field; nothing changes.
            bad = api.request("PUT", CONFIG, json.dumps({
                "screen": {"language": "fr", "technician_pin": "123456"},
                "devices": [cuff(CUFF_ADDRESS, model="no-such-cuff")],
            }).encode())
            assert bad.status == 422 and bad.body["error"] == "invalid_config"
            assert bad.body["problems"] == [
                f"kiosk {SITE}/{KIOSK}: screen.technician_pin: set in the kiosk's own file only, not from the fleet",
                f"kiosk {SITE}/{KIOSK}: devices.0.model: no profile 'no-such-cuff' in firmware_configs/ble/; known: "
                "and-medical, generic, generic-glucose-meter, generic-pulse-oximeter, generic-scale, "
                "generic-thermometer, hem-7142t2, hem-7361t, noncompliant-example, omron, simulated, yuwell",
                f"kiosk {SITE}/{KIOSK}: screen.language: Input should be 'zh-CN' or 'en'",
            ]
            assert api.get(CONFIG).body["desired"]["version"] == 1

            # Valid, but a device that never answers: rolled back, and the kiosk says why.
            await readings.save(agent, 20)
            failing = api.request("PUT", CONFIG, json.dumps({
                "screen": {"language": "en"}, "devices": [cuff(CUFF_ADDRESS), cuff(SILENT_CUFF, model="generic")],
            }).encode())
            assert failing.status == 200 and failing.body["changed"][0]["version"] == 2
            row = await reported(bridge, "version 2 rolled back", config_tried_version=2, config_outcome="rolled_back")
            assert row.config_version == 1
            assert row.config_reason is not None and f"device {SILENT_CUFF} has not answered" in row.config_reason
            assert [d.address for d in agent.settings.devices] == [CUFF_ADDRESS, SECOND_CUFF]
            assert agent._device_tasks[CUFF_ADDRESS] is first_cuff  # noqa: SLF001 - untouched by both changes
            assert agent.settings.screen.blood_pressure_bands.high.systolic == 135  # version 1's, again

            # Valid, but a broker the kiosk cannot reach: rolled back, reported over the old one,
            # and what was saved meanwhile is delivered.
            nowhere = free_port()
            moved = api.request("PUT", CONFIG, json.dumps({
                "screen": {"language": "en", "blood_pressure_bands": {"high": {"systolic": 135, "diastolic": 85}}},
                "devices": [cuff(CUFF_ADDRESS), cuff(SECOND_CUFF, simulated=True)], "telemetry_every_s": 30,
                "broker": {"port": nowhere},
            }).encode())
            assert moved.status == 200 and moved.body["changed"][0]["version"] == 3
            await wait_until(lambda: agent.settings.broker.port == nowhere, what="the kiosk on the new broker")
            await readings.save(agent, 20)
            row = await reported(bridge, "version 3 rolled back", config_tried_version=3, config_outcome="rolled_back")
            assert row.config_version == 1
            assert f"the broker 127.0.0.1:{nowhere} is not reachable" in (row.config_reason or "")
            assert agent.settings.broker.port == running_broker.port

            # Every record through all of it: delivered, and stored once each.
            outbox = agent.outbox
            assert outbox is not None
            await wait_until(lambda: outbox.counts()[RecordState.PENDING] == 0, timeout=30, what="the outbox drained")
            saved = set(readings.ids)
            assert len(saved) == len(readings.ids) > readings.saved  # ours, and the simulated cuff's
            await wait_until(lambda: bridge.reading_count() == len(saved), timeout=30, what="every reading stored")
            assert {r.message_id for r in bridge.readings()} == saved
            assert outbox.counts()[RecordState.DELIVERED] >= len(saved)

            listed = api.get("/api/v1/kiosks").body["items"]
            assert [(k["kiosk"], k["desired_version"], k["config_version"], k["config_state"]) for k in listed] == [
                (KIOSK, 3, 1, "rolled_back")]
        with Session(bridge.engine) as session:
            audited = session.exec(select(AuditEntry).where(col(AuditEntry.action) == "config").order_by(col(AuditEntry.id))).all()
        assert [(a.result, a.actor, a.target) for a in audited] == [
            ("ok", "technician-all", f"{SITE}/{KIOSK}"), ("refused", "technician-all", f"{SITE}/{KIOSK}"),
            ("ok", "technician-all", f"{SITE}/{KIOSK}"), ("ok", "technician-all", f"{SITE}/{KIOSK}")]
        assert audited[0].detail["versions"] == {f"{SITE}/{KIOSK}": 1}
        assert audited[1].detail["document"]["screen"]["language"] == "fr"


@pytest.mark.asyncio
async def test_an_offline_kiosk_gets_its_site_and_kiosk_configuration_when_it_returns_and_keeps_it_across_a_restart(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    settings = settings_of(tmp_path, running_broker)
    with bridge.api() as api:
        async with running_agent(settings) as agent:  # heard once, so the site's document reaches it
            await wait_until(lambda: kiosk_row(bridge) is not None, what="the kiosk heard")
            assert agent.fleet_config is not None and agent.fleet_config.running_version == 0
        # Offline now. The site's defaults, and the kiosk's own over them.
        site = api.request("PUT", f"/api/v1/sites/{SITE}/config",
                           json.dumps({"screen": {"language": "en", "idle_reset_s": 40}, "outbox": {"budget_mb": 64}}).encode())
        assert site.status == 200 and [(c["kiosk"], c["version"]) for c in site.body["changed"]] == [(KIOSK, 1)]
        own = api.request("PUT", CONFIG, json.dumps({"screen": {"idle_reset_s": 20}}).encode())
        assert own.status == 200 and own.body["changed"][0]["version"] == 2
        assert own.body["changed"][0]["config"] == {"screen": {"language": "en", "idle_reset_s": 20}, "outbox": {"budget_mb": 64}}
        unchanged = api.request("PUT", CONFIG, json.dumps({"screen": {"idle_reset_s": 20}}).encode())
        assert unchanged.status == 200 and unchanged.body["changed"] == []  # the same configuration: no new version
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.settings.screen.idle_reset_s == 20, what="version 2 at the returning kiosk")
            assert agent.settings.screen.language == "en" and agent.settings.outbox.budget_mb == 64
            assert agent.outbox is not None and agent.outbox.limits.budget_bytes < 64 * 1024 * 1024
            await reported(bridge, "version 2 applied", config_version=2, config_outcome="applied")
        assert json.loads(config_path(settings.outbox_path).read_text())["last_good"]["version"] == 2
        # Restarted: it runs version 2 from its first moment, before it has heard the broker
        # (running_agent hands the agent over as soon as its outbox is open).
        async with running_agent(settings) as agent:
            assert agent.settings.screen.idle_reset_s == 20 and agent.settings.screen.language == "en"
            assert agent.fleet_config is not None and agent.fleet_config.report().version == 2
        assert api.get(CONFIG).body["state"] == "in_sync"


class DesiredWatch:
    """A plain MQTT client on the kiosk's desired topic: every message on it, retained or not."""

    def __init__(self, broker: MosquittoProcess) -> None:
        self.received: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.topic = KioskTopics(SITE, KIOSK).desired
        self.client = make_client("desired-watch", broker_settings(broker))
        self.client.on_message = lambda _c, _u, message: self.received.put(bytes(message.payload))
        self.gone = threading.Event()
        self.client.on_disconnect = lambda *_args: self.gone.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(self.topic, qos=1)

    def next(self) -> bytes:
        return self.received.get(timeout=10)

    def close(self) -> None:
        # paho closes its socket before it calls on_disconnect; stopping its loop sooner can
        # leave the socket to the garbage collector (a ResourceWarning, an error here).
        self.client.disconnect()
        self.gone.wait(5)
        self.client.loop_stop()
        self.client.on_message = self.client.on_disconnect = None  # no cycle left: freed at once


@pytest.mark.asyncio
async def test_a_bridge_worker_republishes_every_desired_configuration_when_it_starts(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    """The broker's retained copy lost (a broker restored without its store): the next worker to
    start puts it back, so an offline kiosk still finds it."""
    bridge = bridge_factory(running_broker)
    watch = DesiredWatch(running_broker)
    try:
        with bridge.api() as api:
            assert api.request("PUT", CONFIG, json.dumps({"screen": {"language": "en"}}).encode()).status == 200
        published = watch.next()
        assert json.loads(published)["version"] == 1
        watch.client.publish(watch.topic, b"", qos=1, retain=True).wait_for_publish(5)
        assert watch.next() == b""  # the broker retains nothing now
        bridge_factory(running_broker, client_id="bridge-test-2")
        assert watch.next() == published  # put back by the worker that started
    finally:
        watch.close()
    async with running_agent(settings_of(tmp_path, running_broker)) as agent:
        await wait_until(lambda: agent.settings.screen.language == "en", what="the republished configuration applied")


@pytest.mark.asyncio
async def test_a_change_waits_while_a_resident_is_at_the_cuff(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    with bridge.api() as api:
        async with running_agent(settings_of(tmp_path, running_broker)) as agent:
            await wait_until(lambda: agent.uplink is not None and agent.uplink.connected, what="the agent connected")
            agent.desk.begin(None)  # a resident pressed "measure" on the screen
            assert api.request("PUT", CONFIG, json.dumps({"screen": {"language": "en"}}).encode()).status == 200
            await asyncio.sleep(3)  # the desired configuration arrived meanwhile (published in well under a second)
            assert agent.settings.screen.language == "zh-CN" and agent.desk.snapshot()["state"] == "waiting"
            agent.desk.cancel()  # her session ends
            await wait_until(lambda: agent.settings.screen.language == "en", what="the change applied after her session")
            await reported(bridge, "version 1 applied", config_version=1, config_outcome="applied")


def test_a_kiosk_document_may_complete_its_sites_section_and_is_refused_where_nothing_completes_it(
    running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    with bridge.api() as api:
        room = {"laundry": {"machines": {"1": "washer-retrofit-a", "2": "dryer-retrofit-b"}}}
        assert api.request("PUT", f"/api/v1/sites/{SITE}/config", json.dumps(room).encode()).status == 200
        own = api.request("PUT", CONFIG, json.dumps({"laundry": {"free_from_age": 70}}).encode())
        assert own.status == 200
        assert own.body["changed"][0]["config"] == {"laundry": {"machines": {"1": "washer-retrofit-a", "2": "dryer-retrofit-b"},
                                                                "free_from_age": 70}}
        elsewhere = api.request("PUT", "/api/v1/kiosks/other-site/kiosk-9/config",
                                json.dumps({"laundry": {"free_from_age": 70}}).encode())
        assert (elsewhere.status, elsewhere.body["problems"]) == (422, ["kiosk other-site/kiosk-9: laundry.machines: Field required"])
        unknown = api.request("PUT", f"/api/v1/sites/{SITE}/config", json.dumps({"laundry": {"machines": {"1": "washer-retrofit-a"}, "prices": 3}}).encode())
        assert (unknown.status, unknown.body["problems"]) == (422, [f"site {SITE}: laundry.prices: no such setting"])


@pytest.mark.asyncio
async def test_a_laundry_change_restarts_the_room_alone_on_the_kiosks_own_line(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    settings = kiosk_settings(tmp_path, running_broker, laundry=True).model_copy(update={"config_health_s": 10.0})
    with bridge.api() as api:
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.laundry is not None and len(agent.laundry.machines()) == 8, what="the room open")
            first_cuff = agent._device_tasks[CUFF_ADDRESS]  # noqa: SLF001
            screen = agent.screen
            seven = {str(unit): model for unit, model in ROOM.items() if unit != 8}
            changed = api.request("PUT", CONFIG, json.dumps({"laundry": {"machines": seven, "free_from_age": 70}}).encode())
            assert changed.status == 200
            await reported(bridge, "version 1 applied", config_version=1, config_outcome="applied")
            assert agent.laundry is not None and sorted(m.unit for m in agent.laundry.machines()) == [1, 2, 3, 4, 5, 6, 7]
            assert agent.settings.laundry is not None and agent.settings.laundry.port == "simulated"  # the kiosk's own
            assert agent.settings.laundry.free_from_age == 70
            assert agent._device_tasks[CUFF_ADDRESS] is first_cuff and agent.screen is screen  # noqa: SLF001


@pytest.mark.asyncio
async def test_a_price_changed_in_the_api_waits_for_a_start_in_doubt_then_the_kiosk_charges_it(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge = bridge_factory(running_broker)
    settings = laundry_kiosk(tmp_path, running_broker).model_copy(update={"config_health_s": 10.0})
    with bridge.api() as api:
        async with running_agent(settings) as agent:
            url, room, sim = await room_read(agent)
            await open_account(url, CARD, balance=20)
            # A start whose answer is lost: in doubt until the machine's echo is read back.
            sim.inject(6, unresponsive=True)
            lost = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": 6, "program": 1})
            assert lost.body["outcome"] == "checking"
            negative = {"laundry": {"machines": ROOM, "programs": {"washer-retrofit-a": {"1": {"price_points": -1}}}}}
            refused = api.request("PUT", CONFIG, json.dumps(negative).encode())
            assert (refused.status, refused.body["problems"]) == (422, [
                f"kiosk {SITE}/{KIOSK}: laundry.programs.washer-retrofit-a.1.price_points: "
                "Input should be greater than or equal to 0"])
            cheaper = {"laundry": {"machines": ROOM, "programs": {"washer-retrofit-a": {"1": {"price_points": 2}}}}}
            assert api.request("PUT", CONFIG, json.dumps(cheaper).encode()).status == 200
            await asyncio.sleep(HEALTH_S)  # time enough to arrive, and to be applied if it did not wait
            assert agent.laundry is room and agent.settings.laundry.programs == {}  # type: ignore[union-attr]
            sim.clear_faults(6)  # its echo shows the start never arrived: decided, nothing charged
            await reported(bridge, "version 1 applied", config_version=1, config_outcome="applied")
            url, room, sim = await room_read(agent)
            started = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": 2, "program": 1})
            assert started.body == {"outcome": "started", "reason": None, "points_charged": 2, "balance": 18}
            assert [c.points for c in room.ledger.charges()] == [2]
