"""deploy/mosquitto/doorstep.conf, the broker configuration the bridge needs, started for real:
its queue holds far more than Mosquitto's default 1000 messages for a bridge that is away, so a
long bridge outage costs no re-sends, and it refuses clients it does not know."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from cloud_bridge.ingest import subscriptions
from cloud_bridge.settings import BridgeSettings
from cloud_bridge.store import Reading
from broker_admin.access import kiosk_username
from broker_admin.check import check_broker
from broker_admin.mosquitto import MosquittoProcess
from contract.topics import QOS_RELIABLE
from runtime.mqtt import BrokerSettings, make_client
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure
from tests.shipped_broker import SHIPPED, setting, settings
from tests.shipped_broker import shipped_broker as start_shipped
from tests.support import KIOSK, SITE, Bridge, settled, wait_for

BRIDGE_USER, BRIDGE_PASSWORD = "bridge", "bridge secret"
KIOSK_PASSWORD = "kiosk secret"
NOT_AUTHORIZED = 0x87  # MQTT 5.0, 3.9.3: SUBACK
# More than Mosquitto's default max_queued_messages (1000): what a bridge away for a while misses.
AWAY = 2500


def shipped_broker(tmp_path: Path, *, max_queued_messages: int | None = None) -> MosquittoProcess:
    """The shipped file, its ACL as `doorstep broker` writes it: a bridge worker and one kiosk."""
    original = SHIPPED.read_text()
    if max_queued_messages is not None:
        original = re.sub(r"^max_queued_messages .*$", f"max_queued_messages {max_queued_messages}", original, flags=re.MULTILINE)
    broker = start_shipped(tmp_path, original=original)
    broker.add_bridge(BRIDGE_USER, BRIDGE_PASSWORD)
    broker.add_kiosk(SITE, KIOSK, KIOSK_PASSWORD)
    return broker.process


KIOSK_USER = kiosk_username(SITE, KIOSK)


def test_the_shipped_file_says_what_the_bridge_needs() -> None:
    assert int(setting("max_queued_messages")) >= 1_000_000
    assert setting("persistence") == "true"
    assert int(setting("autosave_interval")) <= 60
    assert setting("allow_anonymous") == "false"
    # Accounts and rules from the dynamic-security plugin, which checks SUBSCRIBE (issue 16).
    assert setting("plugin") == "mosquitto_dynamic_security.so"  # found per architecture by the loader
    assert "password_file" not in SHIPPED.read_text() and "\nacl_file" not in SHIPPED.read_text()
    # Every listener binds the client id to the username.
    assert settings("listener") and len(settings("use_username_as_clientid")) == len(settings("listener"))
    assert set(settings("use_username_as_clientid")) == {"true"}
    assert int(setting("max_packet_size")) > 64 * 1024  # above the contract's largest message


def publish_backlog(broker: MosquittoProcess, count: int) -> None:
    """A kiosk's messages while the bridge is away (published once: nothing here re-sends)."""
    kiosk = WireKiosk()
    client = make_client("raw-kiosk", BrokerSettings(host=broker.host, port=broker.port, username=KIOSK_USER,
                                                     password=KIOSK_PASSWORD))  # type: ignore[arg-type]
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = []
    for _ in range(count):
        item = kiosk.reading(blood_pressure(120, 80))
        infos.append(client.publish(item.topic, item.body, qos=QOS_RELIABLE))
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def stored(bridge: Bridge) -> int:
    with Session(bridge.engine) as session:
        return int(session.exec(select(func.count()).select_from(Reading)).one())


@pytest.mark.parametrize("queue_limit", [None, 1000], ids=["shipped", "mosquitto-default"])
def test_a_bridge_away_finds_what_it_missed_in_its_session(tmp_path: Path, bridge_factory: Any, queue_limit: int | None) -> None:
    broker = shipped_broker(tmp_path, max_queued_messages=queue_limit)
    broker.start()
    try:
        settings = BrokerSettings(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1,
                                  username=BRIDGE_USER, password=BRIDGE_PASSWORD)  # type: ignore[arg-type]
        # Its client id is its username (the shipped broker binds them): the same session each time.
        away: Bridge = bridge_factory(broker, broker_settings=settings)
        wait_for(lambda: away.ingest.connected, what="the bridge connected")
        away.ingest.stop()  # gone, its persistent session kept by the broker
        publish_backlog(broker, AWAY)
        back: Bridge = bridge_factory(broker, broker_settings=settings)
        found = settled(lambda: stored(back))
        if queue_limit is None:
            assert found == AWAY
        else:
            # What Mosquitto's default does: the rest was PUBACKed to the kiosk, then dropped.
            print(f"\nMosquitto's default queue limit kept {found} of {AWAY} messages for a bridge that was away")
            assert found <= queue_limit + 100
    finally:
        broker.stop()


def test_unknown_clients_and_wrong_passwords_are_refused(tmp_path: Path) -> None:
    broker = shipped_broker(tmp_path)
    broker.start()
    try:
        stranger = check_broker(BrokerSettings(host=broker.host, port=broker.port), "stranger")
        assert not stranger.ok and "refused" in stranger.detail
        wrong = check_broker(BrokerSettings(host=broker.host, port=broker.port, username=KIOSK_USER,
                                            password="guess"), "kiosk")  # type: ignore[arg-type]
        assert not wrong.ok
        right = check_broker(BrokerSettings(host=broker.host, port=broker.port, username=KIOSK_USER,
                                            password=KIOSK_PASSWORD), "kiosk")  # type: ignore[arg-type]
        assert right.ok
    finally:
        broker.stop()


def test_a_workers_client_id_is_its_broker_username() -> None:
    """The shipped broker makes the client id the username and lets a worker announce only its
    own presence topic: settings that would have it announce another are refused."""
    account = BrokerSettings(username="bridge-2", password="secret")  # type: ignore[arg-type]
    assert BridgeSettings(environment="development", broker=account).worker_id == "bridge-2"
    assert BridgeSettings(environment="development", broker=account, client_id="bridge-2").worker_id == "bridge-2"
    assert BridgeSettings(environment="development").worker_id == "doorstep-bridge-1"  # no account: a laptop
    with pytest.raises(ValidationError, match="client_id 'doorstep-bridge-1' is not broker.username 'bridge-2'"):
        BridgeSettings(environment="development", broker=account, client_id="doorstep-bridge-1")


HOSTILE_SITE, HOSTILE_KIOSK, HOSTILE_PASSWORD = "other-site", "kiosk-9", "hostile secret"
FIRST_DELIVERY = 40


def test_a_hostile_kiosk_neither_starves_nor_displaces_a_bridge_worker(tmp_path: Path, bridge_factory: Any) -> None:
    """Issue 16 with a real worker: a kiosk with its own password opens three connections that
    try the worker's shared subscriptions, and keeps connecting with the worker's client id; the
    worker stores every one of another kiosk's 40 readings, published once (nothing re-sends
    them here), and is never disconnected. Before: 10-11 stored, and six disconnects in 12 s."""
    started = start_shipped(tmp_path)
    started.add_bridge(BRIDGE_USER, BRIDGE_PASSWORD)
    started.add_kiosk(SITE, KIOSK, KIOSK_PASSWORD)
    started.add_kiosk(HOSTILE_SITE, HOSTILE_KIOSK, HOSTILE_PASSWORD)
    broker = started.process
    broker.start()
    hostile: list[Any] = []
    try:
        settings = BrokerSettings(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1,
                                  username=BRIDGE_USER, password=BRIDGE_PASSWORD)  # type: ignore[arg-type]
        worker: Bridge = bridge_factory(broker, broker_settings=settings)
        wait_for(lambda: worker.ingest.connected, what="the worker subscribed")
        as_hostile = BrokerSettings(host=broker.host, port=broker.port, username=kiosk_username(HOSTILE_SITE, HOSTILE_KIOSK),
                                    password=HOSTILE_PASSWORD)  # type: ignore[arg-type]
        refused: list[int] = []
        shared = subscriptions("bridge")
        # One after the other: the broker makes each client id the hostile kiosk's username, so
        # each connection takes the previous one's session (the three connections of the attack
        # are one session now), and the worker's client id is no longer the worker's session.
        for attempt, client_id in enumerate(("hostile-1", "hostile-2", "hostile-3", BRIDGE_USER, "doorstep-bridge-1")):
            client = make_client(client_id, as_hostile)
            client.on_subscribe = lambda _c, _u, _m, reasons, _p: refused.extend(r.value for r in reasons)
            client.connect(broker.host, broker.port, clean_start=False)
            client.loop_start()
            hostile.append(client)
            client.subscribe([(topic, QOS_RELIABLE) for topic in shared])
            wait_for(lambda: len(refused) == (attempt + 1) * len(shared), what="the hostile SUBACK")
        assert set(refused) == {NOT_AUTHORIZED}
        publish_backlog(broker, FIRST_DELIVERY)
        assert settled(lambda: stored(worker)) == FIRST_DELIVERY
        disconnects = [sample.value for metric in worker.ingest.metrics.registry.collect()
                       for sample in metric.samples if sample.name == "doorstep_bridge_broker_disconnects_total"]
        assert sum(disconnects) == 0 and worker.ingest.connected
    finally:
        for client in hostile:
            client.disconnect()
            client.loop_stop()
        broker.stop()
