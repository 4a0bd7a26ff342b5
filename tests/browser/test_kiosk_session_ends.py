"""Issue 18, item 1, in a real Chromium on a real agent with the simulated cuff (a bleak backend,
so the production BleakClient runs): every end of a measurement reaches the page from the
agent, and the screen never promises a record the desk has forgotten. A cuff whose link drops
at 180 mmHg says so in plain words with one button to measure again; the desk's expiry is shown
as it happens; the next reading is attributed as the screen said at the time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from broker_admin.mosquitto import MosquittoProcess
from drivers.ble.simulated import simulated_backend
from edge_agent.agent import Agent
from tests.browser.conftest import Screenshots
from tests.browser.test_kiosk_idle import identify_at_the_screen, the_desk_forgets, the_one_reading
from tests.browser.test_kiosk_screen import CARD, SLOW
from tests.browser.test_kiosk_sizes import SIZES, Fit
from tests.kiosk_support import PSEUDONYMS, ButtonCuff, button_cuff, kiosk_settings
from tests.support import CUFF_ADDRESS, running_agent, wait_until

DROPPED = "血压计断开了，请重新测量"
NOT_ON_A_RECORD = "结果不记入个人档案。"
ON_HER_RECORD = "结果将记入您的健康档案。"


@asynccontextmanager
async def dropped_at_180_mmhg(
    tmp_path: Path, broker: MosquittoProcess, page: Page
) -> AsyncIterator[tuple[Agent, ButtonCuff]]:
    """A resident identifies at the screen and presses the cuff's start; it inflates to 180 mmHg
    in 16 steps and its link drops before any measurement. The screen says so; the desk forgot her."""
    cuff = button_cuff(inflate_steps=16, step_interval=0.15, start_delay=0.3, drop_mid_measurement=True)
    async with running_agent(kiosk_settings(tmp_path, broker), {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await identify_at_the_screen(page, agent.screen.url)
        cuff.press_start()
        await expect(page.locator("#bp-cuff-title")).to_have_text("正在测量，请保持不动", timeout=SLOW)
        await expect(page.locator("#bp-cuff-title")).to_have_text(DROPPED, timeout=SLOW)
        await expect(page.locator("#bp-pressure")).to_have_text("—")  # not a reading of 180
        await expect(page.locator("#bp-restart")).to_be_visible()
        await expect(page.locator("#bp-cancel")).to_be_hidden()
        # The desk waits for nobody now, and the screen says so.
        await expect(page.locator("#bp-whose")).to_have_text(NOT_ON_A_RECORD)
        await the_desk_forgets(agent)
        cuff.drop_mid_measurement = False  # the next press measures
        yield agent, cuff


@pytest.mark.asyncio
async def test_a_cuff_dropped_at_180_mmhg_says_so_and_the_next_persons_reading_is_on_no_record(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots
) -> None:
    async with dropped_at_180_mmhg(tmp_path, broker, page) as (agent, cuff):
        await screenshots.take(page, "bp-cuff-dropped")
        await page.click("#language")
        await expect(page.locator("#bp-cuff-title")).to_have_text("The cuff disconnected. Please measure again.")
        await expect(page.locator("#bp-whose")).to_have_text("The result will not be saved to a personal record.")
        await page.click("#language")

        # She walks away; the next person presses the cuff's start without touching the screen.
        cuff.press_start()
        await expect(page.locator("#bp-cuff-title")).to_have_text("正在测量，请保持不动", timeout=SLOW)
        await expect(page.locator("#bp-whose")).to_have_text(NOT_ON_A_RECORD)
        await expect(page.locator("#bp-saved")).to_have_text("✔ 已保存（没有记入个人档案）", timeout=SLOW)
        assert the_one_reading(agent)["subject"] is None


@pytest.mark.asyncio
async def test_measure_again_after_a_drop_puts_the_reading_on_her_record(tmp_path: Path, broker, page: Page) -> None:
    async with dropped_at_180_mmhg(tmp_path, broker, page) as (agent, cuff):
        # One button, and she is back where she was: her card is not asked for again.
        await page.click("#bp-restart")
        await expect(page.locator("#bp-cuff-title")).to_have_text("请戴好袖带，按血压计上的“开始”键")
        await expect(page.locator("#bp-whose")).to_have_text(ON_HER_RECORD)
        await expect(page.locator("#bp-cancel")).to_be_visible()
        await expect(page.locator("#bp-restart")).to_be_hidden()
        assert agent.desk.snapshot() == {"state": "waiting", "record": True}

        cuff.press_start()
        await expect(page.locator("#bp-saved")).to_have_text("✔ 已保存到您的健康档案", timeout=SLOW)
        assert the_one_reading(agent)["subject"] == PSEUDONYMS.of_card(CARD)


@pytest.mark.asyncio
async def test_the_desks_expiry_reaches_the_screen_and_the_next_reading_is_on_no_record(
    tmp_path: Path, broker, page: Page
) -> None:
    # The desk forgets her after 2 s; the screen's own idle reset is far off (90 s).
    cuff = button_cuff(start_delay=0.3)
    settings = kiosk_settings(tmp_path, broker, screen={"measure_timeout_s": 2})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await identify_at_the_screen(page, agent.screen.url)
        # Nobody touches anything: the page is told, and says what a reading would be now.
        await expect(page.locator("#bp-cuff-title")).to_have_text("等的时间太长，这次测量已取消", timeout=SLOW)
        await expect(page.locator("#bp-whose")).to_have_text(NOT_ON_A_RECORD)
        assert agent.desk.snapshot() == {"state": "idle", "record": False}

        cuff.press_start()
        await expect(page.locator("#bp-whose")).to_have_text(NOT_ON_A_RECORD, timeout=SLOW)
        await expect(page.locator("#bp-saved")).to_have_text("✔ 已保存（没有记入个人档案）", timeout=SLOW)
        assert the_one_reading(agent)["subject"] is None


@pytest.mark.asyncio
@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_the_dropped_cuff_screen_fits_every_display(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots, width: int, height: int
) -> None:
    # As test_kiosk_sizes.py measures every other screen: no scrolling, 60 px controls, 18 px text.
    await page.set_viewport_size({"width": width, "height": height})
    fit = Fit(page, f"{width}x{height}", screenshots)
    async with dropped_at_180_mmhg(tmp_path, broker, page):
        await fit.check("bp-cuff-dropped", english=("#bp-cuff-title", "The cuff disconnected"))
    assert not fit.problems, "\n".join(fit.problems)
