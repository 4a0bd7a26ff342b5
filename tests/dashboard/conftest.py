"""Real parts for the dashboard's tests: a bridge worker (SQLite and PostgreSQL, from
bridge_factory) serving the dashboard with uvicorn, a real Mosquitto, real `doorstep agent`
processes, and Debian's Chromium driven by Playwright (never a browser of Playwright's own).

Self-contained on purpose: the kiosk screen's browser tests (tests/browser/) keep their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from pydantic import SecretStr
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlmodel import Session

from cloud_bridge.access import Role
from cloud_bridge.accounts import add_user
from broker_admin.mosquitto import MosquittoProcess
from contract.topics import QOS_RELIABLE
from runtime.mqtt import make_client
from edge_agent.settings import AgentSettings
from tests.bridge.wire_kiosk import WireKiosk
from tests.support import Bridge, ServedApp, agent_settings, broker_settings, wait_for

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root (no sandbox), and quiet: nothing of Chromium's own reaches the network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
PASSWORD = "dashboard-test-password"
# Where the site-bound people work, and the kiosk a real agent plays.
SITE = "pudong-lujiazui"
KIOSK = "kiosk-07"
# The people of the tests: username -> (role, site).
PEOPLE: dict[str, tuple[Role, str | None]] = {
    "tech": (Role.TECHNICIAN, None),
    "staff": (Role.STATION_STAFF, SITE),
    "doctor": (Role.DOCTOR, SITE),
    "viewer": (Role.READ_ONLY, None),
}
# The site's resident_secret, which the bridge holds too (resident_keys) to find residents by card.
RESIDENT_KEY = "dashboard-test-resident-key-of-32-characters"
# Big enough for the fleet table without scrolling in a screenshot.
VIEWPORT = {"width": 1440, "height": 1000}
# The dashboard refreshes this often in the tests (the setting's lowest value).
REFRESH_S = 1


if not CHROMIUM.exists():  # pragma: no cover - ./dev test installs it
    pytest.skip("Debian's chromium is not installed (./dev test installs it)", allow_module_level=True)


@dataclass
class Dashboard:
    """A bridge worker serving the dashboard, and the people who may log in to it."""

    bridge: Bridge
    api: ServedApp  # the same app, called with a technician's token by the tests themselves

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}/dashboard/"

    def log_in(self, page: Page, username: str, fragment: str = "") -> None:
        page.goto(self.url + fragment)
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("#login button[type=submit]")
        expect(page.get_by_test_id("who")).to_contain_text(username)


@pytest.fixture
def dashboard(running_broker: MosquittoProcess, bridge_factory: Callable[..., Bridge]) -> Iterator[Dashboard]:
    bridge = bridge_factory(running_broker, dashboard_refresh_s=REFRESH_S, resident_keys={SITE: SecretStr(RESIDENT_KEY)})
    with Session(bridge.engine) as session:
        for username, (role, site) in PEOPLE.items():
            add_user(session, username=username, role=role, site=site, password=PASSWORD, now=datetime.now(UTC))
        session.commit()
    with bridge.api("technician") as api:
        wait_for(lambda: bridge.ingest.connected, what="the bridge connected to the broker")
        yield Dashboard(bridge, api)


@dataclass
class BrowserErrors:
    """Script errors on any page: a dashboard that throws is a failed test, even if the
    assertions happened to pass. (An API answer of 401, 403 or 404 is one the page handles;
    Chromium logs each as "Failed to load resource", which is not counted.)"""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", lambda message: self.errors.append(f"console {message.type}: {message.text}")
                if message.type == "error" and not message.text.startswith("Failed to load resource") else None)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One Chromium per test module: launching it is most of a short test's time. Each test
    still gets a context of its own (browser below), which shares no cookies, storage or cache
    with any other."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (an empty profile), Chinese by default as a kiosk's technician
    would have it."""
    errors = BrowserErrors()
    context = chromium.new_context(
        locale="zh-CN", timezone_id="Asia/Shanghai", viewport=VIEWPORT,  # type: ignore[arg-type]
    )
    context.set_default_timeout(15_000)
    context.on("page", errors.watch)
    try:
        yield context
    finally:
        context.close()
    assert errors.errors == []


@pytest.fixture
def page(browser: BrowserContext) -> Page:
    return browser.pages[0] if browser.pages else browser.new_page()


@dataclass
class AgentProcess:
    """`doorstep agent --config FILE` as its own process, as on a Pi."""

    settings: AgentSettings
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_agent(tmp_path: Path, running_broker: MosquittoProcess) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(**overrides: Any) -> AgentProcess:
        settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
            update={"site": SITE, "kiosk": KIOSK, **overrides})
        config = tmp_path / "agent.yaml"
        config.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
        with open(tmp_path / "agent.log", "ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen([sys.executable, "-m", "doorstep", "agent", "--config", str(config)],
                                       stdout=subprocess.DEVNULL, stderr=log)
        started.append(AgentProcess(settings, process))
        return started[-1]

    yield start
    for agent in started:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()


@dataclass
class WirePublisher:
    """Publishes what kiosks send (built with the contract's own models) to the real broker."""

    client: mqtt.Client

    def send(self, kiosk: WireKiosk, *messages: Any, retain: bool = False) -> None:
        for message in messages:
            self.client.publish(message.topic, message.body, qos=QOS_RELIABLE, retain=retain).wait_for_publish(5)


@pytest.fixture
def wire(running_broker: MosquittoProcess) -> Iterator[WirePublisher]:
    client = make_client("dashboard-test-kiosks", broker_settings(running_broker))
    client.connect(running_broker.host, running_broker.port)
    client.loop_start()
    try:
        yield WirePublisher(client)
    finally:
        client.disconnect()
        client.loop_stop()
