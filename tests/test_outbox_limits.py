"""The kiosk at its limits (issue 23): what a person was told is kept over the budget, the
outbox's files stay inside it on a small real filesystem, a full disk is logged once per
condition and a clean stop on it loses nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent.settings import OutboxSettings
from tests.kiosk_support import acall, kiosk_settings
from tests.support import running_agent, wait_until

CHECK_INS = 90  # and as many check-outs: 180 events a person was told about


@pytest.mark.asyncio
@pytest.mark.parametrize("bridge_database", ["sqlite"], indirect=True)
async def test_confirmed_check_ins_and_outs_are_never_dropped_over_the_budget(
    tmp_path: Path, running_broker: Any, bridge_factory: Any
) -> None:
    # A budget of about 20 records, telemetry every 0.2 s filling it, and no bridge yet.
    settings = kiosk_settings(tmp_path, running_broker, screen={"identify_per_minute": 1000}).model_copy(update={
        "outbox": OutboxSettings(budget_mb=0.01), "telemetry_every_s": 0.2, "resend_max_s": 2.0,
    })
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        answers = []
        for rider in range(CHECK_INS):
            answers.append((await acall(url, "POST", "/api/relay/checkin", {"qr": f"RIDER-{rider}"})).body["outcome"])
        for rider in range(CHECK_INS):
            answers.append((await acall(url, "POST", "/api/relay/checkout", {"qr": f"RIDER-{rider}"})).body["outcome"])
        assert answers == ["checked_in"] * CHECK_INS + ["checked_out"] * CHECK_INS
        assert agent.outbox is not None and agent.outbox.used_bytes > 10 * settings.outbox.budget_mb * 1024 * 1024 / 2
        bridge = bridge_factory(running_broker)

        def relay_events() -> list[Any]:
            return [e for e in bridge.events() if e.type.startswith("relay_")]

        await wait_until(lambda: len(relay_events()) >= 2 * CHECK_INS, timeout=60, what="every check-in and out stored")
        await wait_until(lambda: not agent.outbox.depth()[0][0], timeout=30, what="the bridge's acks")
    stored = relay_events()
    assert len(stored) == 2 * CHECK_INS
    visits = {json.dumps(e.payload["visit_id"]) for e in stored}
    assert len(visits) == CHECK_INS
    assert sorted(e.type for e in stored) == ["relay_checkin"] * CHECK_INS + ["relay_checkout"] * CHECK_INS

