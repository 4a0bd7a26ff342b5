"""The kiosk screen in a real Chromium with a serial card reader and a receipt printer on
pseudo-terminals: she taps "量血压" once and swipes her card, measures, shows her code as a QR
for the doctor, and presses "打印" on a printer out of paper, which is said in words."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from drivers.ble.simulated import simulated_backend
from tests.browser.conftest import Screenshots
from tests.browser.test_kiosk_screen import SLOW, open_kiosk, wait_for_js
from tests.kiosk_support import PSEUDONYMS, button_cuff, kiosk_settings
from tests.pty_device import PtyDevice
from tests.support import CUFF_ADDRESS, running_agent, wait_until
from tests.test_kiosk_peripherals import (  # noqa: F401  (reader, printer: the fixtures)
    CARD, CARD_FRAME, PAPER_OUT, PrinterOnPty, printer, reader, saved_readings, with_peripherals,
)


@pytest.mark.asyncio
async def test_she_taps_once_swipes_measures_shows_her_code_and_hears_the_printer_is_out_of_paper(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots, reader: PtyDevice, printer: PrinterOnPty
) -> None:
    printer.paper = PAPER_OUT
    cuff = button_cuff()
    settings = with_peripherals(kiosk_settings(tmp_path, broker), reader, printer)
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await open_kiosk(page, agent.screen.url)
        await page.click("#go-bp")
        reader.send(CARD_FRAME)  # the swipe: nothing typed
        await expect(page.locator("#bp-whose")).to_have_text("结果将记入您的健康档案。", timeout=SLOW)
        cuff.press_start()
        await expect(page.locator("#screen-bp-result")).to_be_visible(timeout=SLOW)
        assert saved_readings(agent)[0]["subject"] == PSEUDONYMS.of_card(CARD)

        await page.click("#bp-show-code")
        await expect(page.locator("#bp-code figcaption")).to_contain_text("请家庭医生用手机扫这个码。")
        await wait_for_js(page, "document.getElementById('bp-code-image').naturalWidth > 0")
        await screenshots.take(page, "result-code")
        await page.click("#bp-code")  # a tap anywhere: back to her result
        await expect(page.locator("#bp-code")).to_be_hidden()
        await page.click("#bp-print")
        await expect(page.locator("#help-message")).to_contain_text("打印机没纸了", timeout=SLOW)
        await screenshots.take(page, "result-print-refused")
        assert CARD not in await page.content()
