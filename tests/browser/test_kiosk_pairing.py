"""Issue 22, pairing from the kiosk, in a real Chromium on a real agent with BlueZ mocked on a
private system bus: the technician holds the clock, types the PIN, searches, taps the Omron
cuff; it refuses (not in pairing mode) and the screen says so in Chinese, how to enter pairing
mode included; put in pairing mode, it pairs and the screen says it is ready to measure."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.bluez_mock import ADAPTER, bluez
from tests.browser.conftest import Screenshots
from tests.browser.test_kiosk_screen import SLOW
from tests.kiosk_support import PIN, kiosk_settings
from tests.support import running_agent, wait_until

OMRON = "28:FF:B2:00:00:01"


@pytest.mark.asyncio
async def test_a_technician_pairs_a_cuff_at_the_screen_after_it_first_refuses(
    tmp_path: Path, broker, system_bus: str, page: Page, screenshots: Screenshots
) -> None:
    async with bluez(system_bus) as mock, running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await mock.add_adapter()
        cuff = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        await mock.fail_pair(cuff, "org.bluez.Error.AuthenticationRejected", "Authentication Rejected")
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None and agent.pairing is not None
        agent.pairing.scan_s = 0.2
        await page.goto(agent.screen.url)
        await expect(page.locator("body")).to_have_attribute("data-ready", "yes")

        await page.locator("#clock").hover()
        await page.mouse.down()
        await page.wait_for_timeout(3200)
        await page.mouse.up()
        await expect(page.locator("#screen-tech-pin")).to_be_visible()
        for digit in PIN:
            await page.locator("#screen-tech-pin .key", has_text=digit).click()
        await page.locator("#tech-pin-ok").click()
        await expect(page.locator("#screen-pair h1")).to_have_text("配对新血压计")

        await page.locator("#pair-scan").click()
        device = page.locator("#pair-devices button", has_text="omron")
        await expect(device).to_be_enabled(timeout=SLOW)
        await device.click()
        await expect(page.locator("#pair-status")).to_contain_text("没有在配对模式", timeout=SLOW)
        await expect(page.locator("#pair-status")).to_contain_text("-P-")
        await screenshots.take(page, "pair-not-in-pairing-mode")

        await mock.replace_pair(cuff, f"self.PairDevice('{ADAPTER}', '{OMRON}', 0)")  # now in pairing mode
        await device.click()
        await expect(page.locator("#pair-status")).to_have_text("配对成功！血压计已经加入本机，可以直接测量。",
                                                               timeout=SLOW)
        await screenshots.take(page, "pair-paired")
        assert OMRON in [d.address for d in agent.settings.devices]
