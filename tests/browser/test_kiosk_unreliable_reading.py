"""Issue 18, item 4, in a real Chromium on a real agent: an implausible reading (96/91, pulse
240: drivers/plausibility.py) gets no category, says "this reading is not reliable, please
measure again", and is not presented as a good one; it is saved all the same, marked suspect,
on the record the screen named."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.simulated import simulated_backend
from tests.browser.conftest import Screenshots
from tests.browser.test_kiosk_idle import identify_at_the_screen, the_one_reading
from tests.browser.test_kiosk_screen import CARD, SLOW
from tests.browser.test_kiosk_sizes import SIZES, Fit
from tests.kiosk_support import PSEUDONYMS, button_cuff, kiosk_settings
from tests.support import CUFF_ADDRESS, running_agent, wait_until

IMPLAUSIBLE = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG, systolic=96.0, diastolic=91.0, mean_arterial_pressure=93.0, pulse_rate=240.0
)
GREEN = "rgb(11, 93, 30)"  # kiosk.css --green, the colour of "normal" and of "saved"


async def colours(page: Page, selector: str) -> tuple[str, str]:
    return tuple(await page.eval_on_selector(  # type: ignore[return-value]
        selector, "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"))


@pytest.mark.asyncio
async def test_an_implausible_reading_says_not_reliable_and_is_not_shown_as_good(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots
) -> None:
    cuff = button_cuff(lambda: [IMPLAUSIBLE], start_delay=0.3)
    async with running_agent(kiosk_settings(tmp_path, broker), {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await identify_at_the_screen(page, agent.screen.url)
        cuff.press_start()
        await expect(page.locator("#screen-bp-result")).to_be_visible(timeout=SLOW)
        await expect(page.locator("#bp-systolic")).to_have_text("96")
        await expect(page.locator("#bp-category")).to_have_text("这次的数字不可靠，请重新测量")
        # No category beside it, and not twice in other words.
        result = await page.locator("#screen-bp-result").inner_text()
        for category in ("正常", "偏高", "很高", "不太可靠"):
            assert category not in result, category
        await expect(page.locator("#bp-flags li")).to_have_count(0)
        # Saved, and said so, but without the tick and the green of a good reading.
        await expect(page.locator("#bp-saved")).to_have_text("已记入您的健康档案，标为不可靠")
        assert GREEN not in await colours(page, "#bp-category")
        assert GREEN not in await colours(page, "#bp-saved")
        await screenshots.take(page, "bp-result-unreliable")

        await page.click("#language")
        await expect(page.locator("#bp-category")).to_have_text("This reading is not reliable, please measure again")
        await expect(page.locator("#bp-saved")).to_have_text("Saved to your health record, marked unreliable")

        # Stored as today: on her record (as the screen said), marked suspect.
        reading = the_one_reading(agent)
        assert reading["subject"] == PSEUDONYMS.of_card(CARD)
        assert reading["suspect"] == ["pulse_pressure_too_narrow", "pulse_rate_out_of_range"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_the_unreliable_result_fits_every_display(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots, width: int, height: int
) -> None:
    # As test_kiosk_sizes.py measures every other screen: no scrolling, 60 px controls, 18 px text.
    await page.set_viewport_size({"width": width, "height": height})
    fit = Fit(page, f"{width}x{height}", screenshots)
    cuff = button_cuff(lambda: [IMPLAUSIBLE], start_delay=0.3)
    async with running_agent(kiosk_settings(tmp_path, broker), {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await identify_at_the_screen(page, agent.screen.url)
        cuff.press_start()
        await expect(page.locator("#bp-category")).to_have_text("这次的数字不可靠，请重新测量", timeout=SLOW)
        await fit.check("bp-result-unreliable", english=("#bp-category", "not reliable"))
    assert not fit.problems, "\n".join(fit.problems)
