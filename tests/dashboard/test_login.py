"""Logging in and out of the dashboard, its two languages, a session that ends, a connection
that drops, and text from a kiosk that tries to be markup."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import update
from sqlmodel import Session

from cloud_bridge.accounts import ApiToken
from contract.payloads import DeviceIdentity, LaundryMachineEvent
from contract.status import KioskState
from contract.telemetry import DeviceTelemetry
from tests.bridge.wire_kiosk import WireKiosk, telemetry
from tests.dashboard.conftest import KIOSK, PASSWORD, SITE, Dashboard, WirePublisher
from tests.dashboard.test_screens import shoot
from tests.support import wait_for

MARKUP = '<img src=x onerror="window.pwned=1">'


def test_the_login_page_needs_no_token_and_the_session_is_an_httponly_cookie(
    dashboard: Dashboard, page: Page, browser: BrowserContext, tmp_path: Path
) -> None:
    page.goto(dashboard.url)
    expect(page.locator("#login h1")).to_have_text("登录运维看板")
    shoot(page, tmp_path, "login")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("请输入用户名和密码")
    page.fill("#username", "tech")
    page.fill("#password", "not the password")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("用户名或密码错误")
    page.fill("#password", PASSWORD)
    page.click("#login button[type=submit]")
    expect(page.get_by_test_id("who")).to_have_text("tech（技术员）")
    [cookie] = browser.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("doorstep_session", True, "Strict")
    assert page.evaluate("document.cookie") == ""  # no script of the page can read the token
    page.reload()  # the session outlives a reload
    expect(page.get_by_test_id("who")).to_have_text("tech（技术员）")
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    # The token is revoked, not only forgotten by the browser.
    assert browser.request.get(f"http://127.0.0.1:{dashboard.api.port}/api/v1/me",
                               headers={"cookie": f"doorstep_session={cookie['value']}"}).status == 401


def test_chinese_by_default_english_one_click_away_and_remembered(dashboard: Dashboard, page: Page) -> None:
    page.goto(dashboard.url)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.click("#language")
    expect(page.locator("#login h1")).to_have_text("Log in to the dashboard")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    dashboard.log_in(page, "doctor")
    expect(page.get_by_test_id("who")).to_have_text("doctor (family doctor, pudong-lujiazui)")
    for fragment in ("#/", f"#/kiosk/{SITE}/{KIOSK}", "#/residents", "#/residents/" + "ab" * 32):
        page.goto(dashboard.url + fragment)
        expect(page.locator("#freshness")).to_have_attribute("data-state", "ok")
        expect(page.locator("body")).not_to_contain_text("⟦")  # a label missing from js/i18n.js
    page.reload()
    expect(page.locator("#language")).to_have_text("中文")
    page.click("#language")
    for fragment in ("#/", f"#/kiosk/{SITE}/{KIOSK}", "#/residents"):
        page.goto(dashboard.url + fragment)
        expect(page.locator("#freshness")).to_have_attribute("data-state", "ok")
        expect(page.locator("body")).not_to_contain_text("⟦")


def test_a_session_that_ends_sends_the_person_back_to_the_login(dashboard: Dashboard, page: Page) -> None:
    dashboard.log_in(page, "staff")
    with Session(dashboard.bridge.engine) as session:  # as an administrator revoking it would
        session.execute(update(ApiToken).where(ApiToken.username == "staff").values(revoked_at=datetime.now(UTC)))
        session.commit()
    expect(page.locator("#login-error")).to_have_text("登录已失效，请重新登录")


def test_a_lost_connection_keeps_the_last_data_and_says_since_when(
    dashboard: Dashboard, page: Page, wire: WirePublisher
) -> None:
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    wire.send(kiosk, kiosk.status(KioskState.ONLINE, datetime.now(UTC)))
    dashboard.log_in(page, "tech")
    row = page.locator(f'[data-testid=kiosks] tr[data-kiosk="{SITE}/{KIOSK}"]')
    expect(row).to_have_attribute("data-status", "online")
    page.route("**/api/v1/kiosks*", lambda route: route.abort())  # the network between goes
    expect(page.locator("#freshness")).to_have_attribute("data-state", "failed")
    expect(page.locator("#freshness")).to_contain_text("连接中断")
    expect(row).to_have_attribute("data-status", "online")  # still there, marked as old
    page.unroute("**/api/v1/kiosks*")
    expect(page.locator("#freshness")).to_have_attribute("data-state", "ok")


def test_text_a_kiosk_sent_is_shown_as_text_and_never_runs(
    dashboard: Dashboard, page: Page, wire: WirePublisher
) -> None:
    now = datetime.now(UTC)
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    device = DeviceTelemetry(address="A4:C1:38:12:34:56", model=MARKUP)
    machine = LaundryMachineEvent(unit=3, state="fault", link="online", error_code=9,
                                  error_text={"zh": "<script>window.pwned=2</script>", "en": "x"})
    wire.send(kiosk, kiosk.status(KioskState.ONLINE, now), kiosk.telemetry(telemetry(devices=[device]), at=now),
              kiosk.machine(machine, device=DeviceIdentity(model="washer-retrofit-a", address="modbus-unit-3")))
    wait_for(lambda: dashboard.api.get("/api/v1/devices").body["total"] == 2, what="both devices stored")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    dashboard.log_in(page, "tech")
    devices = page.get_by_test_id("devices")
    expect(devices).to_contain_text(MARKUP)
    expect(devices).to_contain_text("E9 <script>window.pwned=2</script>")
    page.goto(dashboard.url + f"#/kiosk/{SITE}/{KIOSK}")
    expect(page.get_by_test_id("kiosk-devices")).to_contain_text(MARKUP)
    expect(page.get_by_test_id("events")).to_contain_text("<script>")
    assert page.locator("img, script:not([src])").count() == 0
    assert page.evaluate("window.pwned") is None and dialogs == []


def test_an_api_address_opened_in_the_browser_asks_for_the_login_then_shows_the_answer(
    dashboard: Dashboard, page: Page, browser: BrowserContext
) -> None:
    """The demo prints API addresses to open; without a session they used to answer a 401 in
    JSON. A browser is sent to the login and, once in, back to what it asked for; a script
    still gets its 401."""
    readings = f"http://127.0.0.1:{dashboard.api.port}/api/v1/readings?limit=5"
    page.goto(readings)
    expect(page.locator("#login")).to_be_visible()
    page.fill("#username", "doctor")
    page.fill("#password", PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_url(readings)
    assert page.evaluate("JSON.parse(document.body.innerText).limit") == 5
    page.goto(f"http://127.0.0.1:{dashboard.api.port}/dashboard/?next=//elsewhere.example/api/")
    expect(page.get_by_test_id("who")).to_contain_text("doctor")  # never sent to another site
    script = browser.request.get(readings, headers={"cookie": ""}, max_redirects=0)
    assert script.status == 401
