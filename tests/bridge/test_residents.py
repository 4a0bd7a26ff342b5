"""Residents for their family doctor (issue 21), through a real server on SQLite and PostgreSQL:
found by card or QR code only within the doctor's site, the card number kept nowhere (not in any
table, the database file, the logs or the access log), the home page's order, the averages, and
the printed report read back with poppler."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine, MetaData, select
from sqlmodel import Session

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import DEVELOPMENT_SECRET, BridgeSettings
from contract.payloads import BloodPressurePayload
from contract.pseudonym import Pseudonyms
from contract.resident_code import ResidentCode
from tests.bridge.wire_kiosk import WireKiosk
from tests.support import ServedApp, api_token

HOME, AWAY = "test-site", "other-site"
KEYS = {HOME: "h" * 40, AWAY: "a" * 40}
# A resident identity card number (GB 11643 shape) as a person types it, and as the kiosk keeps
# it after normalising: neither may be found anywhere in the bridge afterwards.
CARD_TYPED = "110105 19491231 002x"
CARD = "11010519491231002X"
AWAY_ONLY_CARD = "A1234567890"
NOW = datetime.now(UTC)


def pseudonym(site: str, card: str) -> str:
    return Pseudonyms(KEYS[site].encode()).of_card(card)


def bp(systolic: float, diastolic: float, subject: str, *, suspect: list[str] | None = None,
       status: list[str] | None = None) -> BloodPressurePayload:
    return BloodPressurePayload(unit="mmHg", systolic=systolic, diastolic=diastolic, mean_arterial_pressure=None,
                                pulse_rate=72, subject=subject, suspect=suspect or [], status=status or [])


def store(engine: Engine, site: str, *readings: tuple[BloodPressurePayload, datetime]) -> None:
    kiosk = WireKiosk(site=site)
    commit_gulp(engine, [kiosk.reading(payload, at=at) for payload, at in readings], rules=AlertRules(),
                notify=False, received_at=NOW)


@dataclass
class Served:
    engine: Engine
    api: ServedApp

    def as_(self, role: str, site: str | None = HOME) -> ServedApp:
        self.api.token = api_token(self.engine, DEVELOPMENT_SECRET, role, site)
        return self.api


@pytest.fixture
def served(bridge_engine: Engine) -> Iterator[Served]:
    context = BridgeContext(bridge_engine, secret_key=DEVELOPMENT_SECRET, clock=lambda: NOW,
                            resident_keys={site: SecretStr(key) for site, key in KEYS.items()})
    with ServedApp(create_app(bridge_engine, context), access_log=True) as api:
        yield Served(bridge_engine, api)


def everything_stored(engine: Engine) -> str:
    """Every row of every table, as text."""
    tables = MetaData()
    tables.reflect(engine)
    with Session(engine) as session:
        return "\n".join(repr(row) for table in tables.sorted_tables for row in session.execute(select(table)))


def test_a_card_finds_the_resident_of_the_doctors_site_only_and_is_kept_nowhere(
    served: Served, bridge_database: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store(served.engine, HOME, (bp(135, 85, pseudonym(HOME, CARD)), NOW - timedelta(days=1)))
    # The same card at the other site is another pseudonym (another key), and a resident only there.
    store(served.engine, AWAY, (bp(120, 80, pseudonym(AWAY, CARD)), NOW - timedelta(days=1)),
          (bp(120, 80, pseudonym(AWAY, AWAY_ONLY_CARD)), NOW - timedelta(days=1)))
    home = {"site": HOME, "pseudonym": pseudonym(HOME, CARD)}

    doctor = served.as_("doctor")
    assert doctor.post("/api/v1/residents/lookup", {"card_or_code": CARD_TYPED}).body == home
    code = ResidentCode(HOME, pseudonym(HOME, CARD)).text()
    assert doctor.post("/api/v1/residents/lookup", {"card_or_code": f" {code}\n"}).body == home
    # Another site's resident, by card or by their QR code, is not found, as an unknown card is not:
    # the answer does not tell that they exist elsewhere.
    unknown = doctor.post("/api/v1/residents/lookup", {"card_or_code": "999999999"})
    away_card = doctor.post("/api/v1/residents/lookup", {"card_or_code": AWAY_ONLY_CARD})
    away_code = doctor.post("/api/v1/residents/lookup",
                            {"card_or_code": ResidentCode(AWAY, pseudonym(AWAY, AWAY_ONLY_CARD)).text()})
    assert unknown.status == away_card.status == away_code.status == 404
    assert unknown.body == away_card.body == away_code.body
    # Text that is neither is refused, and the refusal does not repeat it.
    refused = doctor.post("/api/v1/residents/lookup", {"card_or_code": "12-34 ab!"})
    assert refused.status == 422 and "ab!" not in str(refused.body)
    # Station staff find their site's residents too; the other site's doctor finds theirs.
    assert served.as_("station_staff").post("/api/v1/residents/lookup", {"card_or_code": CARD}).body == home
    assert served.as_("doctor", AWAY).post("/api/v1/residents/lookup", {"card_or_code": CARD}).body == {
        "site": AWAY, "pseudonym": pseudonym(AWAY, CARD)}

    cards = [CARD, CARD_TYPED, AWAY_ONLY_CARD, "999999999", "11010519491231002"]
    stored = everything_stored(served.engine)
    assert "resident_lookup" in stored  # the audit has the look-ups, by pseudonym
    assert [card for card in cards if card in stored or card.lower() in stored] == []
    if bridge_database.startswith("sqlite:///"):
        database = Path(bridge_database.removeprefix("sqlite:///"))
        raw = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
        assert [card for card in cards if card.encode() in raw or card.encode("utf-16-le") in raw] == []
    assert "POST /api/v1/residents/lookup" in caplog.text  # the access log was read
    assert [card for card in cards if card in caplog.text] == []


def reading_times(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


def test_the_doctors_residents_come_dangerous_then_rising_then_recent(served: Served) -> None:
    dangerous, rising, recent, older = (f"{n:064x}" for n in (1, 2, 3, 4))
    store(served.engine, HOME,
          (bp(120, 78, older), reading_times(5)),
          (bp(125, 78, rising), reading_times(10)),  # the week before: high-normal
          (bp(150, 92, rising), reading_times(3)),  # this week: high
          (bp(118, 76, recent), reading_times(1)),
          (bp(190, 100, dangerous), reading_times(2)))
    store(served.engine, AWAY, (bp(190, 100, f"{5:064x}"), reading_times(1)))

    doctor = served.as_("doctor")
    listed = doctor.get("/api/v1/residents").body
    assert [r["pseudonym"] for r in listed["items"]] == [dangerous, rising, recent, older]
    assert [(r["dangerous"], r["rising"]) for r in listed["items"]] == [(True, False), (False, True), (False, False),
                                                                        (False, False)]
    one = doctor.get(f"/api/v1/residents/{HOME}/{rising}").body
    assert one["average"]["overall"] == {"systolic_mmhg": 150, "diastolic_mmhg": 92, "readings": 1}
    assert (one["average"]["category"], one["before"]["category"]) == ("high", "high_normal")
    assert doctor.get(f"/api/v1/residents/{AWAY}/{5:064x}").status == 403
    assert doctor.get(f"/api/v1/residents/{HOME}/{6:064x}").status == 404
    assert served.as_("technician", None).get("/api/v1/residents").status == 403


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout


def test_the_printed_report(served: Served, tmp_path: Path) -> None:
    subject = pseudonym(HOME, CARD)
    readings: list[tuple[BloodPressurePayload, datetime]] = [
        (bp(150 + day % 3, 95, subject), reading_times(day)) for day in range(1, 7)]
    readings.append((bp(250, 60, subject, suspect=["pulse_pressure_too_narrow"]), reading_times(1.5)))
    readings.append((bp(148, 94, subject, status=["body_movement"]), reading_times(2.5)))
    store(served.engine, HOME, *readings)
    answer = served.as_("doctor").request("GET", f"/api/v1/residents/{HOME}/{subject}/report.pdf")
    assert answer.status == 200
    pdf: Any = answer.body
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf, tmp_path)
    for expected in ("家庭血压报告", subject[:32], subject[32:], "平均 Average", "分级 Category", "高血压 high",
                     "中国高血压防治指南（2018年修订版）", "读数不可靠 unreliable: 收缩压与舒张压相差太小",
                     "测量时身体移动", "不可靠读数未计入 Unreliable readings left out: 1", "250/60"):
        assert expected in text, expected
    # The card number is not on it (only the pseudonym and the QR code of site and pseudonym).
    assert CARD not in text
    info = subprocess.run(["pdfinfo", str(tmp_path / "report.pdf")], check=True, capture_output=True, text=True).stdout
    assert re.search(r"^Pages: +1$", info, re.MULTILINE) and "(A4)" in info
    # It renders (poppler draws every page without an error), at 150 dpi: 1241 x 1754 pixels.
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(tmp_path / "report.pdf"), str(tmp_path / "page")], check=True)
    [page] = tmp_path.glob("page*.png")
    header = page.read_bytes()[16:24]
    assert (int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")) == (1241, 1754)


def test_resident_keys_are_a_sites_secret_or_refused() -> None:
    settings = BridgeSettings(environment="development", resident_keys={HOME: SecretStr(KEYS[HOME])})
    assert settings.resident_keys[HOME].get_secret_value() == KEYS[HOME]
    assert KEYS[HOME] not in repr(settings)  # a SecretStr: never in a log of the settings
    with pytest.raises(ValidationError, match="at least 32 characters"):
        BridgeSettings(environment="development", resident_keys={HOME: SecretStr("short")})
    with pytest.raises(ValidationError, match="not a site id"):
        BridgeSettings(environment="development", resident_keys={"Not A Site": SecretStr(KEYS[HOME])})
    with pytest.raises(ValidationError, match="not a time zone"):
        BridgeSettings(environment="development", time_zone="Mars/Olympus")
