"""A real browser for the kiosk screen's tests: Debian's Chromium (/usr/bin/chromium, installed
by ./dev), driven by Playwright for Python. Nothing is downloaded: `playwright install` is never
run; Playwright launches the system's Chromium through `executable_path`.

Screenshots go to the test's own directory, and also to docs/screenshots/ when
DOORSTEP_SCREENSHOTS=1 (how the README's images are refreshed)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root (no sandbox), and nothing that reaches the network on its own: the kiosk
# must work offline, so the test browser must not depend on it either.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The Raspberry Pi Touch Display 2 is 1280x720 landscape; 1280x800 is the common 10" kiosk panel.
VIEWPORT = {"width": 1280, "height": 800}
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest_asyncio.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium with a fresh user data directory for each test."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: ./dev test installs Debian's chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            yield context
        finally:
            await context.close()


@pytest_asyncio.fixture
async def page(browser: BrowserContext) -> AsyncIterator[Page]:
    tab = await browser.new_page()
    yield tab
    await tab.close()


class Screenshots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.to_docs = os.environ.get("DOORSTEP_SCREENSHOTS") == "1"

    async def take(self, page: Page, name: str, *, docs: bool = True) -> Path:
        """`docs`: also one for docs/screenshots/ (when DOORSTEP_SCREENSHOTS=1)."""
        path = self.directory / f"kiosk-{name}.png"
        await page.screenshot(path=str(path))
        if self.to_docs and docs:
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (DOCS_SCREENSHOTS / path.name).write_bytes(path.read_bytes())
        return path


@pytest.fixture
def screenshots(tmp_path: Path) -> Screenshots:
    return Screenshots(tmp_path)
