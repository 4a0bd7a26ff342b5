"""A kiosk's page against a real `doorstep agent` process: commands sent from the page reach the
agent through the real broker and its answers show; and what each role is offered there."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from contract.desired import ConfigOutcome, ConfigReport
from contract.payloads import RelayCheckinEvent, RelayCheckoutEvent, StaffCalledEvent
from contract.status import KioskState
from contract.support_bundle import read_manifest
from contract.topics import EventType
from contract.telemetry import DeviceTelemetry
from edge_agent.settings import DeviceSettings
from tests.bridge.wire_kiosk import WireKiosk, telemetry
from tests.dashboard.conftest import KIOSK, SITE, AgentProcess, Dashboard, WirePublisher
from tests.support import CUFF_ADDRESS, wait_for

KIOSK_PAGE = f"#/kiosk/{SITE}/{KIOSK}"


def test_commands_sent_from_the_kiosk_page_reach_a_real_agent_and_show_their_result(
    dashboard: Dashboard, page: Page, start_agent: Any
) -> None:
    # A simulated cuff, so that the kiosk has a device to reconnect; telemetry every 2 s tells
    # the bridge about it.
    cuff = DeviceSettings(address=CUFF_ADDRESS, model="simulated", simulated=True, reconnect_interval_s=3600)
    agent: AgentProcess = start_agent(devices=[cuff], telemetry_every_s=2)
    dashboard.log_in(page, "tech", KIOSK_PAGE)
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "online", timeout=30_000)
    expect(page.locator(f'#command-device option[value="{CUFF_ADDRESS}"]')).to_have_count(1, timeout=30_000)

    page.click("[data-command=ping]")
    history = page.get_by_test_id("command-history")
    ping = history.locator("tr", has_text="连通测试")
    expect(ping).to_have_attribute("data-command-status", "succeeded")
    expect(ping).to_contain_text("pong")
    ping.locator("summary").click()  # what the kiosk answered: its own time
    expect(ping.locator("pre")).to_contain_text("kiosk_time")

    page.select_option("#command-device", CUFF_ADDRESS)
    page.click("[data-command=reconnect_device]")
    reconnect = history.locator("tr", has_text="重连设备")
    expect(reconnect).to_have_attribute("data-command-status", "succeeded")
    expect(reconnect).to_contain_text(f"{CUFF_ADDRESS}: its session restarted")

    # Reloading the configuration restarts the agent: it asks for a second click first.
    reload_button = page.locator("[data-command=reload_config]")
    reload_button.click()
    expect(reload_button).to_contain_text("再点一次确认")
    assert history.locator("tr", has_text="重新加载配置").count() == 0
    # Every command is the technician's in the bridge's audit, and was the agent's to answer.
    sent = dashboard.api.get("/api/v1/commands", site=SITE, kiosk=KIOSK).body["items"]
    assert [(c["command"], c["issued_by"], c["status"]) for c in sent] == [
        ("reconnect_device", "tech", "succeeded"), ("ping", "tech", "succeeded")]
    assert agent.process.poll() is None


def test_a_kiosk_that_is_gone_shows_its_commands_waiting(dashboard: Dashboard, page: Page, start_agent: Any) -> None:
    agent: AgentProcess = start_agent()
    wait_for(lambda: dashboard.api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").body.get("status") == "online", timeout=30,
             what="the agent online")
    agent.kill()
    dashboard.log_in(page, "staff", KIOSK_PAGE)
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "offline")
    expect(page.get_by_test_id("status-reason")).to_contain_text("连接意外中断")
    page.click("[data-command=status]")
    # The broker keeps it for the kiosk's session: delivered, and no answer yet.
    waiting = page.locator("[data-testid=command-history] tr", has_text="立即上报状态")
    expect(waiting).to_have_attribute("data-command-status", "delivered")
    expect(waiting).to_contain_text("staff")


def two_sites(dashboard: Dashboard, wire: WirePublisher) -> None:
    """A kiosk of the people's own site and one of another, both online with a cuff."""
    now = datetime.now(UTC)
    for site in (SITE, "xuhui-tianlin"):
        kiosk = WireKiosk(site=site, kiosk=KIOSK)
        cuff = DeviceTelemetry(address="A4:C1:38:12:34:56", model="omron-hem-7361t", battery_percent=80)
        wire.send(kiosk, kiosk.status(KioskState.ONLINE, now), kiosk.telemetry(telemetry(devices=[cuff]), at=now))
    wait_for(lambda: dashboard.api.get("/api/v1/kiosks").body["total"] == 2, what="both kiosks stored")


def test_read_only_sees_the_fleet_but_no_command_panel_and_no_alert_buttons(
    dashboard: Dashboard, page: Page, wire: WirePublisher
) -> None:
    two_sites(dashboard, wire)
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    wire.send(kiosk, kiosk.status(KioskState.OFFLINE))  # its Last Will: an alert to (not) act on
    dashboard.log_in(page, "viewer")
    expect(page.locator("[data-testid=kiosks] tbody tr")).to_have_count(2)
    expect(page.locator("[data-testid=alerts] tr[data-kind=kiosk_offline]")).to_have_count(1)
    expect(page.locator("[data-testid=alerts] button")).to_have_count(0)
    expect(page.locator("[data-nav=residents]")).to_have_count(0)
    page.click(f'a[href="{KIOSK_PAGE}"]')
    expect(page.get_by_test_id("kiosk-devices")).to_contain_text("omron-hem-7361t")
    expect(page.get_by_test_id("command-history")).to_be_visible()
    expect(page.get_by_test_id("command-panel")).to_have_count(0)
    expect(page.locator("[data-command]")).to_have_count(0)
    # Nor does a read-only person get the residents' screen by typing its address.
    page.goto(dashboard.url + "#/residents")
    expect(page.get_by_test_id("forbidden")).to_be_visible()


def test_each_role_is_offered_what_the_api_allows_it(dashboard: Dashboard, page: Page, wire: WirePublisher) -> None:
    two_sites(dashboard, wire)
    # The family doctor: the readings, never the command panel.
    dashboard.log_in(page, "doctor", KIOSK_PAGE)
    expect(page.get_by_test_id("kiosk-devices")).to_contain_text("omron-hem-7361t")
    expect(page.get_by_test_id("command-panel")).to_have_count(0)
    expect(page.locator("[data-nav=residents]")).to_be_visible()
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    # Station staff: commands at their own site only; another site's kiosk is not theirs to see.
    dashboard.log_in(page, "staff", KIOSK_PAGE)
    expect(page.locator("[data-command=ping]")).to_be_visible()
    page.goto(dashboard.url + f"#/kiosk/xuhui-tianlin/{KIOSK}")
    expect(page.locator("[data-command]")).to_have_count(0)
    expect(page.get_by_test_id("kiosk-refused")).to_contain_text("xuhui-tianlin")
    page.goto(dashboard.url)
    expect(page.locator("[data-testid=kiosks] tbody tr")).to_have_count(1)
    expect(page.locator("#filter-site")).to_have_count(0)  # one site: nothing to filter by
    # The technician: every site, and commands everywhere.
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    dashboard.log_in(page, "tech", f"#/kiosk/xuhui-tianlin/{KIOSK}")
    expect(page.locator("[data-command=ping]")).to_be_visible()
    expect(page.locator("[data-nav=residents]")).to_have_count(0)
    # The technician's filters go with the technician: the next person sees the whole fleet.
    page.goto(dashboard.url)
    page.select_option("#filter-site", "xuhui-tianlin")
    expect(page.locator("[data-testid=kiosks] tbody tr")).to_have_count(1)
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    dashboard.log_in(page, "staff")
    expect(page.locator(f'[data-testid=kiosks] tr[data-kiosk="{SITE}/{KIOSK}"]')).to_have_count(1)


def test_a_kiosk_clock_far_ahead_shows_on_its_page(dashboard: Dashboard, page: Page, wire: WirePublisher) -> None:
    """Issue 16, finding 7: a message dated more than a day ahead is flagged where a
    technician looks (the kiosk's clock fact, in red), and the later sane report still shows."""
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    now = datetime.now(UTC)
    wire.send(kiosk, kiosk.status(KioskState.ONLINE, now), kiosk.telemetry(telemetry(backlog=7), at=datetime(8999, 6, 1, tzinfo=UTC)))
    # Made before the bridge received the one dated 8999: it still replaces it.
    wire.send(kiosk, kiosk.telemetry(telemetry(backlog=0), at=now))
    wait_for(lambda: dashboard.api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").body.get("backlog_records") == 0,
             what="the sane telemetry folded in after the one dated 8999")
    dashboard.log_in(page, "tech", KIOSK_PAGE)
    expect(page.locator(".fact.bad", has_text="时钟")).to_contain_text("时间超前一天以上")


def test_a_technician_retires_a_test_kiosk_from_its_page(dashboard: Dashboard, page: Page, wire: WirePublisher) -> None:
    """Issue 18, item 10: a test kiosk could not be removed from the fleet. A technician
    retires it with two clicks; station staff are not offered it."""
    two_sites(dashboard, wire)
    dashboard.log_in(page, "staff", KIOSK_PAGE)
    expect(page.locator("[data-command=ping]")).to_be_visible()
    expect(page.get_by_test_id("retire")).to_have_count(0)
    page.click("#logout")
    dashboard.log_in(page, "tech", KIOSK_PAGE)
    retire = page.locator("[data-action=retire]")
    retire.click()
    expect(retire).to_have_text("再点一次确认移除")
    assert dashboard.api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").status == 200  # one click does nothing
    retire.click()
    expect(page.locator("[data-testid=kiosks] tbody tr")).to_have_count(1)
    expect(page.locator(f'[data-testid=kiosks] tr[data-kiosk="{SITE}/{KIOSK}"]')).to_have_count(0)
    assert dashboard.api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").status == 404


def test_relay_check_ins_read_in_words_on_the_chinese_page(dashboard: Dashboard, page: Page, wire: WirePublisher) -> None:
    """Issue 18, item 10: the kiosk page listed `relay_checkin` as its raw name."""
    two_sites(dashboard, wire)
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    visit = uuid.uuid4()
    checkin = RelayCheckinEvent(visit_id=visit, subject="ab" * 32, method="phone_last4", inside=3)
    checkout = RelayCheckoutEvent(visit_id=visit, subject="ab" * 32, method="qr", reason="checked_out",
                                  stay_s=25 * 60, inside=2)
    expired = RelayCheckoutEvent(visit_id=uuid.uuid4(), subject="cd" * 32, method="qr", reason="expired",
                                 stay_s=9 * 3600, inside=1)
    wire.send(kiosk, kiosk.event(EventType.RELAY_CHECKIN, checkin), kiosk.event(EventType.RELAY_CHECKOUT, checkout),
              kiosk.event(EventType.RELAY_CHECKOUT, expired))
    wait_for(lambda: dashboard.api.get("/api/v1/events", site=SITE).body["total"] == 3, what="the three events stored")
    dashboard.log_in(page, "staff", KIOSK_PAGE)
    events = page.get_by_test_id("events")
    expect(events.locator("tr[data-event=relay_checkin]")).to_contain_text("驿站签到")
    expect(events.locator("tr[data-event=relay_checkin]")).to_contain_text("签到（手机尾号）· 站内 3 人")
    expect(events).to_contain_text("签退（二维码）· 停留 25 分钟 · 站内 2 人")
    expect(events).to_contain_text("超过最长停留时间未签退")
    expect(events).not_to_contain_text("relay_")
    expect(events).not_to_contain_text("ab" * 32)  # no resident's pseudonym on this page


def test_a_call_for_staff_and_a_silent_loudspeaker_show_on_the_kiosk_page_in_chinese(
    dashboard: Dashboard, page: Page, wire: WirePublisher
) -> None:
    """Issue 18, item 9: "call staff" at a kiosk is an alert its station's staff see, and resolve;
    a loudspeaker that does not play is said on the kiosk's page."""
    two_sites(dashboard, wire)
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    silent = telemetry().model_copy(update={
        "speech_ok": False,
        "speech_error": "no sound: aplay failed (1): aplay: main:831: audio open error: No such file or directory"})
    call = StaffCalledEvent(call_id=uuid.uuid4(), screen="bp-cuff")
    wire.send(kiosk, kiosk.telemetry(silent, at=datetime.now(UTC)), kiosk.event(EventType.STAFF_CALLED, call))
    wait_for(lambda: dashboard.api.get("/api/v1/alerts", kind="staff_called").body["total"] == 1, what="the alert")
    dashboard.log_in(page, "staff", KIOSK_PAGE)
    alert = page.locator("tr[data-kind=staff_called]")
    expect(alert).to_contain_text("呼叫工作人员")
    expect(alert).to_contain_text("自助机上有人呼叫工作人员（量血压）")
    expect(page.get_by_test_id("events").locator("tr[data-event=staff_called]")).to_have_text(re.compile("在量血压页面按了呼叫"))
    expect(page.get_by_test_id("speech").locator(".fact.bad")).to_contain_text("没有声音：no sound: aplay failed")
    alert.locator("[data-action=resolve]").click()
    page.locator("input[name=note]").fill("已到场")
    page.locator("input[name=note]").press("Enter")
    wait_for(lambda: dashboard.api.get("/api/v1/alerts", kind="staff_called", state="resolved").body["total"] == 1,
             what="the alert resolved by staff")


def test_a_kiosk_s_undelivered_records_and_short_runway_show_on_the_fleet_and_its_page(
    dashboard: Dashboard, page: Page, wire: WirePublisher
) -> None:
    """Issue 19, the buffer in sight: undelivered records per class with their oldest's age, and
    a runway under a day in red, on the fleet list and the kiosk's page, in both languages; the
    alert says what to do."""
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    filling = telemetry(backlog=40, oldest_age_s=2 * 3600).model_copy(
        update={"outbox_growth_bytes_per_h": 12 * 1024 * 1024, "runway_h": 6.5})
    wire.send(kiosk, kiosk.status(KioskState.ONLINE, datetime.now(UTC)), kiosk.telemetry(filling, at=datetime.now(UTC)))
    wait_for(lambda: dashboard.api.get("/api/v1/alerts", kind="outbox_runway_short").body["total"] == 1, what="the alert")
    dashboard.log_in(page, "tech")
    row = page.locator(f'[data-testid=kiosks] tr[data-kiosk="{SITE}/{KIOSK}"]')
    expect(row.get_by_test_id("runway")).to_have_text("6.5 小时")
    expect(row.locator("td.bad[data-testid=runway]")).to_have_count(1)
    expect(row.get_by_test_id("outbox-depth")).to_have_text("健康 40 条 最早 2 小时 · 事件 0 条 · 遥测 0 条")
    expect(page.locator("[data-testid=alerts] tr[data-kind=outbox_runway_short]")).to_contain_text("6.5 小时后占满磁盘预算")
    page.goto(dashboard.url + KIOSK_PAGE)
    expect(page.locator(".fact.bad", has_text="缓存可撑")).to_contain_text("6.5 小时 · 每小时 +12 MB")
    expect(page.locator(".fact", has_text="未送达（按类）")).to_contain_text("健康 40 条 最早 2 小时")
    page.click("#language")
    expect(page.locator(".fact.bad", has_text="Runway")).to_contain_text("6.5 h · +12 MB an hour")
    expect(page.locator(".fact", has_text="Undelivered by class")).to_contain_text("health 40 oldest 2 h · events 0 · telemetry 0")
    expect(page.locator("tr[data-kind=outbox_runway_short]")).to_contain_text("check the kiosk's network")


def test_a_technician_asks_a_real_agent_for_a_support_bundle_and_downloads_it(
    dashboard: Dashboard, page: Page, start_agent: Any
) -> None:
    """From the kiosk's page: the button, the kiosk's upload over the real broker, the link that
    downloads it (audited). Station staff, who may send commands, are not offered bundles."""
    start_agent(telemetry_every_s=2)
    dashboard.log_in(page, "tech", KIOSK_PAGE)
    expect(page.locator("h1 [data-status]")).to_have_attribute("data-status", "online", timeout=30_000)
    bundles = page.get_by_test_id("support-bundles")
    expect(bundles).to_contain_text("还没有支持包")
    page.click("[data-action=request-support-bundle]")
    asked = page.get_by_test_id("command-history").locator("tr", has_text="上传支持包")
    expect(asked).to_have_attribute("data-command-status", "succeeded", timeout=30_000)
    link = bundles.locator("a[download]")
    expect(link).to_have_count(1)
    expect(bundles.locator("tr[data-bundle]")).to_contain_text("tech")
    with page.expect_download() as downloading:
        link.click()
    manifest = read_manifest(Path(downloading.value.path()).read_bytes())
    assert (manifest.site, manifest.kiosk) == (SITE, KIOSK)
    assert manifest.logs_source.startswith("the journal")  # the agent logs to stderr here
    audit = dashboard.api.get("/api/v1/audit", action="support_bundle_download").body["items"]
    assert [(e["actor"], e["target"]) for e in audit] == [("tech", f"{SITE}/{KIOSK}")]
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    dashboard.log_in(page, "staff", KIOSK_PAGE)
    expect(page.locator("[data-command=ping]")).to_be_visible()
    expect(page.get_by_test_id("support-bundles")).to_have_count(0)
    expect(page.locator("[data-action=request-support-bundle]")).to_have_count(0)


def test_desired_against_reported_configuration_shows_on_the_kiosk_page_and_in_the_fleet(
    dashboard: Dashboard, page: Page, wire: WirePublisher
) -> None:
    """Issue 19: the technician sees that a kiosk rolled back the newest version, and why."""
    for language in ("en", "zh-CN"):  # versions 1 and 2
        changed = dashboard.api.request("PUT", f"/api/v1/kiosks/{SITE}/{KIOSK}/config",
                                        json.dumps({"screen": {"language": language}}).encode())
        assert changed.status == 200, changed.body
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    report = ConfigReport(version=1, tried_version=2, outcome=ConfigOutcome.ROLLED_BACK,
                          reason="device A4:C1:38:00:00:99 has not answered within 60 s: rolled back", at=datetime.now(UTC))
    wire.send(kiosk, kiosk.status(KioskState.ONLINE, datetime.now(UTC)),
              kiosk.telemetry(telemetry().model_copy(update={"config": report})))
    wait_for(lambda: dashboard.api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}").body.get("config_state") == "rolled_back",
             what="the kiosk's report folded in")
    dashboard.log_in(page, "tech", KIOSK_PAGE)
    config = page.get_by_test_id("config")
    expect(config).to_contain_text("运行 v1 / 目标 v2 · 已回滚")
    expect(config).to_contain_text("A4:C1:38:00:00:99 has not answered")
    page.goto(dashboard.url)
    expect(page.locator(f'tr[data-kiosk="{SITE}/{KIOSK}"] [data-config]')).to_have_attribute("data-config", "rolled_back")


def test_a_technician_edits_the_kiosk_s_configuration_on_its_page_and_a_bad_value_is_refused_by_field(
    dashboard: Dashboard, page: Page
) -> None:
    """Issue 19: the desired configuration is edited in the dashboard too, through the same API
    and the same validation: a bad value shows its field and problem and changes nothing; a
    good one makes a new version. Station staff are not offered the editor."""
    dashboard.log_in(page, "tech", KIOSK_PAGE)
    kiosk_document = page.locator("[data-config-document=kiosk]")
    expect(kiosk_document).to_have_value("{}")
    kiosk_document.fill('{"screen": {"language": "fr"}}')
    page.click("[data-action=save-config-kiosk]")
    refused = page.get_by_test_id("config-outcome-kiosk")
    expect(refused).to_contain_text("没有保存")
    expect(refused.locator("li")).to_contain_text("screen.language")
    assert dashboard.api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}/config").body["desired"] is None
    kiosk_document.fill("not json")
    page.click("[data-action=save-config-kiosk]")
    expect(refused).to_contain_text("不是有效的 JSON")
    kiosk_document.fill('{"screen": {"language": "en"}}')
    page.click("[data-action=save-config-kiosk]")
    expect(page.get_by_test_id("config-outcome-kiosk")).to_contain_text(f"已保存：{KIOSK} v1")
    current = dashboard.api.get(f"/api/v1/kiosks/{SITE}/{KIOSK}/config").body
    assert current["kiosk_document"] == {"screen": {"language": "en"}} and current["desired"]["version"] == 1
    audit = dashboard.api.get("/api/v1/audit").body["items"]
    assert any(e["actor"] == "tech" and e["target"] == f"{SITE}/{KIOSK}" for e in audit)
    page.click("#logout")
    dashboard.log_in(page, "staff", KIOSK_PAGE)
    expect(page.locator("main h1")).to_be_visible()  # a kiosk not heard from yet: configured before it comes
    expect(page.get_by_test_id("config-editor")).to_have_count(0)
