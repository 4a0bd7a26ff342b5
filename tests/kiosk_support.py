"""What the kiosk-screen tests share: an agent set up as a kiosk with every screen, a cuff
whose start button the test presses, and plain HTTP calls to the screen's API."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from broker_admin.mosquitto import MosquittoProcess
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit, MeasurementStatus
from drivers.ble.simulated import ButtonCuff
from contract.pseudonym import Pseudonyms
from edge_agent.settings import AgentSettings, LaundrySettings, RelaySettings, ScreenSettings
from tests.support import CUFF_ADDRESS, agent_settings

SECRET = "kiosk-test-secret-0123456789abcdef0123"
PIN = "135790"
PSEUDONYMS = Pseudonyms(SECRET.encode())
ROOM = {unit: "washer-retrofit-a" for unit in range(1, 7)} | {7: "dryer-retrofit-b", 8: "dryer-retrofit-b"}

# What the test resident's cuff measures: high (>= 140 systolic), and she moved.
HIGH_AND_MOVED = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG,
    systolic=148.0,
    diastolic=92.0,
    mean_arterial_pressure=111.0,
    timestamp=datetime(2026, 11, 25, 9, 30),
    pulse_rate=74.0,
    status=(MeasurementStatus.BODY_MOVEMENT,),
)


def button_cuff(measurements: Callable[[], list[BloodPressureMeasurement]] | None = None, **options: Any) -> ButtonCuff:
    return ButtonCuff(address=CUFF_ADDRESS, measurements=measurements or (lambda: [HIGH_AND_MOVED]), **options)


def kiosk_settings(
    tmp_path: Path, broker: MosquittoProcess, *, laundry: bool = False, screen: dict[str, Any] | None = None,
    secret: str | None = SECRET,
) -> AgentSettings:
    """A kiosk with a cuff polled often (it is found only once its button is pressed), a relay
    station, a screen on a free loopback port with a technician PIN, and optionally the
    simulated laundry room."""
    settings = agent_settings(tmp_path, broker)
    cuff = settings.devices[0].model_copy(update={"reconnect_interval_s": 0.2, "idle_timeout_s": 0.5})
    return settings.model_copy(
        update={
            "devices": [cuff],
            "resident_secret": None if secret is None else SecretStr(secret),
            "relay": RelaySettings(),
            "screen": ScreenSettings(**{"port": 0, "technician_pin": SecretStr(PIN), **(screen or {})}),
            "laundry": LaundrySettings(port="simulated", machines=ROOM) if laundry else None,
        }
    )


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def call(base_url: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None, as_page: bool = True) -> Answer:
    """A request to the screen's API. `as_page`: with what the kiosk's own page sends (see
    `page_headers`), so the test reaches the route behind the same-origin guard."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"content-type": "application/json", **(page_headers(base_url) if as_page else {}), **(headers or {})}
    request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Answer(response.status, json.loads(response.read() or b"null"), dict(response.headers))
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, json.loads(error.read() or b"null"), dict(error.headers))


def origin_of(base_url: str) -> str:
    parts = urllib.parse.urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def page_headers(base_url: str) -> dict[str, str]:
    """What Chromium sends with a request of the kiosk's own page: its Origin and Sec-Fetch-Site
    same-origin, and the page token kiosk.js fetched at load (GET /api/page-token)."""
    headers = {"origin": origin_of(base_url), "sec-fetch-site": "same-origin"}
    fetched = call(base_url, "GET", "/api/page-token", headers=headers, as_page=False)
    if fetched.status == 200:
        headers["x-page-token"] = fetched.body["token"]
    return headers


async def acall(base_url: str, method: str, path: str, body: Any = None, **options: Any) -> Answer:
    """`call` off the event loop: the agent serving it runs on this loop."""
    return await asyncio.to_thread(call, base_url, method, path, body, **options)
