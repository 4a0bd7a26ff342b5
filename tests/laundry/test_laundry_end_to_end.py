"""The laundry room through the whole product: the agent (with its real bus on a pty) saves
events, Mosquitto carries them, the bridge stores each once and serves them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from broker_admin.mosquitto import MosquittoProcess
from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, default_room
from drivers.laundry.vend import VendState
from edge_agent.store.outbox import RecordState
from tests.laundry.test_laundry_room import LINE_BAUD, RESIDENT, settings_for
from tests.support import agent_settings, running_agent, wait_until
from tests.test_end_to_end import cuff_backends


@pytest.mark.asyncio
async def test_laundry_events_reach_the_bridge_once_and_are_served(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory
) -> None:
    bridge = bridge_factory(running_broker)
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, default_room(), baudrate=LINE_BAUD, tick_interval_s=0.1,
                                   seconds_per_tick=200)
        await sim.start()
        try:
            settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
                update={"laundry": settings_for(link.driver_path)}
            )
            async with running_agent(settings) as agent:
                await wait_until(lambda: agent.laundry is not None, what="the laundry room open")
                room = agent.laundry
                assert room is not None
                await wait_until(lambda: len(room.machines()) == 8 and all(m.status for m in room.machines()))
                room.ledger.open_account(RESIDENT, balance=10, birth_year=1970)
                result = await room.start_program(2, program=2, subject=RESIDENT)
                assert result.outcome == "started"
                tx = result.transaction_id
                assert tx is not None
                await wait_until(lambda: room.ledger.get(tx).state is VendState.AWAITING_PICKUP)  # type: ignore[union-attr]
                sim.open_door(2)
                await wait_until(lambda: room.ledger.get(tx).state is VendState.AVAILABLE)  # type: ignore[union-attr]
                await wait_until(
                    lambda: agent.outbox.counts()[RecordState.PENDING] + agent.outbox.counts()[RecordState.PUBLISHED] == 0,
                    what="every event confirmed by the bridge",
                )
                await asyncio.sleep(1.5)  # past the ack timeout: nothing arrives twice
                saved = sum(agent.outbox.counts().values())
        finally:
            await sim.stop()
    events = bridge.events()
    assert len(events) == saved == len({e.message_id for e in events})
    vend = sorted((e for e in events if e.type == "laundry_vend"), key=lambda e: e.seq)
    assert [e.payload["outcome"] for e in vend] == ["started", "cycle_done", "collected"]
    assert vend[0].payload["points_charged"] == 3 and vend[0].subject == RESIDENT
    assert vend[0].device_address == "modbus-unit-2" and vend[0].device_model == "washer-retrofit-a"
    machines = [e for e in events if e.type == "laundry_machine"]
    assert {e.payload["unit"] for e in machines} == set(range(1, 9))
    with bridge.api() as api:
        page = api.get("/api/v1/events", type="laundry_vend", kiosk=settings.kiosk)
        assert page.status == 200 and page.body["total"] == 3
        assert [item["payload"]["outcome"] for item in page.body["items"]] == ["collected", "cycle_done", "started"]
        assert api.get("/api/v1/events", type="no_such_type").status == 422


@pytest.mark.asyncio
async def test_an_unplugged_laundry_adapter_does_not_stop_the_health_kiosk(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = bridge_factory(running_broker)
    settings = agent_settings(tmp_path, running_broker).model_copy(
        update={"laundry": settings_for(str(tmp_path / "no-such-tty"))}
    )
    with caplog.at_level(logging.ERROR, logger="edge_agent.agent"):
        async with running_agent(settings, cuff_backends()) as agent:
            await wait_until(lambda: bridge.reading_count() == 1, what="the cuff's reading stored")
            assert agent.laundry is None
    assert any("laundry room on" in r.getMessage() and "unavailable" in r.getMessage() for r in caplog.records)
