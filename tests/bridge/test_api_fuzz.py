"""Schemathesis against the bridge's OpenAPI document (tests/api_fuzz.py), on SQLite and
PostgreSQL, as a technician (every site, commands) and as a doctor (one site's readings): no
request, however malformed, gets a 5xx or an error that is not the API's JSON. The database
holds a kiosk's readings, an open alert, telemetry, a laundry fault and a command first, so
that requests find rows as well as nothing."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from cloud_bridge import commands
from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import DEVELOPMENT_SECRET
from contract.commands import CommandName
from contract.payloads import LaundryMachineEvent
from contract.status import KioskState
from contract.telemetry import DeviceTelemetry
from tests.api_fuzz import fuzz_api
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure, telemetry
from tests.support import api_token

NOW = datetime.now(UTC)
# Per operation and mode (valid, invalid data). 25 keeps the four runs near a minute on two
# cores; DOORSTEP_FUZZ_EXAMPLES=1000 for a long run by hand.
EXAMPLES = int(os.environ.get("DOORSTEP_FUZZ_EXAMPLES", "25"))


def seed(engine: Engine) -> None:
    kiosk = WireKiosk()
    commit_gulp(engine, [
        kiosk.reading(blood_pressure(128, 82)),
        kiosk.reading(blood_pressure(190, 125, subject="5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592")),
        kiosk.telemetry(telemetry(devices=[DeviceTelemetry(address="A4:C1:38:12:34:56", model="omron", battery_percent=10)])),
        kiosk.machine(LaundryMachineEvent(unit=3, state="fault", link="online", error_code=7)),
        kiosk.status(KioskState.ONLINE, at=NOW),
    ], rules=AlertRules(), notify=False, received_at=NOW)
    with Session(engine) as session:
        commands.create(session, site=kiosk.site, kiosk=kiosk.kiosk, command=CommandName.PING, args={},
                        issued_by="seed", now=NOW, ttl=timedelta(minutes=5))
        session.commit()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("role", "site"), [("technician", None), ("doctor", "test-site")])
def test_no_request_gets_a_server_error(bridge_engine: Engine, role: str, site: str | None, tmp_path: Path) -> None:
    seed(bridge_engine)
    # Uploaded bundles land in the test's own directory, not the working directory.
    app = create_app(bridge_engine, BridgeContext(bridge_engine, releases_dir=tmp_path / "releases"))
    # A fresh token for each request: logout spends the one it is sent with.
    report = fuzz_api(app, lambda: api_token(bridge_engine, DEVELOPMENT_SECRET, role, site), examples_per_operation=EXAMPLES)
    print(f"\nschemathesis as {role}: {report.summary()}")
    assert report.examples >= EXAMPLES * len(report.operations) and len(report.operations) >= 20
    assert any(200 <= code < 300 for code in report.statuses)  # it got in, not only refused
