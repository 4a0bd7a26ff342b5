"""The buffer in sight (issue 19): a kiosk's undelivered records per class, the oldest one's age
and its outbox's runway, stored on its row from telemetry; a runway under a day opens an alert
saying what to do, resolved when it recovers. An older kiosk's telemetry, without the runway
fields, still stores.

Batches go through the bridge's own commit (SQLite and PostgreSQL); the end-to-end test runs a
real agent, a real Mosquitto whose ACL refuses the kiosk's events (so they pile up undelivered
while its telemetry still flows) and a real bridge worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from broker_admin.mosquitto import MosquittoProcess
from cloud_bridge.alert_rules import AlertKind, AlertRules, Clear, Raise, runway_signal
from cloud_bridge.alerts import Alert
from cloud_bridge.decode import Inbound
from cloud_bridge.fleet import Kiosk, KioskBase
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.store import DeadLetter, Telemetry
from contract.topics import EventType
from edge_agent.settings import OutboxSettings
from tests.bridge.wire_kiosk import WireKiosk, telemetry
from tests.support import KIOSK, SITE, Bridge, agent_settings, running_agent, wait_until
from tests.test_broker_security import KIOSK_ACL_DENYING_READINGS, settings_for

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RULES = AlertRules()


def commit(engine: Engine, *items: Inbound, at: datetime = NOW) -> None:
    commit_gulp(engine, list(items), rules=RULES, notify=False, received_at=at)


def alerts(engine: Engine) -> list[Alert]:
    """The runway's alerts (a backlog this old opens backlog_growing too: not this test's)."""
    with Session(engine) as session:
        return list(session.exec(select(Alert).where(Alert.kind == AlertKind.OUTBOX_RUNWAY_SHORT).order_by(col(Alert.id))))


def kiosk_row(engine: Engine) -> Kiosk:
    with Session(engine) as session:
        row = session.get(Kiosk, (SITE, KIOSK))
        assert row is not None
        return row


# --- The rule, pure -------------------------------------------------------------------------


def row(**columns: Any) -> KioskBase:
    return KioskBase(site=SITE, kiosk=KIOSK, first_seen_at=NOW, last_seen_at=NOW, **columns)


def test_a_runway_under_the_line_is_raised_and_at_or_over_it_or_unbounded_cleared() -> None:
    raised = runway_signal(row(runway_h=23.5, outbox_growth_bytes_per_h=1e6), NOW, RULES)
    assert isinstance(raised, Raise) and raised.kind is AlertKind.OUTBOX_RUNWAY_SHORT
    assert raised.title == "kiosk's outbox fills its disk budget in 23.5 h at its current rate: get its records delivered"
    assert "23.5 小时" in raised.title_zh and "outbox.budget_mb" in raised.data["action"]["en"]
    assert "网络" in raised.data["action"]["zh"]
    for hours in (24.0, None):  # the default line is a day; None: not growing, or an older kiosk
        assert isinstance(runway_signal(row(runway_h=hours), NOW, RULES), Clear)


def test_the_line_is_the_bridge_s_setting() -> None:
    assert isinstance(runway_signal(row(runway_h=30.0), NOW, AlertRules(runway_h=48)), Raise)
    assert isinstance(runway_signal(row(runway_h=30.0), NOW, RULES), Clear)


# --- Through the bridge's batch commit ---------------------------------------------------------


def test_the_runway_and_each_class_are_stored_and_a_short_runway_alerts_until_it_recovers(bridge_engine: Engine) -> None:
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    filling = telemetry(backlog=40, oldest_age_s=5400.0).model_copy(
        update={"outbox_growth_bytes_per_h": 12_000_000.0, "runway_h": 6.5})
    commit(bridge_engine, kiosk.telemetry(filling, at=NOW))
    stored = kiosk_row(bridge_engine)
    assert stored.outbox_depth == {"health": {"records": 40, "oldest_age_s": 5400.0},
                                   "event": {"records": 0, "oldest_age_s": None},
                                   "telemetry": {"records": 0, "oldest_age_s": None}}
    assert (stored.outbox_growth_bytes_per_h, stored.runway_h) == (12_000_000.0, 6.5)
    [alert] = alerts(bridge_engine)
    assert (alert.kind, alert.state, alert.severity) == ("outbox_runway_short", "open", "warning")
    assert alert.data["runway_h"] == 6.5 and "bridge is running" in alert.data["action"]["en"]

    drained = telemetry(backlog=0).model_copy(update={"outbox_growth_bytes_per_h": -40_000_000.0, "runway_h": None})
    later = NOW + timedelta(minutes=1)
    commit(bridge_engine, kiosk.telemetry(drained, at=later), at=later)
    [alert] = alerts(bridge_engine)
    assert (alert.state, alert.resolved_by) == ("resolved", "system")
    assert kiosk_row(bridge_engine).runway_h is None


def test_telemetry_of_a_kiosk_from_before_the_runway_is_stored_and_reads_as_not_measured(bridge_engine: Engine) -> None:
    # Today's main's shape, as docs/protocol.md showed it before issue 19: no growth, no runway.
    old_payload = {
        "uptime_s": 86400.5,
        "outbox": {"health": {"records": 0, "oldest_age_s": None}, "event": {"records": 2, "oldest_age_s": 4.1},
                   "telemetry": {"records": 1, "oldest_age_s": 0.0}},
        "outbox_bytes": 2310, "outbox_budget_bytes": 268435456, "health_over_budget": False,
        "refused_records": 0, "disk_free_bytes": 11811160064, "cpu_temperature_c": 51.2, "clock_synchronised": True,
        "speech_ok": None, "speech_error": None, "devices": [],
    }
    envelope = {"schema_version": 1, "message_id": str(uuid.uuid4()), "seq": 1,
                "kiosk_time": NOW.isoformat(), "payload": old_payload}
    commit(bridge_engine, Inbound(WireKiosk(site=SITE, kiosk=KIOSK).topics.telemetry, json.dumps(envelope).encode()))
    with Session(bridge_engine) as session:
        assert list(session.exec(select(DeadLetter))) == []
        assert len(list(session.exec(select(Telemetry)))) == 1
    stored = kiosk_row(bridge_engine)
    assert (stored.outbox_growth_bytes_per_h, stored.runway_h) == (None, None)
    assert stored.outbox_depth is not None and stored.outbox_depth["event"] == {"records": 2, "oldest_age_s": 4.1}
    assert alerts(bridge_engine) == []


# --- End to end: agent, Mosquitto, bridge ----------------------------------------------------------


@pytest.mark.asyncio
async def test_a_kiosk_whose_events_cannot_be_delivered_shows_its_backlog_and_runway_and_alerts(
    tmp_path: Path, bridge_factory: Any
) -> None:
    """The broker's ACL refuses the kiosk's events (MQTT 5 "not authorized": held, undelivered)
    and lets its telemetry through. Events saved fast into a 1 MB budget: the fleet API shows
    them per class with their oldest age and a runway of minutes, and the alert opens; once
    nothing more is saved the undelivered bytes stop growing, and the alert is resolved."""
    passwords, acl = tmp_path / "passwords", tmp_path / "acl"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk-07", "kiosk pass"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "bridge", "bridge pass"], check=True)
    acl.write_text(KIOSK_ACL_DENYING_READINGS)  # status and telemetry only
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-acl", password_file=passwords, acl_file=acl)
    broker.start()
    try:
        bridge: Bridge = bridge_factory(broker, broker_settings=settings_for(broker, username="bridge", password="bridge pass"))
        settings = agent_settings(tmp_path, broker, with_cuff=False).model_copy(update={
            "broker": settings_for(broker, username="kiosk-07", password="kiosk pass"),
            "telemetry_every_s": 0.3,
            # A window of 3 s: a growth is measured from 0.3 s on.
            "outbox": OutboxSettings(budget_mb=1, runway_window_s=3),
        })
        async with running_agent(settings) as agent:
            assert agent.outbox is not None
            outbox, event = agent.outbox, agent.topics.event(EventType.LAUNDRY_MACHINE)
            producing = True

            async def produce() -> None:
                while producing:
                    await asyncio.to_thread(lambda: [outbox.save(event, {"unit": 1, "state": "idle", "link": "online"})
                                                     for _ in range(10)])
                    await asyncio.sleep(0.1)

            producer = asyncio.create_task(produce())
            with bridge.api() as api:

                def the_kiosk() -> dict[str, Any]:
                    items: list[dict[str, Any]] = api.get("/api/v1/kiosks", site=SITE).body["items"]
                    return next((k for k in items if k["kiosk"] == KIOSK), {})

                def runway_alerts() -> list[dict[str, Any]]:
                    items: list[dict[str, Any]] = api.get("/api/v1/alerts", kind="outbox_runway_short").body["items"]
                    return items

                await wait_until(lambda: (the_kiosk().get("runway_h") or 24) < 24, timeout=30,
                                 what="a runway under a day in the fleet API")
                shown = the_kiosk()
                await wait_until(lambda: [a["state"] for a in runway_alerts()] == ["open"], timeout=30,
                                 what="the runway alert")
                depth = shown["outbox_depth"]
                assert isinstance(depth["event"]["records"], int) and depth["event"]["records"] > 0
                assert depth["event"]["oldest_age_s"] > 0
                assert depth["health"] == {"records": 0, "oldest_age_s": None}
                assert shown["outbox_growth_bytes_per_h"] > 0 and shown["runway_h"] < 1  # minutes, at this rate
                assert shown["backlog_records"] == depth["event"]["records"]

                producing = False
                await producer
                # A window later the undelivered bytes have not grown: the runway is unbounded.
                await wait_until(lambda: [a["state"] for a in runway_alerts()] == ["resolved"], timeout=30,
                                 what="the alert resolved once the outbox stops growing")
                assert the_kiosk()["runway_h"] is None
                assert the_kiosk()["outbox_depth"]["event"]["records"] > 0  # still undelivered, not growing
    finally:
        broker.stop()
