"""Issue 18, item 9, in a real Chromium on a real agent: "再说一遍 / Say it again" and
"呼叫工作人员 / Call staff" in the top bar of every screen (test_kiosk_sizes.py measures them on
each); say it again says the screen's own words, or on the result screen the result; call staff
is answered in words, once, and a second press is told staff are already called. The
loudspeaker is the fake `aplay` of tests/test_kiosk_help.py: the only thing not real here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from drivers.ble.simulated import simulated_backend
from tests.browser.conftest import Screenshots
from tests.browser.test_kiosk_screen import SLOW, open_kiosk
from tests.kiosk_support import button_cuff, kiosk_settings
from tests.support import CUFF_ADDRESS, running_agent, wait_until
from tests.test_kiosk_help import fake_aplay, played, staff_calls

__all__ = ["fake_aplay"]  # the fixture, shared


async def say_again(page: Page, loudspeaker: Path) -> dict:  # type: ignore[type-arg]
    """Press "再说一遍": what the page asked the agent to say, and what the agent said, once
    the loudspeaker has played it (a new saying cuts one still playing short)."""
    before = len(played(loudspeaker))
    async with page.expect_response("**/api/help/say-again") as answer:
        await page.click("#say-again")
    response = await answer.value
    assert response.ok, await response.text()
    await wait_until(lambda: len(played(loudspeaker)) == before + 1, what="the words played")
    return {"asked": json.loads(response.request.post_data or "{}"), "said": (await response.json())["words"]}


@pytest.mark.asyncio
async def test_say_it_again_says_each_screens_words_and_the_result(
    tmp_path: Path, broker, page: Page, fake_aplay: Path, screenshots: Screenshots
) -> None:
    cuff = button_cuff(inflate_steps=3, step_interval=0.1, start_delay=0.2)
    settings = kiosk_settings(tmp_path, broker, screen={"speak_results": True})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await open_kiosk(page, agent.screen.url)
        await expect(page.locator("#say-again")).to_have_text("再说一遍")
        assert len(played(fake_aplay)) == 1  # the start-up check's silence
        assert (await say_again(page, fake_aplay))["said"] == "您好！请选择服务。"

        await page.click("#go-bp")
        said = (await say_again(page, fake_aplay))["said"]
        assert said.startswith("请刷卡，或输入居民卡号。输入后按“确定”。")
        await page.click("#bp-anonymous")
        await expect(page.locator("#bp-cuff-title")).to_have_text("请戴好袖带，按血压计上的“开始”键")
        # The instruction, and whose the reading will be.
        assert (await say_again(page, fake_aplay))["said"] == "请戴好袖带，按血压计上的“开始”键。袖带绑在左上臂，与心脏同高。坐好，不要说话。结果不记入个人档案。"

        cuff.press_start()
        await expect(page.locator("#screen-bp-result")).to_be_visible(timeout=SLOW)
        await wait_until(lambda: len(played(fake_aplay)) == 5, what="the result said when it came")
        again = await say_again(page, fake_aplay)
        # The result, as the agent said it when it came: the same words again.
        assert again["asked"] == {"result": True, "language": "zh-CN"}
        assert again["said"] == agent.speaker.last_words and again["said"].startswith("高压 148，低压 92")  # type: ignore[union-attr]
        await screenshots.take(page, "say-again-result")

        await page.click("#language")
        await page.click("#bp-done")
        english = await say_again(page, fake_aplay)
        assert english["asked"] == {"words": "Hello! Please choose.", "language": "en"}
        # Five sayings again, the result said when it came, and the start-up check's silence.
        assert len(played(fake_aplay)) == 7
        assert (await agent.snapshot()).speech_ok is True


@pytest.mark.asyncio
async def test_call_staff_is_answered_in_words_and_a_second_press_is_told_they_are_coming(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots
) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker, laundry=True)) as agent:  # does not speak
        await wait_until(lambda: agent.screen is not None and agent.laundry is not None, what="the screen serving")
        assert agent.screen is not None
        await open_kiosk(page, agent.screen.url)
        await expect(page.locator("#say-again")).to_be_hidden()  # a kiosk that does not speak offers no speech
        await page.click("#go-laundry")
        await expect(page.locator(".machine")).to_have_count(8)
        await expect(page.locator("#call-staff")).to_have_text("呼叫工作人员")
        await page.click("#call-staff")
        message = page.locator("#help-message")
        await expect(message).to_have_text("已通知工作人员，请稍候")
        await screenshots.take(page, "staff-called")
        [call] = staff_calls(agent)
        assert call.screen == "laundry"

        await message.click()  # read: out of the way
        await expect(message).to_be_hidden()
        await page.click("#language")
        await expect(page.locator("#call-staff")).to_have_text("Call staff")
        await page.click("#call-staff")
        await expect(message).to_have_text("Staff have already been called and are on their way. Please wait.")
        assert len(staff_calls(agent)) == 1
