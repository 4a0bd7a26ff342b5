"""A bridge worker whose session is taken over, or that keeps being disconnected, says so: in
its log, in the alerts technicians see, and in its metrics (issue 16).

On the shipped broker only the holder of a worker's own credentials can take its session (the
client id is the username); the test is that holder: a second worker started with the same
account, as a copied configuration or stolen credentials would. The two take the session from
each other at every reconnect."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from cloud_bridge.alert_rules import (
    BRIDGE_SITE,
    DISCONNECTS_ALERTING,
    SESSION_TAKEN_OVER,
    AlertKind,
    DisconnectWatch,
    Severity,
)
from cloud_bridge.alerts import Alert
from runtime.mqtt import BrokerSettings
from tests.shipped_broker import shipped_broker
from tests.support import Bridge, wait_for

BRIDGE_PASSWORD = "bridge " + "w" * 30


def test_a_second_process_with_the_bridges_account_raises_an_alert_technicians_see(
    tmp_path: Path, bridge_factory: Any
) -> None:
    broker = shipped_broker(tmp_path)
    broker.add_bridge("bridge-1", BRIDGE_PASSWORD)
    broker.process.start()
    try:
        settings = BrokerSettings(host=broker.process.host, port=broker.process.port, username="bridge-1",
                                  password=BRIDGE_PASSWORD, reconnect_min_s=1, reconnect_max_s=1)  # type: ignore[arg-type]
        first: Bridge = bridge_factory(broker.process, broker_settings=settings)
        wait_for(lambda: first.ingest.connected, what="the worker connected")
        bridge_factory(broker.process, broker_settings=settings)  # the same account, elsewhere

        def alert() -> Alert | None:
            with Session(first.engine) as session:
                return session.exec(select(Alert).where(Alert.kind == AlertKind.BRIDGE_DISCONNECTS.value)).first()

        wait_for(lambda: alert() is not None, timeout=30, what="the bridge's disconnects alert")
        raised = alert()
        assert raised is not None
        assert (raised.severity, raised.site, raised.about) == (Severity.CRITICAL.value, BRIDGE_SITE, "bridge-1")
        assert "bridge worker bridge-1: disconnected from the broker" in raised.title
        assert raised.data["disconnects_in_window"] >= DISCONNECTS_ALERTING
        counted = sum(
            sample.value for metric in first.ingest.metrics.registry.collect()
            for sample in metric.samples if sample.name == "doorstep_bridge_broker_disconnects_total")
        assert counted >= 1
        with first.api() as api:  # what a technician's dashboard reads
            listed = api.get("/api/v1/alerts", kind=AlertKind.BRIDGE_DISCONNECTS.value)
            assert listed.status == 200 and [item["about"] for item in listed.body["items"]] == ["bridge-1"]
    finally:
        broker.process.stop()


def test_session_taken_over_alerts_at_once_and_other_disconnects_only_when_they_keep_coming() -> None:
    """MQTT 5's 0x8E "Session taken over" (EMQX sends it; Mosquitto 2.0.11 only closes the
    connection) is an alert at the first; an ordinary disconnect (a broker restart) is not, until
    DISCONNECTS_ALERTING come within the window."""
    at = datetime(2026, 12, 7, tzinfo=UTC)
    watch = DisconnectWatch("bridge-1")
    taken = watch.disconnected(SESSION_TAKEN_OVER, "Session taken over", 0.0, at)
    assert taken is not None and taken.kind is AlertKind.BRIDGE_SESSION_TAKEN_OVER and taken.about == "bridge-1"
    calm = DisconnectWatch("bridge-1")
    assert calm.disconnected(0x80, "Unspecified error", 0.0, at) is None
    assert calm.disconnected(0x80, "Unspecified error", 100.0, at) is None  # the first left the window
    assert calm.disconnected(0x80, "Unspecified error", 110.0, at) is None
    third = calm.disconnected(0x80, "Unspecified error", 120.0, at)
    assert third is not None and third.kind is AlertKind.BRIDGE_DISCONNECTS and third.data["disconnects_in_window"] == 3
