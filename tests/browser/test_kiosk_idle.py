"""Issue 18, items 7 and 1 (its idle half), in a real Chromium on a real agent: a kiosk left alone
goes back to its start from every screen, in Chinese, and forgets who was there; a cuff that
goes silent mid-measurement does not hold the screen; a resident's code scanned at the start
screen identifies her as the card entry does. The idle reset is short here (IDLE_S), as
`screen.idle_reset_s` allows; it is 90 s by default."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from contract.envelope import Envelope
from drivers.ble.simulated import simulated_backend
from edge_agent.agent import Agent
from tests.browser.test_kiosk_screen import CARD, SLOW, open_kiosk, tap_keys, wait_for_js
from tests.kiosk_support import PIN, PSEUDONYMS, acall, button_cuff, kiosk_settings
from tests.support import CUFF_ADDRESS, running_agent, wait_until

# Long enough for the test's own taps on a loaded machine, short enough for a dozen screens.
IDLE_S = 3
HOME_TITLE = "您好！请选择服务"


def the_one_reading(agent: Agent) -> dict[str, Any]:
    """The payload of the only reading in the agent's outbox."""
    assert agent.outbox is not None
    [record] = [r for r in agent.outbox.due(100) if "/readings/" in r.topic]
    payload = Envelope.model_validate_json(record.body).payload
    assert payload is not None
    return payload


async def identify_at_the_screen(page: Page, url: str) -> None:
    """A resident opens blood pressure, types her card number, and is told the reading is hers."""
    await open_kiosk(page, url)
    await page.click("#go-bp")
    await tap_keys(page, "bp-card", CARD)
    await page.click("#bp-card-ok")
    await expect(page.locator("#bp-whose")).to_have_text("结果将记入您的健康档案。")


async def the_desk_forgets(agent: Agent) -> None:
    await wait_until(lambda: agent.desk.snapshot() == {"state": "idle", "record": False}, what="the desk idle")


async def wait_for_the_idle_reset(page: Page) -> None:
    await expect(page.locator("#screen-home")).to_be_visible(timeout=SLOW)
    await expect(page.locator("#screen-home h1")).to_have_text(HOME_TITLE)
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


async def to_bp_identify(page: Page) -> None:
    await page.click("#go-bp")
    await tap_keys(page, "bp-card", "3101")  # a card number half typed
    await expect(page.locator("#bp-card")).to_have_value("3101")


async def to_bp_cuff(page: Page) -> None:
    await page.click("#go-bp")
    await page.click("#bp-anonymous")
    await expect(page.locator("#bp-whose")).to_have_text("The result will not be saved to a personal record.")


async def to_relay_who(page: Page) -> None:
    await page.click("#go-relay")
    await page.click("#relay-in")
    await tap_keys(page, "relay-digits", "48")
    await expect(page.locator("#relay-digits")).to_have_value("48")


async def to_relay_done(page: Page) -> None:
    await to_relay_who(page)
    await tap_keys(page, "relay-digits", "21")
    await page.click("#relay-ok")
    await expect(page.locator("#relay-done-title")).to_be_visible()


async def to_laundry_program(page: Page) -> None:
    await page.click("#go-laundry")
    await page.click("#machine-2")
    await expect(page.locator("#program-2")).to_be_visible()


async def to_laundry_card(page: Page) -> None:
    await to_laundry_program(page)
    await page.click("#program-2")
    await tap_keys(page, "laundry-card", "3101")
    await expect(page.locator("#laundry-card")).to_have_value("3101")


async def to_laundry_confirm(page: Page) -> None:
    await to_laundry_program(page)
    await page.click("#program-2")
    await tap_keys(page, "laundry-card", CARD)
    await page.click("#laundry-card-ok")
    await expect(page.locator("#laundry-confirm-price")).to_be_visible()


async def to_laundry_done(page: Page) -> None:
    await to_laundry_confirm(page)
    await page.click("#laundry-start")
    await expect(page.locator("#laundry-done-title")).to_be_visible(timeout=SLOW)


async def stay_home(page: Page) -> None:
    pass


# Every screen a person can leave the kiosk on, and how they get there. (The result has its own
# test below: it needs a measurement.)
SCREENS: dict[str, Callable[[Page], Awaitable[None]]] = {
    "home": stay_home,
    "bp-identify": to_bp_identify,
    "bp-cuff": to_bp_cuff,
    "relay": lambda page: page.click("#go-relay"),
    "relay-who": to_relay_who,
    "relay-done": to_relay_done,
    "laundry": lambda page: page.click("#go-laundry"),
    "laundry-program": to_laundry_program,
    "laundry-card": to_laundry_card,
    "laundry-confirm": to_laundry_confirm,
    "laundry-done": to_laundry_done,
}


@pytest.mark.asyncio
async def test_left_on_any_screen_in_english_the_kiosk_goes_back_to_its_start_in_chinese(
    tmp_path: Path, broker, page: Page
) -> None:
    settings = kiosk_settings(tmp_path, broker, laundry=True, screen={"idle_reset_s": IDLE_S})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(button_cuff())}) as agent:
        await wait_until(lambda: agent.screen is not None and agent.laundry is not None, what="the screen serving")
        assert agent.screen is not None and agent.laundry is not None
        room = agent.laundry
        await wait_until(lambda: all(m.status is not None for m in room.machines()), what="every machine read")
        await acall(agent.screen.url, "PUT", "/api/admin/residents", {"card_number": CARD, "balance": 100},
                    headers={"x-technician-pin": PIN})
        await open_kiosk(page, agent.screen.url)
        for name, go_there in SCREENS.items():
            await page.click("#language")
            await expect(page.locator("#screen-home h1")).to_have_text("Hello! Please choose")
            await go_there(page)
            await expect(page.locator(f"#screen-{name}")).to_be_visible()
            await expect(page.locator("html")).to_have_attribute("lang", "en")
            # Nobody touches it.
            await wait_for_the_idle_reset(page)
            # Whatever was typed is gone.
            for field in ("bp-card", "relay-digits", "laundry-card"):
                assert await page.locator(f"#{field}").input_value() == "", (name, field)
            # And the desk waits for nobody.
            await the_desk_forgets(agent)


@pytest.mark.asyncio
async def test_the_idle_reset_forgets_who_was_there(tmp_path: Path, broker, page: Page) -> None:
    cuff = button_cuff(inflate_steps=8, step_interval=0.2, start_delay=0.3)
    settings = kiosk_settings(tmp_path, broker, screen={"idle_reset_s": IDLE_S})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        # She identifies, is told the reading goes on her record, and walks away.
        await identify_at_the_screen(page, agent.screen.url)
        await wait_for_the_idle_reset(page)
        await the_desk_forgets(agent)

        # The next person presses the cuff's start without touching the screen: the screen
        # follows, and says what the desk will do, not what it said for her.
        cuff.press_start()
        await expect(page.locator("#bp-cuff-title")).to_have_text("正在测量，请保持不动", timeout=SLOW)
        await expect(page.locator("#bp-whose")).to_have_text("结果不记入个人档案。")
        await expect(page.locator("#bp-saved")).to_have_text("✔ 已保存（没有记入个人档案）", timeout=SLOW)
        assert the_one_reading(agent)["subject"] is None

        # Left on the result: the start again, and the result is not there for the next one.
        await wait_for_the_idle_reset(page)
        await page.click("#go-bp")
        await page.click("#bp-anonymous")
        await expect(page.locator("#bp-whose")).to_have_text("结果不记入个人档案。")
        await expect(page.locator("#screen-bp-result")).to_be_hidden()


@pytest.mark.asyncio
async def test_a_cuff_that_goes_silent_mid_measurement_does_not_hold_the_screen(
    tmp_path: Path, broker, page: Page
) -> None:
    # Inflating for longer than the idle reset (the rising pressure keeps the screen), then the
    # link drops at 180 mmHg and no result ever comes.
    cuff = button_cuff(inflate_steps=24, step_interval=0.25, start_delay=0.3, drop_mid_measurement=True)
    settings = kiosk_settings(tmp_path, broker, screen={"idle_reset_s": IDLE_S})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await identify_at_the_screen(page, agent.screen.url)
        await page.evaluate("""() => {
            window.screens = [];
            new MutationObserver(() => window.screens.push(document.querySelector('.screen:not([hidden])').id))
              .observe(document.querySelector('main'), {attributes: true, subtree: true, attributeFilter: ['hidden']});
            window.pressures = [];
            new MutationObserver(() => window.pressures.push(document.getElementById('bp-pressure').textContent))
              .observe(document.getElementById('bp-pressure'), {childList: true, characterData: true, subtree: true});
        }""")
        cuff.press_start()
        await expect(page.locator("#bp-cuff-title")).to_have_text("正在测量，请保持不动", timeout=SLOW)
        # The drop itself is told at once (test_kiosk_session_ends.py): the screen leaves "measuring"
        # only then, after 180 mmHg.
        await expect(page.locator("#bp-cuff-title")).to_have_text("血压计断开了，请重新测量", timeout=SLOW)
        assert "180" in await page.evaluate("window.pressures")
        # Six seconds of inflation, twice the idle reset, and the screen stayed with her.
        assert set(await page.evaluate("window.screens")) <= {"screen-bp-cuff"}

        # Then nothing more comes: the screen goes back to its start and the desk forgets her.
        await wait_for_the_idle_reset(page)
        await the_desk_forgets(agent)


@pytest.mark.asyncio
async def test_a_code_scanned_at_the_start_screen_identifies_the_resident(tmp_path: Path, broker, page: Page) -> None:
    cuff = button_cuff()
    settings = kiosk_settings(tmp_path, broker)
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await open_kiosk(page, agent.screen.url)
        # The language button tapped twice, so it has focus: the scan's Enter must not press it.
        await page.click("#language")
        await page.click("#language")
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

        # A scanner is a keyboard: the code's characters, then Enter.
        await page.keyboard.type("12")
        await page.keyboard.press("Enter")
        await expect(page.locator("#bp-identify-error")).to_contain_text("卡号不对")  # as the card entry says it
        await page.click("#home-button")

        await page.keyboard.type(CARD)
        await page.keyboard.press("Enter")
        await expect(page.locator("#bp-whose")).to_have_text("结果将记入您的健康档案。")
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        assert agent.desk.snapshot() == {"state": "waiting", "record": True}
        cuff.press_start()
        await expect(page.locator("#bp-saved")).to_have_text("✔ 已保存到您的健康档案", timeout=SLOW)
        assert the_one_reading(agent)["subject"] == PSEUDONYMS.of_card(CARD)
        await wait_for_js(page, "document.getElementById('bp-card').value === ''")
