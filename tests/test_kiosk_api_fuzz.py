"""Schemathesis against the kiosk's local API (its own OpenAPI document; tests/api_fuzz.py), on
a real agent with the simulated laundry room and no network: no request, however malformed,
gets a 5xx or an error that is not the API's JSON. As the technician (the PIN), so the admin
endpoints are reached too, and with what the kiosk's own page sends (edge_agent/screen/
same_origin.py), so every route is reached behind the same-origin guard."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from broker_admin.mosquitto import MosquittoProcess
from tests.api_fuzz import fuzz_api
from tests.bluez_mock import bluez
from tests.kiosk_support import PIN, kiosk_settings, page_headers
from tests.support import running_agent, wait_until

EXAMPLES = int(os.environ.get("DOORSTEP_FUZZ_EXAMPLES", "25"))


@pytest.mark.asyncio
@pytest.mark.timeout(600)
async def test_no_request_to_the_kiosk_gets_a_server_error(
    tmp_path: Path, broker: MosquittoProcess, system_bus: str
) -> None:
    settings = kiosk_settings(tmp_path, broker, laundry=True)  # the broker is never started: offline
    # A kiosk with its Bluetooth adapter (BlueZ mocked, tests/bluez_mock.py), as every health
    # station has: the pairing screen's scans are short, so the fuzzer's many cost little.
    async with bluez(system_bus) as mock, running_agent(settings) as agent:
        await mock.add_adapter()
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None and agent.pairing is not None
        agent.pairing.scan_s = 0.01
        # The token as the page gets it, over the screen's socket. In process the app is reached
        # as http://testserver (port 80): the page's headers name 127.0.0.1, one of its own names.
        token = (await asyncio.to_thread(page_headers, agent.screen.url))["x-page-token"]
        page = {"Host": "127.0.0.1", "Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin",
                "X-Page-Token": token}
        report = await asyncio.to_thread(
            fuzz_api, agent.screen.app, PIN, examples_per_operation=EXAMPLES,
            credentials=lambda pin: {"X-Technician-Pin": pin},
            # A stream of server-sent events does not end: nothing for a fuzzer to judge.
            skip=lambda _method, path: path.endswith("/events"),
            schema_path="/api/openapi.json", headers=page,
        )
    print(f"\nkiosk API: {report.summary()}")
    assert report.examples > 0 and len(report.operations) >= 10
    # Every operation was reached: the guard's refusals (400 no_host, 403 from the page checks,
    # 415 json_only, 421) are not all it answered.
    guard = {400, 403, 415, 421}
    unreached = sorted(o for o in report.operations if not any(
        s not in guard for (name, s), count in report.answers.items() if name == o and count))
    assert not unreached, f"only refused by the same-origin guard: {unreached}; {report.answers}"
