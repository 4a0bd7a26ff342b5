"""A kiosk's clock far ahead of the bridge's freezes nothing (issue 16, finding 7): the fleet's
state is ordered by kiosk time (a re-sent old report must not overwrite a newer one), and a
report dated 8999 used to win every comparison after it, so the kiosk's row and its devices
ignored every later report. Now a time more than a day (fleet.KIOSK_TIME_AHEAD_ALLOWED) past the
bridge's clock is news when it arrives and old news after, and the kiosk's row says when one came
(`clock_ahead_at`), which technicians see in the API. Through the real pipeline (commit_gulp) and the real API, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import create_app
from cloud_bridge.decode import Inbound
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import DEVELOPMENT_SECRET
from contract.payloads import LaundryMachineEvent
from contract.telemetry import DeviceTelemetry
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure, telemetry
from tests.support import ServedApp, api_token

NOW = datetime.now(UTC).replace(microsecond=0)
YEAR_8999 = datetime(8999, 6, 1, tzinfo=UTC)
CUFF = "A4:C1:38:12:34:56"


def commit(engine: Engine, items: list[Inbound], received_at: datetime) -> None:
    commit_gulp(engine, items, rules=AlertRules(), notify=False, received_at=received_at)


def reports(kiosk: WireKiosk, at: datetime, *, battery: int, backlog: int, machine: Literal["idle", "running", "fault"],
            error: int | None) -> list[Inbound]:
    """Telemetry (the kiosk's outbox, the cuff's battery), a washer's state, a reading: every
    field group of the fleet, all dated `at` by the kiosk."""
    cuff = DeviceTelemetry(address=CUFF, model="omron", battery_percent=battery, last_reading_at=at)
    return [
        kiosk.telemetry(telemetry(backlog=backlog, devices=[cuff]), at=at),
        kiosk.machine(LaundryMachineEvent(unit=3, state=machine, link="online", error_code=error), at=at),
        kiosk.reading(blood_pressure(120, 80), at=at),
    ]


def kiosk_detail(engine: Engine, kiosk: WireKiosk) -> dict[str, Any]:
    with ServedApp(create_app(engine), token=api_token(engine, DEVELOPMENT_SECRET, "technician")) as api:
        answer = api.get(f"/api/v1/kiosks/{kiosk.site}/{kiosk.kiosk}")
    assert answer.status == 200, answer
    body: dict[str, Any] = answer.body
    return body


def parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_report_dated_8999_is_flagged_and_a_later_sane_one_still_updates_the_fleet(bridge_engine: Engine) -> None:
    kiosk = WireKiosk()
    commit(bridge_engine, reports(kiosk, NOW, battery=50, backlog=1, machine="idle", error=None), NOW)
    assert kiosk_detail(bridge_engine, kiosk).get("clock_ahead_at") is None

    # The kiosk's clock jumps to 8999: news, so it shows.
    commit(bridge_engine, reports(kiosk, YEAR_8999, battery=10, backlog=7, machine="fault", error=7),
           NOW + timedelta(minutes=1))
    assert kiosk_detail(bridge_engine, kiosk)["backlog_records"] == 7
    # Then it comes right again, a little behind the bridge's: its next reports are dated before
    # the bad one arrived, and still replace it.
    later = NOW + timedelta(seconds=50)
    commit(bridge_engine, reports(kiosk, later, battery=90, backlog=0, machine="running", error=None),
           NOW + timedelta(minutes=2))

    detail = kiosk_detail(bridge_engine, kiosk)
    assert parse(detail["telemetry_at"]) == later and detail["backlog_records"] == 0
    devices = {d["address"]: d for d in detail["devices"]}
    assert devices[CUFF]["battery_percent"] == 90
    assert parse(devices[CUFF]["last_reading_at"]) == later
    assert (devices["modbus-unit-3"]["state"], devices["modbus-unit-3"]["error_code"]) == ("running", None)
    assert parse(detail["clock_ahead_at"]) == NOW + timedelta(minutes=1)  # flagged, with when it came

    # Time ordering still holds for sane times: a re-sent report from before is not newer.
    commit(bridge_engine, reports(kiosk, NOW + timedelta(seconds=40), battery=11, backlog=9, machine="fault", error=7),
           NOW + timedelta(minutes=3))
    detail = kiosk_detail(bridge_engine, kiosk)
    assert detail["backlog_records"] == 0 and {d["address"]: d for d in detail["devices"]}[CUFF]["battery_percent"] == 90


def test_a_kiosk_a_little_ahead_is_not_flagged(bridge_engine: Engine) -> None:
    """Within the allowed skew (an hour is well within it) a kiosk's time is its own."""
    kiosk = WireKiosk()
    ahead = NOW + timedelta(hours=1)
    commit(bridge_engine, reports(kiosk, ahead, battery=50, backlog=1, machine="idle", error=None), NOW)
    detail = kiosk_detail(bridge_engine, kiosk)
    assert detail["clock_ahead_at"] is None and parse(detail["telemetry_at"]) == ahead


def test_a_kiosk_whose_clock_stays_far_ahead_still_updates_its_row(bridge_engine: Engine) -> None:
    """Each report dated past the horizon is news when it comes: a kiosk stuck in 8999 is
    flagged, not frozen — also when its reports count backwards there."""
    kiosk = WireKiosk()
    for minutes, battery in ((1, 40), (2, 30), (3, 20)):
        commit(bridge_engine, reports(kiosk, YEAR_8999 - timedelta(minutes=minutes), battery=battery, backlog=minutes,
                                      machine="running", error=None), NOW + timedelta(minutes=minutes))
    detail = kiosk_detail(bridge_engine, kiosk)
    assert detail["backlog_records"] == 3 and {d["address"]: d for d in detail["devices"]}[CUFF]["battery_percent"] == 20
    assert parse(detail["clock_ahead_at"]) == NOW + timedelta(minutes=3)
