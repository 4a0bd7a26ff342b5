"""The laundry screen in a real Chromium when machines misbehave (issue 18, item 6): a machine
that cannot start is shown so before any tap, a failed start says why and that no points were
taken, and a wash that faulted at once says its points came back."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Screenshots
from tests.browser.test_kiosk_screen import SLOW, open_kiosk, tap_keys
from tests.kiosk_support import PSEUDONYMS, acall
from tests.support import running_agent, wait_until
from tests.test_kiosk_laundry_api import laundry_kiosk, open_account, room_read

CARD = "310101195801011234"


@pytest.mark.asyncio
async def test_the_laundry_screen_says_which_machines_cannot_start_why_and_what_happened_to_the_points(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots
) -> None:
    async with running_agent(laundry_kiosk(tmp_path, broker)) as agent:
        url, room, sim = await room_read(agent)
        await open_account(url, CARD, balance=20)
        sim.door_open(2)
        await wait_until(lambda: [m.not_startable for m in room.machines() if m.unit == 2] == ["door_open"],
                         what="the open door read")

        # Before any tap: the jammed door is not offered, in words, in either language.
        await open_kiosk(page, url)
        await page.click("#go-laundry")
        await expect(page.locator("#machine-2")).to_have_text("2号洗衣机机门关不上 · 暂时不能用")
        await expect(page.locator("#machine-2")).to_be_disabled()
        await expect(page.locator("#machine-5")).to_contain_text("故障：排水故障，请联系工作人员")
        await expect(page.locator("#machine-5")).to_be_disabled()
        await screenshots.take(page, "laundry-unavailable")
        await page.click("#language")
        await expect(page.locator("#machine-2")).to_have_text("Washer 2Door will not close · out of use")
        await page.click("#language")
        await expect(page.locator("#machine-2")).to_have_text("2号洗衣机机门关不上 · 暂时不能用")

        # A dryer whose controller hangs between her choice and her start: told why, and that
        # no points were taken.
        await page.click("#machine-8")
        await page.click("#program-10")
        await tap_keys(page, "laundry-card", CARD)
        await page.click("#laundry-card-ok")
        await expect(page.locator("#laundry-confirm-what")).to_contain_text("启动 8号烘干机")
        sim.freeze(8)
        await page.click("#laundry-start")
        await expect(page.locator("#laundry-done-title")).to_have_text("没有启动", timeout=SLOW)
        await expect(page.locator("#laundry-done-next")).to_have_text("机器没有收到启动命令，请再试一次。 没有扣积分。")
        await screenshots.take(page, "laundry-not-started")
        account = room.ledger.account(PSEUDONYMS.of_card(CARD))
        assert account is not None and account.balance == 20
        await page.click("#laundry-done-ok")

        # A paid wash that faults at once: her next look at the machine says the points came back.
        started = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": 3, "program": 1})
        assert (started.body["outcome"], started.body["points_charged"]) == ("started", 5)
        sim.drain_error(3)
        await wait_until(lambda: len(room.ledger.refunds()) == 1, what="the refund")
        await page.click("#go-laundry")
        await expect(page.locator("#machine-3")).to_have_text(
            "3号洗衣机故障：排水故障，请联系工作人员 刚才洗衣没有完成，5 积分已经退还。", timeout=SLOW
        )
        await screenshots.take(page, "laundry-refunded")
        await page.click("#language")
        await expect(page.locator("#machine-3")).to_contain_text("The last wash did not finish: 5 points returned.")
        account = room.ledger.account(PSEUDONYMS.of_card(CARD))
        assert account is not None and account.balance == 20
