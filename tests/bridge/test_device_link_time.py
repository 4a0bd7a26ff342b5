"""A device whose telemetry says only "still the same" is not rewritten (its link time moves
on by LINK_AT_STEP at most), yet its alerts follow every report, a late report cannot undo a
newer one that was left out, and a worker trusts what it remembers of a kiosk's devices only
while no other gulp touched that kiosk. Through the bridge's own commit, on SQLite and
PostgreSQL; two DeviceRows stand for two workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.alerts import Alert
from cloud_bridge.decode import Inbound
from cloud_bridge.fleet import LINK_AT_STEP, Device, DeviceRows
from cloud_bridge.gulp import commit_gulp
from contract.telemetry import DeviceError, DeviceTelemetry
from tests.bridge.wire_kiosk import WireKiosk, telemetry

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RULES = AlertRules()
CUFF = "A4:C1:38:12:34:56"
KIOSK = WireKiosk()


def report(at: datetime, *, battery: int = 80, link: str | None = "online") -> Inbound:
    cuff = DeviceTelemetry(address=CUFF, model="omron", battery_percent=battery, link=link)  # type: ignore[arg-type]
    return KIOSK.telemetry(telemetry(devices=[cuff]), at=at)


def commit(engine: Engine, item: Inbound, worker: DeviceRows | None, at: datetime) -> None:
    commit_gulp(engine, [item], rules=RULES, notify=False, received_at=at, devices=worker)


def cuff(engine: Engine) -> Device:
    with Session(engine) as session:
        device = session.get(Device, (KIOSK.site, KIOSK.kiosk, CUFF))
        assert device is not None
        return device


def alerts(engine: Engine) -> list[tuple[str, str, int]]:
    with Session(engine) as session:
        return [(a.kind, a.state, a.occurrences) for a in session.exec(select(Alert).order_by(col(Alert.id)))]


def test_an_unchanged_device_keeps_its_row_until_the_step_but_its_alerts_follow_every_report(bridge_engine: Engine) -> None:
    worker = DeviceRows()
    commit(bridge_engine, report(NOW, battery=10), worker, NOW)
    assert cuff(bridge_engine).link_at == NOW
    later = NOW + timedelta(minutes=1)
    commit(bridge_engine, report(later, battery=10), worker, later)
    assert cuff(bridge_engine).link_at == NOW  # not rewritten
    assert alerts(bridge_engine) == [("low_battery", "open", 2)]  # yet the report counted
    past_step = NOW + LINK_AT_STEP
    commit(bridge_engine, report(past_step, battery=10), worker, past_step)
    assert cuff(bridge_engine).link_at == past_step
    changed = past_step + timedelta(seconds=30)
    commit(bridge_engine, report(changed, battery=90), worker, changed)
    assert (cuff(bridge_engine).link_at, cuff(bridge_engine).battery_percent) == (changed, 90)
    assert alerts(bridge_engine) == [("low_battery", "resolved", 3)]


def test_a_late_report_does_not_undo_a_newer_one_that_was_left_out(bridge_engine: Engine) -> None:
    worker = DeviceRows()
    commit(bridge_engine, report(NOW), worker, NOW)
    newest = NOW + timedelta(minutes=2)
    commit(bridge_engine, report(newest), worker, newest)  # the same: left out, the row says NOW
    late = NOW + timedelta(minutes=1)
    commit(bridge_engine, report(late, link="offline"), worker, newest + timedelta(seconds=5))
    assert (cuff(bridge_engine).link, cuff(bridge_engine).link_at) == ("online", NOW)
    assert alerts(bridge_engine) == []


def test_a_worker_forgets_a_kiosk_another_worker_wrote_since(bridge_engine: Engine) -> None:
    one, two = DeviceRows(), DeviceRows()
    commit(bridge_engine, report(NOW, battery=80), one, NOW)
    at = NOW + timedelta(minutes=1)
    commit(bridge_engine, report(at, battery=40), two, at)
    at_again = NOW + timedelta(minutes=2)
    # What worker one remembers (80) is what this report says, but the row holds 40 now.
    commit(bridge_engine, report(at_again, battery=80), one, at_again)
    assert (cuff(bridge_engine).battery_percent, cuff(bridge_engine).link_at) == (80, at_again)


def test_a_device_failing_unchanged_is_alerted_once_out_of_reach_long_enough_though_its_row_is_not_rewritten(
    bridge_engine: Engine,
) -> None:
    rules = AlertRules(device_unreachable_s=60)
    worker = DeviceRows()
    since = NOW - timedelta(seconds=30)
    failing = DeviceTelemetry(address=CUFF, model="omron", last_error=DeviceError(code="ble_not_found", at=since, message="not found"),
                              failing_since=since, error_counts={"ble_not_found": 3})
    for at in (NOW, NOW + timedelta(seconds=20), NOW + timedelta(seconds=40)):
        commit_gulp(bridge_engine, [KIOSK.telemetry(telemetry(devices=[failing]), at=at)], rules=rules, notify=False,
                    received_at=at, devices=worker)
    assert cuff(bridge_engine).link_at == NOW  # the same report each time: not rewritten
    assert [(kind, state) for kind, state, _ in alerts(bridge_engine)] == [("device_unreachable", "open")]
