"""What a bridge worker subscribes to: every channel kiosks send up, once, and nothing the
bridge sends down (its own acks came back through one `$share/{group}/doorstep/v1/#`, about
0.3 a message, each read and PUBACKed for nothing). A session an older bridge left subscribed
to `#` is unsubscribed from it. Against a real Mosquitto."""

from __future__ import annotations

import queue
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func
from sqlmodel import Session, select

from cloud_bridge.ingest import Ingest, legacy_subscription, subscriptions
from cloud_bridge.store import Reading, migrate
from broker_admin.mosquitto import MosquittoProcess
from contract.topics import UPSTREAM_CHANNELS, Channel, KioskTopics, bridge_status_topic, channel_filter
from runtime.db import create_durable_engine
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure
from tests.support import broker_settings, wait_for

GROUP = "bridge"


def test_each_upstream_topic_matches_one_subscription_and_no_downstream_topic_any() -> None:
    filters = [f.removeprefix(f"$share/{GROUP}/") for f in subscriptions(GROUP)]
    root = KioskTopics("site-a", "kiosk-1").root
    for channel in Channel:
        topic = f"{root}/{channel}" + ("/x-1" if channel_filter(channel).endswith("/+") else "")
        matching = [f for f in filters if mqtt.topic_matches_sub(f, topic)]
        upstream = channel in UPSTREAM_CHANNELS
        assert len(matching) == (1 if upstream else 0), (topic, matching)
    assert not [f for f in filters if mqtt.topic_matches_sub(f, bridge_status_topic("worker-1"))]
    # Statuses and alarms come on the worker's own subscriptions (a shared one is sent no retained message).
    assert [f for f in subscriptions(GROUP) if not f.startswith("$share/")] == [
        channel_filter(Channel.STATUS), channel_filter(Channel.ALARMS)]


def session(broker: MosquittoProcess, client_id: str) -> tuple[mqtt.Client, queue.SimpleQueue[str], queue.SimpleQueue[bool]]:
    """A bare client resuming (or starting) the persistent session `client_id`, and queues of
    the topics it receives and of its SUBACKs."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    received: queue.SimpleQueue[str] = queue.SimpleQueue()
    subscribed: queue.SimpleQueue[bool] = queue.SimpleQueue()
    client.on_message = lambda _c, _u, message: received.put(message.topic)
    client.on_subscribe = lambda _c, _u, _mid, _reasons, _p: subscribed.put(True)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=properties)
    client.loop_start()
    return client, received, subscribed


def published(broker: MosquittoProcess, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher", protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    for topic, body in messages:
        client.publish(topic, body, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_a_worker_hears_none_of_what_it_sends_down_even_on_a_session_an_older_bridge_left(
    tmp_path: Path, running_broker: MosquittoProcess
) -> None:
    engine = create_durable_engine(f"sqlite:///{tmp_path / 'bridge.sqlite3'}")
    migrate(engine)
    # An older bridge's session: one shared subscription to everything, acks included.
    old, _, subacks = session(running_broker, "bridge-1")
    old.subscribe(legacy_subscription(GROUP), qos=1)
    subacks.get(timeout=5)
    old.disconnect()
    old.loop_stop()

    kiosk = WireKiosk()
    ingest = Ingest(engine, broker_settings(running_broker), client_id="bridge-1", share_group=GROUP)
    ingest.start()
    try:
        wait_for(lambda: ingest.connected, what="the worker subscribed")
        reading = kiosk.reading(blood_pressure(120, 80))
        published(running_broker, [(reading.topic, reading.body)])

        def stored() -> int:
            with Session(engine) as db:
                return int(db.exec(select(func.count()).select_from(Reading)).one())

        wait_for(lambda: stored() == 1, what="the reading stored")
    finally:
        ingest.stop()
    # Away, its session queues what matches its subscriptions: the reading, not the ack,
    # the command or a worker's status, which `#` would have brought.
    later = kiosk.reading(blood_pressure(130, 85))
    published(running_broker, [(kiosk.topics.acks, b'{"message_ids": []}'), (kiosk.topics.command("r-1"), b"{}"),
                               (bridge_status_topic("worker-2"), b'{"state": "online"}'), (later.topic, later.body)])
    resumed, received, _ = session(running_broker, "bridge-1")
    try:
        topics = [received.get(timeout=5)]
        while True:
            try:
                topics.append(received.get(timeout=1.0))
            except queue.Empty:
                break
    finally:
        resumed.disconnect()
        resumed.loop_stop()
    assert topics == [later.topic]
    engine.dispose()
