"""The kiosk screen in a real Chromium, on a real agent (real SQLite outbox, the simulated cuff
as a bleak backend, the simulated laundry room on a pty), with the network down: a resident's
whole measurement, a rider's check-in and check-out, a resident starting a washer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from contract.envelope import Envelope
from drivers.ble.simulated import simulated_backend
from drivers.laundry.vend import VendState
from tests.browser.conftest import Screenshots
from tests.kiosk_support import PIN, PSEUDONYMS, acall, button_cuff, kiosk_settings
from tests.support import CUFF_ADDRESS, running_agent, wait_until

CARD = "310101194501011234"
# Generous: two cores are shared with other test runs.
SLOW = 15_000


async def open_kiosk(page: Page, url: str) -> None:
    await page.goto(url)
    await page.wait_for_selector("body[data-ready=yes]")


async def wait_for_js(page: Page, expression: str, timeout_s: float = SLOW / 1000) -> None:
    """Polls with page.evaluate: Playwright's wait_for_function evaluates strings inside the
    page, which the kiosk's content security policy (no eval) rightly refuses."""
    await wait_until(lambda: page.evaluate(expression), timeout=timeout_s, what=expression)


async def tap_keys(page: Page, keypad_for: str, keys: str) -> None:
    for key in keys:
        await page.locator(f'.keypad[data-for="{keypad_for}"] .key', has_text=key).click()


@pytest.mark.asyncio
async def test_a_resident_measures_her_blood_pressure_and_sees_it_saved_with_its_meaning(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots
) -> None:
    # A slow inflation, so the page is seen following it.
    cuff = button_cuff(inflate_steps=12, step_interval=0.25, start_delay=0.3)
    settings = kiosk_settings(tmp_path, broker)  # no broker running: the network is down
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await open_kiosk(page, agent.screen.url)
        await expect(page.locator("#screen-home h1")).to_have_text("您好！请选择服务")
        await screenshots.take(page, "home")

        await page.click("#go-bp")
        await expect(page.locator("#screen-bp-identify h1")).to_have_text("请刷卡，或输入居民卡号")
        await tap_keys(page, "bp-card", "12")
        await page.click("#bp-card-ok")
        await expect(page.locator("#bp-identify-error")).to_contain_text("卡号不对")
        await page.fill("#bp-card", "")
        await tap_keys(page, "bp-card", CARD)
        await screenshots.take(page, "bp-identify")
        await page.click("#bp-card-ok")
        await expect(page.locator("#bp-cuff-title")).to_have_text("请戴好袖带，按血压计上的“开始”键")
        await expect(page.locator("#bp-whose")).to_have_text("结果将记入您的健康档案。")

        # Every value the big pressure number shows, as the page shows it.
        await page.evaluate("""() => {
            window.pressures = [];
            new MutationObserver(() => window.pressures.push(document.getElementById('bp-pressure').textContent))
              .observe(document.getElementById('bp-pressure'), {childList: true, characterData: true, subtree: true});
        }""")
        cuff.press_start()
        await expect(page.locator("#bp-cuff-title")).to_have_text("正在测量，请保持不动", timeout=SLOW)
        await wait_for_js(page, "window.pressures.length >= 4")
        await screenshots.take(page, "bp-cuff")

        await expect(page.locator("#screen-bp-result")).to_be_visible(timeout=SLOW)
        pressures = [int(p) for p in await page.evaluate("window.pressures") if p.isdigit()]
        assert len(pressures) >= 4 and pressures == sorted(pressures) and pressures[-1] > pressures[0]
        await expect(page.locator("#bp-systolic")).to_have_text("148")
        await expect(page.locator("#bp-diastolic")).to_have_text("92")
        await expect(page.locator("#bp-pulse")).to_have_text("74")
        await expect(page.locator("#bp-category")).to_have_text("偏高：请告诉您的家庭医生")
        await expect(page.locator("#bp-flags")).to_contain_text("您在测量时动了，请坐好不动，再测一次。")
        await expect(page.locator("#bp-saved")).to_have_text("✔ 已保存到您的健康档案")
        await screenshots.take(page, "bp-result")

        # "Saved" was shown: the outbox holds it, on her record (a pseudonym, not the card).
        [record] = [r for r in agent.outbox.due(100) if "/readings/" in r.topic]
        payload = Envelope.model_validate_json(record.body).payload
        assert payload["subject"] == PSEUDONYMS.of_card(CARD) and payload["systolic"] == 148.0
        assert CARD.encode() not in record.body

        # English is one tap away, on the result too.
        await page.click("#language")
        await expect(page.locator("#bp-category")).to_have_text("High: please tell your family doctor")
        await expect(page.locator("#bp-flags")).to_contain_text(
            "You moved during the measurement — please sit still and measure again."
        )
        await expect(page.locator("#bp-saved")).to_have_text("✔ Saved to your health record")
        await screenshots.take(page, "bp-result-en")
        await page.click("#bp-done")
        await expect(page.locator("#screen-home h1")).to_have_text("Hello! Please choose")


@pytest.mark.asyncio
async def test_a_rider_checks_in_and_out_at_night_with_the_network_down(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots
) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await open_kiosk(page, agent.screen.url)
        await page.click("#go-relay")
        await expect(page.locator("#relay-inside")).to_have_text("0")
        await expect(page.locator("#relay-offers")).to_contain_text("饮用水")
        await expect(page.locator("#relay-offers")).to_contain_text("微波炉热饭")
        await screenshots.take(page, "relay")

        await page.click("#relay-in")
        await expect(page.locator("#relay-who-title")).to_have_text("签到：请输入手机号后四位")
        await tap_keys(page, "relay-digits", "4821")
        await page.click("#relay-ok")
        await expect(page.locator("#relay-done-title")).to_have_text("签到成功，欢迎休息！")
        await expect(page.locator("#relay-done-inside")).to_have_text("1")
        await screenshots.take(page, "relay-checked-in")
        await page.click("#relay-done-ok")

        await page.click("#go-relay")
        await expect(page.locator("#relay-inside")).to_have_text("1")
        await page.click("#relay-out")
        await tap_keys(page, "relay-digits", "4821")
        await page.click("#relay-ok")
        await expect(page.locator("#relay-done-title")).to_have_text("签退成功，路上注意安全！")
        await expect(page.locator("#relay-done-next")).to_contain_text("您休息了 0 分钟")
        await expect(page.locator("#relay-done-inside")).to_have_text("0")

        # Checking out again finds nobody: a plain answer, not an error.
        await page.click("#relay-done-ok")
        await page.click("#go-relay")
        await page.click("#relay-out")
        await tap_keys(page, "relay-digits", "4821")
        await page.click("#relay-ok")
        await expect(page.locator("#relay-done-title")).to_have_text("没有找到您的签到")

        events = [json.loads(r.body)["payload"] for r in agent.outbox.due(100) if "/events/relay_" in r.topic]
        assert [e.get("reason") for e in events] == [None, "checked_out"]
        assert {e["subject"] for e in events} == {PSEUDONYMS.of_phone_last4("4821")}


@pytest.mark.asyncio
async def test_a_resident_starts_a_washer_with_her_points_and_a_stranger_is_refused(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots
) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker, laundry=True)) as agent:
        await wait_until(lambda: agent.screen is not None and agent.laundry is not None, what="the room open")
        assert agent.screen is not None and agent.laundry is not None
        url = agent.screen.url
        room = agent.laundry
        await wait_until(lambda: all(m.status is not None for m in room.machines()), what="every machine read")
        opened = await acall(url, "PUT", "/api/admin/residents", {"card_number": CARD, "birth_year": 1958, "balance": 20},
                             headers={"x-technician-pin": PIN})
        assert opened.status == 200 and opened.body["subject"] == PSEUDONYMS.of_card(CARD)

        await open_kiosk(page, url)
        await page.click("#go-laundry")
        # The demo room: 1 and 7 running, 4 done, 5 with a drain fault, the others free.
        await expect(page.locator("#machine-1")).to_contain_text("运行中 · 还剩")
        await expect(page.locator("#machine-4")).to_contain_text("已洗好 · 请取衣服")
        await expect(page.locator("#machine-5")).to_contain_text("故障：排水故障，请联系工作人员")
        await expect(page.locator("#machine-2")).to_contain_text("空闲 · 点我启动")
        await expect(page.locator("#machine-1")).to_be_disabled()
        await screenshots.take(page, "laundry")

        # Someone without an account is told so, and nothing starts.
        await page.click("#machine-2")
        await page.click("#program-2")
        await tap_keys(page, "laundry-card", "110105196002021111")
        await page.click("#laundry-card-ok")
        await expect(page.locator("#laundry-card-error")).to_have_text("本站没有这张卡的积分账户，请联系工作人员开户。")

        await page.fill("#laundry-card", "")
        await tap_keys(page, "laundry-card", CARD)
        await page.click("#laundry-card-ok")
        await expect(page.locator("#laundry-confirm-what")).to_have_text("启动 2号洗衣机：快速洗，约 25 分钟")
        await expect(page.locator("#laundry-confirm-price")).to_have_text("需要 3 积分，您现在有 20 积分。")
        await screenshots.take(page, "laundry-confirm")
        await page.click("#laundry-start")
        await expect(page.locator("#laundry-done-title")).to_have_text("已经启动！", timeout=SLOW)
        await expect(page.locator("#laundry-done-next")).to_have_text(
            "2号洗衣机约 25 分钟后洗好。扣了 3 积分，还剩 17 积分。"
        )
        await screenshots.take(page, "laundry-started")

        # The machine really runs, and the book charged her once.
        [transaction] = [t for t in room.ledger.unfinished() if t.unit == 2]
        assert transaction.state is VendState.IN_USE and transaction.subject == PSEUDONYMS.of_card(CARD)
        account = room.ledger.account(PSEUDONYMS.of_card(CARD))
        assert account is not None and account.balance == 17
        assert room.simulator is not None and room.simulator.machines[2].state.value == "running"

        # A second start of the busy machine is refused in plain words.
        again = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": 2, "program": 2})
        assert (again.body["outcome"], again.body["reason"]) == ("refused", "machine_busy")
