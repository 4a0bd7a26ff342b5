"""The fleet screen in a real browser: a killed agent shows offline, alerts are handled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import Page, expect

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.jobs import BridgeJobs
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


def test_while_the_bridge_cannot_hear_the_broker_kiosks_are_unknown_and_no_one_is_called_offline(
    dashboard: Dashboard, page: Page, start_agent: Any, running_broker: Any
) -> None:
    """SIGKILL Mosquitto: the page said "online" for 4 minutes and raised "no message for 4 min"
    beside it. Now a banner says the bridge lost the broker, every kiosk is "unknown", and the
    heartbeat watchdog does not take the bridge's own deafness for the kiosks' silence."""
    start_agent()
    dashboard.log_in(page, "tech")
    row = kiosk_row(page)
    expect(row).to_have_attribute("data-status", "online", timeout=30_000)
    banner = page.get_by_test_id("bridge-link")
    expect(banner).to_be_empty()
    running_broker.kill()
    expect(banner).to_contain_text("云端服务与消息服务器的连接已断开", timeout=15_000)
    expect(row).to_have_attribute("data-status", "unknown")
    expect(row).not_to_contain_text("在线")
    listed = dashboard.api.get("/api/v1/kiosks").body["items"]
    assert [k["status"] for k in listed] == ["unknown"]
    assert dashboard.api.get("/api/v1/kiosks", status="online").body["items"] == []
    # However long the outage, the watchdog raises nothing: this worker heard no one.
    ten_minutes_on = BridgeJobs(dashboard.bridge.engine, rules=AlertRules(), publisher=None, notify=False,
                                link=dashboard.bridge.ingest.link,
                                clock=lambda: datetime.now(UTC) + timedelta(minutes=10))
    ten_minutes_on.watch_heartbeats()
    assert dashboard.api.get("/api/v1/alerts", kind="kiosk_offline").body["items"] == []
    running_broker.start()
    expect(banner).to_be_empty(timeout=30_000)
    expect(row).to_have_attribute("data-status", "online", timeout=30_000)
