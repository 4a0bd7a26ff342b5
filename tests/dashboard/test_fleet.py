"""The fleet screen in a real browser: a killed agent shows offline, alerts are handled."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import KIOSK, SITE, AgentProcess, Dashboard


def kiosk_row(page: Page, site: str = SITE, kiosk: str = KIOSK) -> Any:
    return page.locator(f'[data-testid=kiosks] tr[data-kiosk="{site}/{kiosk}"]')


def test_the_fleet_shows_a_kiosk_go_offline_when_its_agent_is_killed(
    dashboard: Dashboard, page: Page, start_agent: Any
) -> None:
    agent: AgentProcess = start_agent()
    dashboard.log_in(page, "tech")
    row = kiosk_row(page)
    expect(row).to_have_attribute("data-status", "online", timeout=30_000)
    expect(row).to_contain_text("在线")
    agent.kill()
    # The broker publishes the agent's Last Will; the page learns it at its next refresh.
    expect(row).to_have_attribute("data-status", "offline")
    expect(row).to_contain_text("离线")
    alert = page.locator("[data-testid=alerts] tr[data-kind=kiosk_offline]")
    expect(alert).to_contain_text(f"{SITE}/{KIOSK}")
    # A technician takes it from the page, with a note for the next person.
    alert.locator("[data-action=acknowledge]").click()
    page.fill("[data-testid=alerts] input[name=note]", "on my way")
    page.click("[data-testid=alerts] [data-action=confirm]")
    expect(alert).to_contain_text("tech 已认领")
    [stored] = dashboard.api.get("/api/v1/alerts", state="unresolved").body["items"]
    assert (stored["state"], stored["acknowledged_by"], stored["note"]) == ("acknowledged", "tech", "on my way")
