"""The dashboard's main screens over a district of kiosks (tests/dashboard/fleet_data.py), in a
real browser, with the screenshots the README shows.

    DOORSTEP_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest tests/dashboard/test_screens.py -k sqlite

refreshes docs/screenshots/dashboard-*.png; without it they go to the test's temporary folder.
"""

from __future__ import annotations

import re

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import Session, func, select

from cloud_bridge.fleet import Kiosk
from tests.dashboard.conftest import SITE, Dashboard, WirePublisher
from tests.dashboard.fleet_data import (
    LAUNDRY_KIOSK,
    OFFLINE_KIOSK,
    RESIDENT,
    SITES,
    Fleet,
    answer_commands,
    publish_fleet,
    publish_readings,
)
from tests.support import wait_for

KIOSK_COUNT = sum(SITES.values())


@dataclass
class District:
    fleet: Fleet
    resident_readings: int


@pytest.fixture
def district(dashboard: Dashboard, wire: WirePublisher) -> District:
    now = datetime.now(UTC)
    fleet = publish_fleet(wire, now)
    resident_readings = publish_readings(wire, fleet, now)
    answer_commands(wire.client, fleet)
    bridge = dashboard.bridge

    def kiosks() -> int:
        with Session(bridge.engine) as session:
            return session.exec(select(func.count()).select_from(Kiosk)).one()

    wait_for(lambda: kiosks() == KIOSK_COUNT, timeout=30, what="every kiosk of the district stored")
    # 10 health kiosks x 3 anonymous readings, the resident's, and 2 others x 3.
    wait_for(lambda: bridge.reading_count() == 10 * 3 + resident_readings + 6, timeout=30, what="the readings stored")
    return District(fleet, resident_readings)


def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """A screenshot of the whole page; also into $DOORSTEP_SCREENSHOTS when it is set."""
    target = tmp_path / f"dashboard-{name}.png"
    page.screenshot(path=str(target), full_page=True)
    if directory := os.environ.get("DOORSTEP_SCREENSHOTS"):
        Path(directory).mkdir(parents=True, exist_ok=True)
        shutil.copy(target, Path(directory) / target.name)


def test_the_fleet_of_a_district_with_open_alerts_first_and_its_filters(
    dashboard: Dashboard, district: District, page: Page, tmp_path: Path
) -> None:
    dashboard.log_in(page, "tech")
    rows = page.locator("[data-testid=kiosks] tbody tr")
    expect(rows).to_have_count(KIOSK_COUNT)
    expect(page.get_by_test_id("summary")).to_contain_text(f"{KIOSK_COUNT} 终端")
    # Kiosks with open alerts first (the API's order), every one of them before any without.
    alerts_column = [int(n) for n in page.locator("[data-testid=kiosks] tbody tr td:last-child").all_inner_texts()]
    assert alerts_column == sorted(alerts_column, reverse=True) and alerts_column[0] > 0
    offline = page.locator(f'[data-testid=kiosks] tr[data-kiosk="{SITE}/{OFFLINE_KIOSK}"]')
    expect(offline).to_have_attribute("data-status", "offline")
    # Devices: the faulted washer with its code in Chinese, the low battery, firmware.
    washer = page.locator(f'[data-testid=devices] tr[data-device="{SITE}/{LAUNDRY_KIOSK}/modbus-unit-3"]')
    expect(washer).to_contain_text("E21 进水超时")
    expect(washer).to_contain_text("故障")
    low = page.locator(f'[data-testid=devices] tr[data-device="{SITE}/kiosk-05/C0:26:DA:01:02:03"]')
    expect(low).to_contain_text("15%")
    expect(low).to_contain_text("2.0.4")
    # A cuff that lost its pairing: its error in Chinese, and the alert saying what to do.
    unpaired = page.locator(f'[data-testid=devices] tr[data-device="{SITE}/kiosk-05/A4:C1:38:12:34:56"]')
    expect(unpaired).to_contain_text("配对丢失")
    expect(unpaired).to_contain_text("配对丢失 ×3")
    bond_alert = page.locator("[data-testid=alerts] tbody tr[data-kind=device_bond_lost]")
    expect(bond_alert).to_contain_text("重新配对")
    alerts = page.locator("[data-testid=alerts] tbody tr[data-alert]")
    kinds = set(alerts.evaluate_all("rows => rows.map(r => r.dataset.kind)"))
    assert {"kiosk_offline", "device_fault", "device_offline", "low_battery", "backlog_growing",
            "device_bond_lost"} <= kinds
    assert "dangerous_reading" not in kinds  # a technician sees no resident's health
    # Every alert's line in Chinese on the Chinese page (issue 18, item 10: they were English).
    titles = alerts.locator("td.title-cell").all_inner_texts()
    english = [title for title in titles if re.search(r"\b(kiosk|device|battery|backlog|offline|answer)\b", title)]
    assert titles and english == [], english
    expect(page.locator("[data-testid=alerts] tr[data-kind=kiosk_offline]")).to_contain_text("终端离线")
    shoot(page, tmp_path, "fleet")

    page.select_option("#filter-site", "xuhui-tianlin")
    expect(rows).to_have_count(SITES["xuhui-tianlin"])
    page.select_option("#filter-site", "")
    page.select_option("#filter-status", "offline")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-kiosk", f"{SITE}/{OFFLINE_KIOSK}")
    page.select_option("#filter-status", "")
    page.check("#filter-problems")
    expect(rows).to_have_count(len({(SITE, k) for k in (LAUNDRY_KIOSK, OFFLINE_KIOSK, "kiosk-04", "kiosk-05")})
                               + 1)  # and the kiosk whose status is unknown
    page.uncheck("#filter-problems")

    page.click("#language")
    expect(page.get_by_test_id("summary")).to_contain_text(f"{KIOSK_COUNT} kiosks")
    expect(offline).to_contain_text("offline")
    expect(washer).to_contain_text("E21 water inlet timeout")
    expect(unpaired).to_contain_text("pairing lost ×3")
    expect(bond_alert).to_contain_text("pair it again at the kiosk (hold the clock at the top of its screen")
    shoot(page, tmp_path, "fleet-en")


def test_a_kiosk_page_with_devices_events_telemetry_and_commands(
    dashboard: Dashboard, district: District, page: Page, tmp_path: Path
) -> None:
    dashboard.log_in(page, "tech", f"#/kiosk/{SITE}/{LAUNDRY_KIOSK}")
    expect(page.locator("[data-testid=kiosk-devices] tbody tr")).to_have_count(8)
    expect(page.locator("[data-testid=events] tbody tr[data-event=laundry_machine]")).to_have_count(8)
    expect(page.get_by_test_id("events")).to_contain_text("3 号机：故障 · E21 进水超时")
    # A day of telemetry, one report each half hour, and the last one now.
    backlog = page.locator('[data-testid=charts] figure[data-chart="未送达记录（条）"]')
    expect(backlog).to_have_attribute("data-points", str(2 * 48))  # health and event records
    expect(backlog.locator("circle.point")).to_have_count(2 * 48)
    page.click("[data-command=ping]")
    pong = page.locator("[data-testid=command-history] tr[data-command-status=succeeded]", has_text="pong")
    expect(pong).to_be_visible()
    page.select_option("#command-unit", "3")
    page.click("[data-command=laundry_clear_fault]")
    cleared = page.locator("[data-testid=command-history] tr[data-command-status=succeeded]", has_text="fault cleared")
    expect(cleared).to_contain_text("3 号机")
    shoot(page, tmp_path, "kiosk")


def test_the_doctors_chart_of_a_resident_with_the_guideline_bands(
    dashboard: Dashboard, district: District, page: Page, tmp_path: Path
) -> None:
    dashboard.log_in(page, "doctor")
    # A doctor lands on the residents (issue 21); the fleet, one click away, has the dangerous
    # reading's alert, and it leads to the resident's chart.
    expect(page.locator(f'tr[data-subject="{RESIDENT}"]')).to_be_visible()
    page.click("[data-nav=fleet]")
    danger = page.locator("[data-testid=alerts] tr[data-kind=dangerous_reading]")
    expect(danger).to_contain_text("186/104")
    expect(danger.locator(f'a[href="#/residents/{RESIDENT}"]')).to_have_count(1)
    page.click("[data-nav=residents]")
    recent = page.locator(f'tr[data-subject="{RESIDENT}"]')
    expect(recent).to_contain_text(str(district.resident_readings))
    recent.locator("a").click()
    expect(page.get_by_test_id("pseudonym")).to_have_text(RESIDENT)
    systolic = page.locator('[data-testid=bp-charts] figure[data-chart="收缩压（mmHg）"]')
    expect(systolic).to_have_attribute("data-points", str(district.resident_readings))
    for band in ("normal", "high_normal", "high", "very_high"):
        expect(systolic.locator(f"rect[data-band={band}]")).to_have_count(1)
    expect(page.locator('tr[data-category="very_high"]')).to_contain_text("186")
    expect(page.get_by_test_id("guideline")).to_contain_text("中国高血压防治指南")
    # Very high, and the alert, from the guideline's grade 3 (180/110), as on the kiosk (issue 17).
    expect(page.get_by_test_id("guideline")).to_contain_text("180/110")
    shoot(page, tmp_path, "resident")
