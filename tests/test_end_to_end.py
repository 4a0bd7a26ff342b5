"""One blood-pressure reading from a simulated cuff to the cloud database, through real parts:
bleak over a simulated-peripheral backend, the SQLite outbox, paho-mqtt, a real Mosquitto,
the bridge's ingest and its SQLite store, and the FastAPI app."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import paho.mqtt.client as mqtt
import pytest

from broker_admin.mosquitto import MOSQUITTO_DEFAULT_AUTOSAVE_INTERVAL_S, MosquittoProcess
from contract.batch import split_batch
from contract.codec import encode
from contract.envelope import Envelope
from contract.topics import Channel, KioskTopics, ReadingKind, parse_topic
from runtime.mqtt import make_client
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit, MeasurementStatus
from drivers.ble.simulated import SimulatedCuff, simulated_backend
from edge_agent.agent import Agent
from edge_agent.store.outbox import RecordState
from tests.support import (
    Bridge,
    CUFF_ADDRESS,
    KIOSK,
    SITE,
    agent_settings,
    broker_settings,
    running_agent,
    wait_until,
)

MEASUREMENT = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG,
    systolic=128.0,
    diastolic=82.0,
    mean_arterial_pressure=97.0,
    timestamp=datetime(2026, 11, 25, 17, 30, 5),
    pulse_rate=71.0,
    user_id=1,
    status=(MeasurementStatus.BODY_MOVEMENT,),
    special_values=MappingProxyType({}),
)


# How long after the bridge's confirmation the broker is watched for the record again: longer
# than the agent's ack timeout (agent_settings: 1 s), after which an unconfirmed record is re-sent.
SETTLE_S = 1.5


class BrokerArrivals:
    """Each record id that reaches the broker on one kiosk's upstream topics (readings, events
    and batch, whose messages are split into their records by the contract's own framing), with
    the moment it arrived. The bridge stores a record once however often it comes, so only the
    broker's side can show a re-send."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[tuple[float, uuid.UUID]] = []

    def on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        payload = bytes(message.payload)
        if parse_topic(message.topic).channel is Channel.BATCH:
            bodies = [record.body for record in split_batch(message.topic, payload)]
        else:
            bodies = [payload]
        ids = [Envelope.model_validate_json(body).message_id for body in bodies]
        with self._lock:
            self._arrivals.extend((at, message_id) for message_id in ids)

    def ids(self, since: float = float("-inf")) -> list[uuid.UUID]:
        """The record ids that arrived after `since` (time.monotonic()), once per arrival."""
        with self._lock:
            return [message_id for at, message_id in self._arrivals if at > since]


@contextmanager
def broker_arrivals(broker: MosquittoProcess, topics: KioskTopics) -> Iterator[BrokerArrivals]:
    """A real paho client on `broker`, subscribed (the SUBACK awaited) before this yields, so
    that it sees the kiosk's first message too."""
    arrivals = BrokerArrivals()
    subscribed = threading.Event()
    client = make_client("test-upstream-arrivals", broker_settings(broker))
    client.on_message = arrivals.on_message
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(
        [(f"{topics.root}/{Channel.READINGS}/+", 1), (f"{topics.root}/{Channel.EVENTS}/+", 1), (topics.batch, 1)]
    )
    client.on_subscribe = lambda _c, _u, _mid, reasons, _p: subscribed.set() if all(
        not r.is_failure for r in reasons) else None
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert subscribed.wait(5), "the test's subscription to the kiosk's upstream topics was not granted"
        yield arrivals
    finally:
        client.disconnect()
        client.loop_stop()


async def arrivals_after_confirmation(
    agent: Agent, bridge: Bridge, arrivals: BrokerArrivals, timeout: float = 10
) -> list[uuid.UUID]:
    """Waits for the one reading to be stored and confirmed, then watches the broker for
    SETTLE_S: the confirmed records that reached it again in that time (none, if the kiosk
    forgets what the bridge confirmed). Counted at the broker, as the bridge's store keeps one
    row however often a record comes."""
    await wait_until(lambda: bridge.reading_count() == 1, timeout=timeout, what="the reading in the bridge database")
    await wait_until(lambda: agent.outbox.counts()[RecordState.DELIVERED] == 1, what="the bridge's ack")
    confirmed_at = time.monotonic()
    confirmed = {row.message_id for row in bridge.readings()}
    await asyncio.sleep(SETTLE_S)
    return [m for m in arrivals.ids(since=confirmed_at) if m in confirmed]


def cuff_backends() -> dict[str, type]:
    return {CUFF_ADDRESS: simulated_backend(SimulatedCuff(address=CUFF_ADDRESS, measurements=lambda: [MEASUREMENT]))}


def assert_is_the_measurement(row_payload: dict[str, object]) -> None:
    assert row_payload == {
        "unit": "mmHg",
        "systolic": 128.0,
        "diastolic": 82.0,
        "mean_arterial_pressure": 97.0,
        "pulse_rate": 71.0,
        "user_id": 1,
        "status": ["body_movement"],
        "special_values": {},
        "suspect": [],
        "subject": None,
    }


@pytest.mark.asyncio
async def test_a_reading_arrives_once_with_its_values_and_times_and_is_served(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory
) -> None:
    bridge = bridge_factory(running_broker)
    before = datetime.now(UTC)
    with broker_arrivals(running_broker, KioskTopics(SITE, KIOSK)) as arrivals:
        async with running_agent(agent_settings(tmp_path, running_broker), cuff_backends()) as agent:
            await wait_until(lambda: bridge.reading_count() == 1, what="the reading in the bridge database")
            await wait_until(lambda: agent.outbox.counts()[RecordState.DELIVERED] == 1, what="the bridge's ack")
            confirmed_at = time.monotonic()
            confirmed = {m for m in arrivals.ids() if agent.outbox.state_of(m) is RecordState.DELIVERED}
            # Nothing is sent twice once confirmed: counted at the broker, as the bridge's
            # store would keep one row however often the reading came.
            await asyncio.sleep(SETTLE_S)
            sent_again = [m for m in arrivals.ids(since=confirmed_at) if m in confirmed]
    [row] = bridge.readings()
    assert row.message_id in confirmed, "the reading never reached the broker on the kiosk's topics"
    assert sent_again == [], f"{len(sent_again)} arrivals after the bridge confirmed: {sorted(set(sent_again))}"
    assert bridge.reading_count() == 1
    assert (row.site, row.kiosk, row.kind, row.seq) == (SITE, KIOSK, "blood_pressure", 1)
    assert row.device_time == "2026-11-25T17:30:05"
    assert before <= row.kiosk_time.replace(tzinfo=row.kiosk_time.tzinfo or UTC) <= datetime.now(UTC)
    assert (row.device_model, row.device_address) == ("simulated", CUFF_ADDRESS)
    assert_is_the_measurement(row.payload)

    with bridge.api(role="doctor", site=SITE) as api:
        response = api.get("/api/v1/readings", site=SITE, kind="blood_pressure")
        too_large = api.get("/api/v1/readings", limit=501)
    with bridge.api(role="doctor", site="another-site") as api:
        elsewhere = api.get("/api/v1/readings")
    assert response.status == 200
    assert response.body["total"] == 1
    [served] = response.body["items"]
    assert served["message_id"] == str(row.message_id)
    assert served["device_time"] == "2026-11-25T17:30:05"
    assert_is_the_measurement(served["payload"])
    assert too_large.status == 422
    assert elsewhere.body["items"] == []


@pytest.mark.asyncio
@pytest.mark.parametrize("restart_agent", [False, True], ids=["same-agent", "agent-restarted"])
async def test_with_the_broker_down_first_the_reading_waits_in_the_outbox_then_arrives_once(
    tmp_path: Path, broker: MosquittoProcess, bridge_factory, restart_agent: bool
) -> None:
    settings = agent_settings(tmp_path, broker)  # the broker is not started yet
    async with running_agent(settings, cuff_backends()) as agent:
        await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 1, what="the reading saved offline")
        assert not agent.uplink.connected
        if restart_agent:
            pass  # leaving the block stops this agent; a new one starts below
        else:
            broker.start()
            with broker_arrivals(broker, KioskTopics(SITE, KIOSK)) as arrivals:
                bridge = bridge_factory(broker)
                sent_again = await arrivals_after_confirmation(agent, bridge, arrivals)
    if restart_agent:
        restarted = agent_settings(tmp_path, broker, with_cuff=False)
        async with running_agent(restarted) as agent:
            broker.start()
            with broker_arrivals(broker, KioskTopics(SITE, KIOSK)) as arrivals:
                bridge = bridge_factory(broker)
                sent_again = await arrivals_after_confirmation(agent, bridge, arrivals)
    assert sent_again == [], f"{len(sent_again)} arrivals after the bridge confirmed: {sorted(set(sent_again))}"
    assert bridge.reading_count() == 1
    assert_is_the_measurement(bridge.readings()[0].payload)


@pytest.mark.asyncio
async def test_a_broker_killed_after_its_puback_loses_the_message_and_the_kiosk_sends_it_again(
    tmp_path: Path, bridge_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.uplink")
    # Mosquitto's own default: a snapshot every 30 minutes, so none happens before the kill.
    broker = MosquittoProcess.on_free_port(
        tmp_path / "broker", autosave_interval_s=MOSQUITTO_DEFAULT_AUTOSAVE_INTERVAL_S
    )
    broker.start()
    try:
        # The bridge's persistent session exists, but no bridge is connected: the broker PUBACKs
        # the reading and queues it in memory only.
        first_bridge = bridge_factory(broker)
        await wait_until(lambda: first_bridge.ingest.connected, what="the bridge's subscription")
        first_bridge.ingest.stop()
        async with running_agent(agent_settings(tmp_path, broker), cuff_backends()) as agent:
            await wait_until(lambda: agent.outbox.counts()[RecordState.PUBLISHED] == 1, what="the broker's PUBACK")
            broker.kill()
            broker.start()
            with broker_arrivals(broker, KioskTopics(SITE, KIOSK)) as arrivals:
                bridge = bridge_factory(broker)
                sent_again = await arrivals_after_confirmation(agent, bridge, arrivals, timeout=20)
    finally:
        broker.stop()
    assert any("will send again" in r.getMessage() for r in caplog.records), "the kiosk never re-sent"
    # Sent twice before the confirmation (that is the point), never after it.
    assert sent_again == [], f"{len(sent_again)} arrivals after the bridge confirmed: {sorted(set(sent_again))}"
    assert bridge.reading_count() == 1
    assert_is_the_measurement(bridge.readings()[0].payload)


@pytest.mark.asyncio
async def test_malformed_messages_are_refused_with_a_reason_and_do_not_stop_the_bridge(
    running_broker: MosquittoProcess, bridge_factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cloud_bridge.ingest")
    bridge = bridge_factory(running_broker)
    await wait_until(lambda: bridge.ingest.connected, what="the bridge's subscription")
    topics = KioskTopics(SITE, KIOSK)
    valid = Envelope(
        message_id=uuid.uuid4(),
        seq=7,
        kiosk_time=datetime.now(UTC),
        payload={"unit": "mmHg", "systolic": 135.0, "diastolic": 85.0, "mean_arterial_pressure": 101.7},
    )
    breaking_contract = valid.model_dump(mode="json") | {"seq": -3}
    publisher = make_client("rogue-publisher", broker_settings(running_broker))
    publisher.connect(running_broker.host, running_broker.port)
    publisher.loop_start()
    try:
        for body in (b"{this is not json", json.dumps(breaking_contract).encode(), encode(valid)):
            info = publisher.publish(topics.reading(ReadingKind.BLOOD_PRESSURE), body, qos=1)
            info.wait_for_publish(5)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS
        await wait_until(lambda: bridge.reading_count() == 1, what="the valid reading")
        await wait_until(lambda: len(bridge.dead_letters()) == 2, what="two dead letters")
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    assert bridge.readings()[0].message_id == valid.message_id
    reasons = sorted(d.reason for d in bridge.dead_letters())
    assert any("Invalid JSON" in r for r in reasons)
    assert any(r.startswith("seq:") for r in reasons)
    assert [d.raw for d in bridge.dead_letters() if "Invalid JSON" in d.reason] == [b"{this is not json"]
    refusals = [r.getMessage() for r in caplog.records if "refused a message" in r.getMessage()]
    assert len(refusals) == 2
