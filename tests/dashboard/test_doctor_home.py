"""Issue 21 in the doctor's browser: a doctor lands on their residents, the dangerous one first;
finds a resident by typing a card number (sent in a POST body, then gone from the page and the
address); reads the home averages beside the chart; and opens the printed report in one click."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from contract.payloads import BloodPressurePayload
from contract.pseudonym import Pseudonyms
from tests.bridge.wire_kiosk import WireKiosk
from tests.dashboard.conftest import KIOSK, RESIDENT_KEY, SITE, Dashboard, WirePublisher
from tests.support import wait_for

CARD = "310115195001011234"
HER = Pseudonyms(RESIDENT_KEY.encode()).of_card(CARD)
CALM = "c1" * 32


def bp(systolic: float, diastolic: float, subject: str, suspect: list[str] | None = None) -> BloodPressurePayload:
    return BloodPressurePayload(unit="mmHg", systolic=systolic, diastolic=diastolic, mean_arterial_pressure=None,
                                pulse_rate=70, subject=subject, suspect=suspect or [])


def test_the_doctor_finds_a_resident_by_card_reads_the_averages_and_prints(
    dashboard: Dashboard, wire: WirePublisher, page: Page
) -> None:
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    now = datetime.now(UTC)
    readings = [kiosk.reading(bp(150, 95, HER), at=now - timedelta(days=days)) for days in (1, 2, 3)]
    readings.append(kiosk.reading(bp(186, 104, HER), at=now - timedelta(days=2, hours=1)))
    readings.append(kiosk.reading(bp(250, 60, HER, ["pulse_pressure_too_narrow"]), at=now - timedelta(hours=5)))
    readings.append(kiosk.reading(bp(118, 76, CALM), at=now - timedelta(hours=1)))
    wire.send(kiosk, *readings)
    wait_for(lambda: dashboard.bridge.reading_count() == len(readings), what="the readings stored")

    dashboard.log_in(page, "doctor")
    rows = page.locator("tr[data-subject]")
    expect(rows).to_have_count(2)
    # The dangerous resident first though the calm one measured last.
    expect(rows.nth(0)).to_have_attribute("data-subject", HER)
    expect(rows.nth(0)).to_contain_text("危险")
    expect(rows.nth(1)).to_have_attribute("data-subject", CALM)

    page.fill("#find-resident", "0000000000")
    page.press("#find-resident", "Enter")
    expect(page.locator("#find-resident-error")).to_have_text("本站点没有这位居民的读数")
    page.fill("#find-resident", CARD)
    page.press("#find-resident", "Enter")
    expect(page.get_by_test_id("pseudonym")).to_have_text(HER)
    assert CARD not in page.url and page.input_value("#find-resident") == ""

    averages = page.get_by_test_id("averages")
    # (150 + 150 + 150 + 186) / 4 = 159; (95 x 3 + 104) / 4 = 97.25: high. The 250/60 is left out.
    expect(averages).to_have_attribute("data-category", "high")
    expect(averages).to_contain_text("159/97")
    expect(averages).to_contain_text("1 次不可靠读数未计入")
    expect(page.locator("[data-testid=readings] tr[data-reading]").first).to_contain_text("读数不可靠")

    report = page.get_by_test_id("report")
    href = report.get_attribute("href")
    assert href is not None and href.endswith(f"/api/v1/residents/{SITE}/{HER}/report.pdf")
    answer = page.request.get(href)  # with the page's own session cookie
    assert answer.status == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.body().startswith(b"%PDF-")
