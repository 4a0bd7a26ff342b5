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


def test_an_alert_about_a_bridge_worker_shows_on_the_fleet_in_chinese(
    dashboard: Dashboard, page: Page, bridge_factory: Any, running_broker: Any
) -> None:
    """A second process holding the worker's identity (the same client id) takes its session at
    every reconnect: the worker's alert is about no kiosk, and it must still reach the fleet
    screen (issue 16), named in words rather than as a link to a kiosk "_bridge/"."""
    worker_id = "bridge-test-1"  # the dashboard's worker (tests/conftest.py, bridge_factory)
    bridge_factory(running_broker, client_id=worker_id)
    dashboard.log_in(page, "tech")
    alert = page.locator("[data-testid=alerts] tr[data-kind=bridge_disconnects]")
    expect(alert).to_contain_text("云端连接反复断开", timeout=40_000)
    expect(alert).to_contain_text(f"云端服务 {worker_id}")
    expect(alert.locator("a")).to_have_count(0)
