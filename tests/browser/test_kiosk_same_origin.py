"""Issue 16, finding 5, in a real Chromium: a page of another origin in the kiosk's browser
cannot act on the kiosk's local API, nor can a host name rebound to 127.0.0.1, while the
kiosk's own page still does everything (here: identify, measure, and the idle reset's cancel).

The other origin is a second tiny HTTP server on another loopback port: the same *site* as the
kiosk (ports do not count for a site), which is the case a site-level check would let through.
DNS rebinding is Chromium's own resolver told that a name means 127.0.0.1 (--host-resolver-rules),
which is what a rebinding DNS server achieves."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from contract.envelope import Envelope
from drivers.ble.simulated import simulated_backend
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.browser.test_kiosk_screen import CARD, SLOW, open_kiosk, tap_keys
from tests.kiosk_support import PSEUDONYMS, button_cuff, kiosk_settings
from tests.support import CUFF_ADDRESS, running_agent, wait_until

REBOUND = "rebound.test"  # a name the attacker's DNS first pointed at its own server


class _OtherOriginPage(BaseHTTPRequestHandler):
    """Any page at all: what matters is its origin, not what it shows."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"<!doctype html><title>a leaflet</title><p>Healthy eating for seniors</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        pass


@pytest.fixture
def other_origin() -> Iterator[str]:
    """http://127.0.0.1:<another port>/, served from a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtherOriginPage)
    thread = threading.Thread(target=server.serve_forever, name="other origin", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest_asyncio.fixture
async def rebinding_browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium whose resolver says rebound.test is 127.0.0.1. HTTPS upgrades are off so that
    Chromium asks for http://rebound.test as the page named it (127.0.0.1 is exempt anyway)."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-rebinding"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",
                  "--disable-features=HttpsUpgrades"],
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="zh-CN",
        )
        try:
            yield context
        finally:
            await context.close()


async def identify(page: Page) -> None:
    await page.click("#go-bp")
    await tap_keys(page, "bp-card", CARD)
    await page.click("#bp-card-ok")
    await expect(page.locator("#bp-whose")).to_have_text("结果将记入您的健康档案。")


@pytest.mark.asyncio
async def test_a_page_of_another_origin_cannot_cancel_a_residents_measurement(
    tmp_path: Path, broker, browser: BrowserContext, page: Page, other_origin: str
) -> None:
    cuff = button_cuff()
    async with running_agent(kiosk_settings(tmp_path, broker), {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        kiosk = agent.screen.url
        await open_kiosk(page, kiosk)
        await identify(page)
        assert agent.desk.snapshot() == {"state": "waiting", "record": True}

        # Another tab of the same browser, on another origin, runs the finding's fetch, and the
        # same with a body (text/plain: still a "simple" request, no preflight) that would
        # switch her measurement to "no record". A no-cors fetch resolves (opaque) once the
        # server has answered, whatever it answered: so the requests were sent and judged.
        leaflet = await browser.new_page()
        await leaflet.goto(other_origin)
        types = await leaflet.evaluate(
            """async (kiosk) => [
                (await fetch(kiosk + 'api/bp/cancel', {method: 'POST', mode: 'no-cors'})).type,
                (await fetch(kiosk + 'api/bp/begin', {method: 'POST', mode: 'no-cors',
                                                      body: JSON.stringify({anonymous: true})})).type,
            ]""",
            kiosk,
        )
        assert types == ["opaque", "opaque"]
        # A cors-mode read of the token is refused by the browser (no CORS header) and by us.
        stolen = await leaflet.evaluate(
            "async (kiosk) => { try { return await (await fetch(kiosk + 'api/page-token')).text(); }"
            " catch (error) { return 'refused: ' + error.name; } }",
            kiosk,
        )
        assert stolen.startswith("refused")
        assert agent.desk.snapshot() == {"state": "waiting", "record": True}

        # Her reading goes on her record, and the kiosk's page says so.
        cuff.press_start()
        await expect(page.locator("#bp-saved")).to_have_text("✔ 已保存到您的健康档案", timeout=SLOW)
        assert agent.outbox is not None
        [record] = [r for r in agent.outbox.due(100) if "/readings/" in r.topic]
        payload = Envelope.model_validate_json(record.body).payload
        assert payload is not None and payload["subject"] == PSEUDONYMS.of_card(CARD)
        await leaflet.close()


@pytest.mark.asyncio
async def test_a_host_name_rebound_to_the_kiosk_gets_nothing(
    tmp_path: Path, broker, rebinding_browser: BrowserContext
) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        agent.desk.begin(PSEUDONYMS.of_card(CARD))  # a resident identified at the kiosk
        tab = await rebinding_browser.new_page()
        # To Chromium this page and the API are one origin: only the Host header tells them apart.
        answer = await tab.goto(f"http://{REBOUND}:{agent.screen.port}/")
        assert answer is not None and answer.status == 421
        cancelled = await tab.evaluate(
            """async () => {
                const response = await fetch('/api/bp/cancel', {method: 'POST', headers: {'content-type': 'application/json'}});
                return [response.status, (await response.json()).error];
            }"""
        )
        assert cancelled == [421, "foreign_host"]
        assert agent.desk.snapshot() == {"state": "waiting", "record": True}


@pytest.mark.asyncio
async def test_the_idle_reset_still_cancels_the_desk_from_the_kiosks_own_page(
    tmp_path: Path, broker, page: Page
) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker, screen={"idle_reset_s": 3})) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await open_kiosk(page, agent.screen.url)
        await identify(page)
        assert agent.desk.snapshot() == {"state": "waiting", "record": True}
        # Nobody touches the screen: it goes home and forgets her, through the guarded API.
        await expect(page.locator("#screen-home")).to_be_visible(timeout=SLOW)
        await wait_until(lambda: agent.desk.snapshot() == {"state": "idle", "record": False}, what="the desk idle")


@pytest.mark.asyncio
async def test_a_page_loaded_before_the_agent_restarted_gets_the_new_token_and_goes_on(
    tmp_path: Path, broker, page: Page
) -> None:
    settings = kiosk_settings(tmp_path, broker)
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        port, url = agent.screen.port, agent.screen.url
        await open_kiosk(page, url)
    # The same port, a new token: the page is not reloaded (a kiosk's page stays up for days).
    restarted = settings.model_copy(update={"screen": settings.screen.model_copy(update={"port": port})})
    async with running_agent(restarted) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving again")
        await page.click("#go-bp")
        await page.click("#bp-anonymous")
        await expect(page.locator("#bp-whose")).to_have_text("结果不记入个人档案。", timeout=SLOW)
        assert agent.desk.snapshot() == {"state": "waiting", "record": False}
