"""A kiosk's retained alarms at the bridge: each condition listed opens a critical alert, each
left out resolves it (docs/protocol.md, Alarms)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertKind, AlertRules
from cloud_bridge.alerts import Alert, AlertState
from cloud_bridge.decode import Inbound
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.ingest import ALARMS_SUBSCRIPTION
from broker_admin import access
from contract.alarms import Alarm, AlarmCondition, Alarms
from contract.codec import encode
from contract.topics import KioskTopics
from runtime.mqtt import BrokerSettings, make_client
from tests.shipped_broker import shipped_broker
from tests.support import Bridge, wait_for

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KIOSK = KioskTopics("test-site", "kiosk-01")
BRIDGE_PASSWORD = "bridge " + "w" * 30
KIOSK_PASSWORD = "kiosk " + "k" * 30


def alarms(*conditions: AlarmCondition, at: datetime = NOW) -> Inbound:
    body = Alarms(at=at, alarms=[Alarm(condition=c, since=at, message=f"{c} here") for c in conditions])
    return Inbound(KIOSK.alarms, encode(body))


def commit(*items: Inbound, engine: Engine, at: datetime = NOW) -> None:
    commit_gulp(engine, list(items), rules=AlertRules(), notify=False, received_at=at)


def states(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {a.kind: a.state for a in session.exec(select(Alert))}


def test_each_listed_condition_opens_a_critical_alert_and_a_later_set_without_it_resolves_it(bridge_engine: Engine) -> None:
    commit(alarms(AlarmCondition.OUTBOX_FULL, AlarmCondition.DISK_FULL, AlarmCondition.CANNOT_SAVE), engine=bridge_engine)
    with Session(bridge_engine) as session:
        opened = list(session.exec(select(Alert)))
    assert {a.kind for a in opened} == {AlertKind.OUTBOX_FULL, AlertKind.DISK_FULL, AlertKind.CANNOT_SAVE}
    assert {a.severity for a in opened} == {"critical"}
    assert all(a.data["detail"].endswith("here") and a.title for a in opened)
    # The same set again (a bridge reconnecting gets the retained message once more): no new alert.
    commit(alarms(AlarmCondition.OUTBOX_FULL, AlarmCondition.DISK_FULL, AlarmCondition.CANNOT_SAVE), engine=bridge_engine)
    assert len(states(bridge_engine)) == 3
    commit(alarms(AlarmCondition.OUTBOX_FULL, at=NOW + timedelta(minutes=1)), engine=bridge_engine)
    assert states(bridge_engine) == {"outbox_full": AlertState.OPEN, "disk_full": AlertState.RESOLVED,
                                     "cannot_save": AlertState.RESOLVED}
    commit(alarms(at=NOW + timedelta(minutes=2)), engine=bridge_engine)
    assert set(states(bridge_engine).values()) == {AlertState.RESOLVED}


def test_a_retained_alarms_message_being_cleared_is_nothing(bridge_engine: Engine) -> None:
    commit(Inbound(KIOSK.alarms, b""), engine=bridge_engine)
    assert states(bridge_engine) == {}


def test_a_bridge_from_before_alarms_is_never_sent_them() -> None:
    """Its subscriptions, as cloud_bridge/ingest.py made them before alarms: none matches the topic."""
    group = "bridge"
    before = [f"$share/{group}/doorstep/v1/+/+/{channel}" for channel in
              ("batch", "command_results/+", "events/+", "readings/+", "telemetry")] + ["doorstep/v1/+/+/status"]
    assert not [f for f in before if mqtt.topic_matches_sub(f.removeprefix(f"$share/{group}/"), KIOSK.alarms)]


def test_a_worker_on_a_broker_whose_rules_predate_alarms_runs_without_them_until_update_rules(
    tmp_path: Path, bridge_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = shipped_broker(tmp_path)
    broker.add_bridge("bridge-1", BRIDGE_PASSWORD)
    kiosk = BrokerSettings(host=broker.process.host, port=broker.process.port, password=KIOSK_PASSWORD,  # type: ignore[arg-type]
                           username=broker.add_kiosk(KIOSK.site, KIOSK.kiosk, KIOSK_PASSWORD))
    broker.process.start()
    try:
        with broker.admin() as admin:  # the bridge's role as it was before alarms
            admin.one({"command": "removeRoleACL", "rolename": "bridge-1", "acltype": "subscribeLiteral",
                       "topic": ALARMS_SUBSCRIPTION})
        settings = BrokerSettings(host=broker.process.host, port=broker.process.port, username="bridge-1",
                                  password=BRIDGE_PASSWORD)  # type: ignore[arg-type]
        old_rules: Bridge = bridge_factory(broker.process, broker_settings=settings)
        wait_for(lambda: old_rules.ingest.connected, what="the worker subscribed to everything else")
        assert any("doorstep broker update-rules" in r.getMessage() for r in caplog.records)
        old_rules.ingest.stop()
        with broker.admin() as admin:
            assert "bridge-1" in access.update_rules(admin)
        publish_retained(kiosk, KIOSK.alarms, encode(Alarms(at=NOW, alarms=[
            Alarm(condition=AlarmCondition.DISK_FULL, since=NOW, message="0 bytes free")])))
        updated: Bridge = bridge_factory(broker.process, broker_settings=settings)
        wait_for(lambda: states(updated.engine) == {"disk_full": AlertState.OPEN}, what="the retained alarm's alert")
    finally:
        broker.process.stop()


def publish_retained(settings: BrokerSettings, topic: str, body: bytes) -> None:
    """As the kiosk's agent does, with its account."""
    client = make_client("test-kiosk-alarms", settings)
    acked: list[int] = []
    client.on_publish = lambda _c, _u, _mid, reason, _p: acked.append(reason.value)
    client.connect(settings.host, settings.port)
    client.loop_start()
    try:
        client.publish(topic, body, qos=1, retain=True)
        wait_for(lambda: bool(acked), what="the PUBACK")
        assert acked[0] < 0x80, f"the broker refused the kiosk's alarms: {acked}"
    finally:
        client.disconnect()
        client.loop_stop()
