"""A device's errors as its kiosk reports them: stored on the device's row, and a lost bond
or a device out of reach for long becomes an alert that says what to do, resolved when the
device works again (issue 17). Old kiosks' telemetry, without the error fields, still stores.

Batches go through the bridge's own commit (SQLite and PostgreSQL); the end-to-end test runs
a real agent with a simulated cuff over bleak, a real Mosquitto and a real bridge worker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertKind, AlertRules, Clear, Raise, device_error_signals
from cloud_bridge.alerts import Alert
from cloud_bridge.decode import Inbound
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.fleet import Device, DeviceBase
from cloud_bridge.store import DeadLetter, Telemetry
from broker_admin.mosquitto import MosquittoProcess
from contract.telemetry import DeviceError, DeviceTelemetry
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.simulated import SimulatedCuff, simulated_backend
from tests.bridge.wire_kiosk import WireKiosk, telemetry
from tests.support import CUFF_ADDRESS, KIOSK, SITE, Bridge, agent_settings, running_agent, wait_until

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
READING = BloodPressureMeasurement(unit=BloodPressureUnit.MMHG, systolic=121.0, diastolic=79.0,
                                   mean_arterial_pressure=93.0, timestamp=datetime(2026, 11, 25, 8, 0))
CUFF = "A4:C1:38:12:34:56"
RULES = AlertRules(device_unreachable_s=3600)


def commit(engine: Engine, *items: Inbound, at: datetime = NOW) -> None:
    commit_gulp(engine, list(items), rules=RULES, notify=False, received_at=at)


def alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert).order_by(Alert.id)))


def failing_cuff(code: str, since: datetime, at: datetime, counts: dict[str, int]) -> DeviceTelemetry:
    return DeviceTelemetry(
        address=CUFF, model="omron", last_error=DeviceError(code=code, at=at, message=f"{CUFF}: {code}"),
        failing_since=since, error_counts=counts,
    )


# --- The rule, pure -------------------------------------------------------------------------


def row(**columns: Any) -> DeviceBase:
    return DeviceBase(site=SITE, kiosk=KIOSK, address=CUFF, model="omron", **columns)


def test_a_device_out_of_reach_is_alerted_only_after_the_configured_time_and_only_if_never_reached() -> None:
    since = NOW - timedelta(minutes=59)
    assert device_error_signals(row(failing_since=since, error_counts={"ble_not_found": 40}), NOW, RULES) == []
    later = NOW + timedelta(minutes=2)
    [raised] = device_error_signals(row(failing_since=since, error_counts={"ble_not_found": 40}), later, RULES)
    assert isinstance(raised, Raise) and raised.kind is AlertKind.DEVICE_UNREACHABLE
    assert "power, batteries and distance" in raised.title and "电池" in raised.data["action"]["zh"]
    # Reached, but the measurement dropped: that is not "out of reach".
    assert device_error_signals(row(failing_since=since, error_counts={"ble_not_found": 40, "ble_dropped": 1}),
                                later, RULES) == []


def test_a_device_that_works_clears_both_conditions() -> None:
    signals = device_error_signals(row(failing_since=None, last_error_code="ble_bond_lost"), NOW, RULES)
    assert all(isinstance(s, Clear) for s in signals)
    assert {s.kind for s in signals} == {AlertKind.DEVICE_BOND_LOST, AlertKind.DEVICE_UNREACHABLE}


# --- Through the bridge's batch commit ---------------------------------------------------------


def test_a_cuff_whose_bond_is_lost_opens_an_alert_saying_what_to_do_and_its_recovery_resolves_it(
    bridge_engine: Engine,
) -> None:
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    lost = failing_cuff("ble_bond_lost", NOW - timedelta(minutes=5), NOW, {"ble_bond_lost": 3, "ble_not_found": 12})
    commit(bridge_engine, kiosk.telemetry(telemetry(devices=[lost]), at=NOW))
    [alert] = alerts(bridge_engine)
    assert (alert.kind, alert.about, alert.state, alert.severity) == ("device_bond_lost", CUFF, "open", "warning")
    assert alert.title == f"omron {CUFF} lost its pairing: pair it again at the kiosk"
    assert "重新配对" in alert.data["action"]["zh"] and "pair it again" in alert.data["action"]["en"]
    with Session(bridge_engine) as session:
        device = session.get(Device, (SITE, KIOSK, CUFF))
        assert device is not None
        assert (device.last_error_code, device.error_counts) == ("ble_bond_lost", {"ble_bond_lost": 3, "ble_not_found": 12})
        assert device.last_error_message == f"{CUFF}: ble_bond_lost" and device.last_error_at == NOW

    # Reported again a minute later: the same alert, one more occurrence.
    again = failing_cuff("ble_bond_lost", NOW - timedelta(minutes=5), NOW, {"ble_bond_lost": 4, "ble_not_found": 13})
    commit(bridge_engine, kiosk.telemetry(telemetry(devices=[again]), at=NOW + timedelta(minutes=1)))
    [alert] = alerts(bridge_engine)
    assert alert.occurrences == 2

    paired = DeviceTelemetry(address=CUFF, model="omron", last_seen_at=NOW + timedelta(minutes=2),
                             last_error=lost.last_error)  # the newest failure is kept; none since the success
    commit(bridge_engine, kiosk.telemetry(telemetry(devices=[paired]), at=NOW + timedelta(minutes=2)))
    [alert] = alerts(bridge_engine)
    assert (alert.state, alert.resolved_by) == ("resolved", "system")


def test_a_cuff_not_reached_for_the_configured_time_opens_an_alert_resolved_when_it_is_reached(
    bridge_engine: Engine,
) -> None:
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    since = NOW - timedelta(minutes=30)
    commit(bridge_engine, kiosk.telemetry(telemetry(devices=[failing_cuff("ble_not_found", since, NOW, {"ble_not_found": 90})]),
                                          at=NOW))
    assert alerts(bridge_engine) == []  # half an hour off: a quiet hour at the station
    later = since + timedelta(seconds=RULES.device_unreachable_s)
    commit(bridge_engine, kiosk.telemetry(telemetry(devices=[failing_cuff("ble_aborted", since, later, {"ble_not_found": 170,
                                                                                                      "ble_aborted": 1})]),
                                          at=later), at=later)
    [alert] = alerts(bridge_engine)
    assert (alert.kind, alert.state, alert.title) == (
        "device_unreachable", "open", f"omron {CUFF} not reached for 1 h: check its power, batteries and distance from the kiosk")
    reached = DeviceTelemetry(address=CUFF, model="omron", last_seen_at=later + timedelta(minutes=1))
    commit(bridge_engine, kiosk.telemetry(telemetry(devices=[reached]), at=later + timedelta(minutes=1)),
           at=later + timedelta(minutes=1))
    assert [(a.kind, a.state) for a in alerts(bridge_engine)] == [("device_unreachable", "resolved")]


def test_telemetry_of_a_kiosk_from_before_the_error_fields_is_stored(bridge_engine: Engine) -> None:
    # Today's main's shape, as docs/protocol.md showed it before issue 17: no last_error,
    # failing_since or error_counts. A bridge upgraded first must store it.
    old_payload = {
        "uptime_s": 86400.5,
        "outbox": {"health": {"records": 0, "oldest_age_s": None}, "event": {"records": 2, "oldest_age_s": 4.1},
                   "telemetry": {"records": 1, "oldest_age_s": 0.0}},
        "outbox_bytes": 2310, "outbox_budget_bytes": 268435456, "health_over_budget": False,
        "disk_free_bytes": 11811160064, "cpu_temperature_c": 51.2, "clock_synchronised": True,
        "devices": [{"address": CUFF, "model": "omron", "link": "unknown", "battery_percent": None,
                     "last_reading_at": "2026-11-25T02:05:31Z", "clock_offset_s": 418.0,
                     "last_seen_at": "2026-11-25T02:05:31Z"}],
    }
    envelope = {"schema_version": 1, "message_id": str(uuid.uuid4()), "seq": 1,
                "kiosk_time": NOW.isoformat(), "payload": old_payload}
    commit(bridge_engine, Inbound(WireKiosk(site=SITE, kiosk=KIOSK).topics.telemetry, json.dumps(envelope).encode()))
    with Session(bridge_engine) as session:
        assert list(session.exec(select(DeadLetter))) == []
        assert len(list(session.exec(select(Telemetry)))) == 1
        device = session.get(Device, (SITE, KIOSK, CUFF))
        assert device is not None and device.clock_offset_s == 418.0
        assert (device.last_error_code, device.failing_since, device.error_counts) == (None, None, {})
    assert alerts(bridge_engine) == []


# --- End to end: agent, Mosquitto, bridge ----------------------------------------------------------


@pytest.mark.asyncio
async def test_a_kiosk_cuff_that_loses_its_bond_opens_the_alert_and_pairing_again_resolves_it(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge: Bridge = bridge_factory(running_broker)
    cuff = SimulatedCuff(address=CUFF_ADDRESS, measurements=[READING], inflate_steps=1, step_interval=0.01,
                         disconnect_after=0.05, requires_bonding=True)
    # Paired once, then its batteries were changed: it forgot its keys, BlueZ kept its own.
    cuff.central_bonded = True
    settings = agent_settings(tmp_path, running_broker)
    settings.devices[0] = settings.devices[0].model_copy(
        update={"model": "omron", "reconnect_interval_s": 0.2, "idle_timeout_s": 0.2}  # omron: needs_bonding
    )
    settings = settings.model_copy(update={"telemetry_every_s": 0.5})

    def bond_alerts(api: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = api.get("/api/v1/alerts", kind="device_bond_lost").body["items"]
        return items

    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}):
        with bridge.api() as api:
            await wait_until(lambda: [a["state"] for a in bond_alerts(api)] == ["open"], timeout=30,
                             what="the bond-lost alert")
            [alert] = bond_alerts(api)
            assert alert["about"] == CUFF_ADDRESS and "pair it again" in alert["title"]
            [device] = api.get("/api/v1/devices", kiosk=KIOSK).body["items"]
            assert device["last_error_code"] == "ble_bond_lost" and device["error_counts"]["ble_bond_lost"] >= 1

            cuff.central_bonded = False  # a technician removed the old pairing and paired it again
            await wait_until(lambda: [a["state"] for a in bond_alerts(api)] == ["resolved"], timeout=30,
                             what="the alert resolved by a good session")
