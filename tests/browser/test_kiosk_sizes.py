"""Issue 18, item 5: every kiosk screen fits the displays kiosks really have, in a real Chromium
on a real agent: the Raspberry Pi's own 7-inch display (800x480), the common 7-inch panel of
1024x600, the 10-inch 1280x800 and the Pi Touch Display 2 (1280x720). On each screen, in
Chinese and in English:

- nothing scrolls (document.scrollingElement no larger than the window, either way), and no
  control or text lies outside the window;
- every visible control (button, input) is at least 60x60 CSS px: the MIIT 适老化 design rules
  for apps ask 60x60 dp for a tap target (WCAG 2.2 asks 24 px at AA, 2.5.8, and 44 at AAA, 2.5.5);
- every visible text is at least 18 px: the same rules ask 18 dp for main text.

The screens are reached as a person reaches them: a wrong card number (its error shown), the
cuff waiting and inflating, a very high result with two flags, the relay station with a
refused number, the laundry room with its eight machines, a refused card, the price, started."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit, MeasurementStatus
from drivers.ble.simulated import simulated_backend
from tests.browser.conftest import Screenshots
from tests.browser.test_kiosk_screen import CARD, SLOW, open_kiosk, tap_keys
from tests.kiosk_support import PIN, acall, button_cuff, kiosk_settings
from tests.support import CUFF_ADDRESS, running_agent, wait_until

SIZES = [(800, 480), (1024, 600), (1280, 800), (1280, 720)]  # the last: the Pi Touch Display 2
# The longest result the screen can show: the longest category and two flags.
VERY_HIGH_TWO_FLAGS = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG,
    systolic=186.0,
    diastolic=112.0,
    mean_arterial_pressure=137.0,
    timestamp=datetime(2026, 11, 25, 9, 30),
    pulse_rate=104.0,
    status=(MeasurementStatus.BODY_MOVEMENT, MeasurementStatus.IRREGULAR_PULSE),
)
# Only these go to docs/screenshots/ (DOORSTEP_SCREENSHOTS=1): one of each kind at the Pi's size.
FOR_THE_DOCS = {"800x480-home", "800x480-bp-identify", "800x480-bp-measuring", "800x480-bp-result",
                "800x480-relay-who", "800x480-laundry", "1024x600-bp-result"}

# What a screen must satisfy, measured by the browser itself. A control or a text is "visible"
# as the browser judges it (checkVisibility): the hidden screens do not count.
MEASURE = """() => {
  const TARGET = 60, TEXT = 18, SLACK = 0.01;
  const problems = [];
  const page = document.scrollingElement;
  if (page.scrollHeight > innerHeight) problems.push(`scrolls down: ${page.scrollHeight} px for a ${innerHeight} px window`);
  if (page.scrollWidth > innerWidth) problems.push(`scrolls sideways: ${page.scrollWidth} px for a ${innerWidth} px window`);
  const shown = (element) => element.checkVisibility({ opacityProperty: true, visibilityProperty: true });
  const outside = (r) => r.left < -SLACK || r.top < -SLACK || r.right > innerWidth + SLACK || r.bottom > innerHeight + SLACK;
  const box = (r) => `${Math.round(r.width)}x${Math.round(r.height)} at ${Math.round(r.left)},${Math.round(r.top)}`;
  for (const control of document.querySelectorAll("button, a[href], input, select, textarea, [role=button]")) {
    if (!shown(control)) continue;
    const r = control.getBoundingClientRect();
    const name = control.id || control.textContent.trim().slice(0, 24);
    if (r.width + SLACK < TARGET || r.height + SLACK < TARGET) problems.push(`control "${name}" is ${box(r)}, under ${TARGET}x${TARGET}`);
    if (outside(r)) problems.push(`control "${name}" is off the window: ${box(r)}`);
    if (control.tagName === "INPUT" && parseFloat(getComputedStyle(control).fontSize) < TEXT) problems.push(`input "${name}" types under ${TEXT} px`);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    if (!text || !shown(node.parentElement)) continue;
    const size = parseFloat(getComputedStyle(node.parentElement).fontSize);
    if (size < TEXT) problems.push(`text "${text.slice(0, 24)}" is ${size} px`);
    const range = document.createRange();
    range.selectNodeContents(node);
    const r = range.getBoundingClientRect();
    if (outside(r)) problems.push(`text "${text.slice(0, 24)}" is off the window: ${box(r)}`);
  }
  return problems;
}"""


class Fit:
    """Measures each screen in both languages, keeps every problem, takes the screenshots."""

    def __init__(self, page: Page, size: str, screenshots: Screenshots, *, speaks: bool = False) -> None:
        """`speaks`: the kiosk has screen.speak_results on, so its top bar has "say it again" too."""
        self.page, self.size, self.screenshots, self.speaks = page, size, screenshots, speaks
        self.problems: list[str] = []

    async def check(self, screen: str, *, english: tuple[str, str] | None = None, retry: str | None = None) -> None:
        """Measures `screen` in Chinese, then in English: `english` is a (selector, text) the
        English screen shows once it has loaded; `retry` a button that shows the screen's error
        again, in English."""
        await self._measure(screen)
        await self.page.click("#language")
        await expect(self.page.locator("html")).to_have_attribute("lang", "en")
        if retry is not None:
            await self.page.click(retry)
        if english is not None:
            await expect(self.page.locator(english[0])).to_contain_text(english[1])
        await self._measure(screen + "-en")
        await self.page.click("#language")
        await expect(self.page.locator("html")).to_have_attribute("lang", "zh-CN")

    async def check_entry(self, screen: str, field: str, wrong: str, english_error: str, right: str) -> None:
        """A number-entry screen: measured empty, then showing the error a wrong number gets, in
        both languages; then the right number is typed and OK pressed."""
        error, ok = self.page.locator(f"#screen-{screen} .error"), f"#screen-{screen} .primary"
        await self.check(screen)
        await tap_keys(self.page, field, wrong)
        await self.page.click(ok)
        await expect(error).to_be_visible()
        await self.check(screen + "-error", english=(f"#screen-{screen} .error", english_error), retry=ok)
        await self.page.fill(f"#{field}", "")
        await tap_keys(self.page, field, right)
        await self.page.click(ok)

    async def _measure(self, screen: str) -> None:
        name = f"{self.size}-{screen}"
        # Issue 18, item 9: help on every screen, in its top bar.
        await expect(self.page.locator("#call-staff")).to_be_visible()
        await expect(self.page.locator("#say-again")).to_be_visible(visible=self.speaks)
        await self.page.evaluate("document.fonts.ready")
        self.problems += [f"{name}: {problem}" for problem in await self.page.evaluate(MEASURE)]
        await self.screenshots.take(self.page, name, docs=name in FOR_THE_DOCS)


@pytest.mark.asyncio
@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_every_screen_fits_without_scrolling_with_large_controls_and_type(
    tmp_path: Path, broker, page: Page, screenshots: Screenshots, width: int, height: int
) -> None:
    await page.set_viewport_size({"width": width, "height": height})
    fit = Fit(page, f"{width}x{height}", screenshots, speaks=True)
    # A slow inflation: the measuring screen is measured while the pressure rises.
    cuff = button_cuff(lambda: [VERY_HIGH_TWO_FLAGS], inflate_steps=60, step_interval=0.2, start_delay=0.3)
    # Speaking: the top bar has all it can have ("say it again" too).
    settings = kiosk_settings(tmp_path, broker, laundry=True, screen={"speak_results": True})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None and agent.laundry is not None, what="the screen serving")
        assert agent.screen is not None and agent.laundry is not None
        room = agent.laundry
        await wait_until(lambda: all(m.status is not None for m in room.machines()), what="every machine read")
        opened = await acall(agent.screen.url, "PUT", "/api/admin/residents",
                             {"card_number": CARD, "birth_year": 1958, "balance": 20}, headers={"x-technician-pin": PIN})
        assert opened.status == 200
        await open_kiosk(page, agent.screen.url)
        await fit.check("home")
        # The answer to "call staff", over the screen, in both languages.
        await page.click("#call-staff")
        await expect(page.locator("#help-message")).to_have_text("已通知工作人员，请稍候")
        await fit.check("home-staff-called")

        # Blood pressure: who, the cuff waiting, the cuff inflating, the result.
        await page.click("#go-bp")
        await fit.check_entry("bp-identify", "bp-card", "12", "not right", CARD)
        await expect(page.locator("#bp-whose")).to_have_text("结果将记入您的健康档案。")
        await fit.check("bp-cuff")
        cuff.press_start()
        await expect(page.locator("#bp-cuff-title")).to_have_text("正在测量，请保持不动", timeout=SLOW)
        await fit.check("bp-measuring")
        await expect(page.locator("#screen-bp-result")).to_be_visible(timeout=SLOW)
        await expect(page.locator("#bp-flags li")).to_have_count(2)
        await expect(page.locator("#bp-category")).to_have_text("很高：请休息5分钟后再测，并尽快就医")
        await fit.check("bp-result")
        await page.click("#bp-done")

        # The relay station: the station, who (a refused number), done.
        await page.click("#go-relay")
        await expect(page.locator("#relay-offers li")).to_have_count(5)
        await fit.check("relay", english=("#relay-offers", "Drinking water"))
        await page.click("#relay-in")
        await fit.check_entry("relay-who", "relay-digits", "12", "4 digits", "4821")
        await expect(page.locator("#relay-done-title")).to_have_text("签到成功，欢迎休息！")
        await fit.check("relay-done")
        await page.click("#relay-done-ok")

        # The laundry room: the machines, a program, the card (a refused one), the price, started.
        await page.click("#go-laundry")
        await expect(page.locator("#machine-5")).to_contain_text("故障")
        await expect(page.locator(".machine")).to_have_count(8)
        await fit.check("laundry", english=("#machine-2", "Washer 2"))
        await page.click("#machine-2")
        await fit.check("laundry-program")
        await page.click("#program-2")
        await fit.check_entry("laundry-card", "laundry-card", "110105196002021111", "No points account", CARD)
        await expect(page.locator("#laundry-confirm-price")).to_have_text("需要 3 积分，您现在有 20 积分。")
        await fit.check("laundry-confirm")
        await page.click("#laundry-start")
        await expect(page.locator("#laundry-done-title")).to_have_text("已经启动！", timeout=SLOW)
        await fit.check("laundry-done")

    assert not fit.problems, "\n".join(fit.problems)
