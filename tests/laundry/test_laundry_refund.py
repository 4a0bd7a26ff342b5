"""A paid wash that faults before it has really run gets its points back: once, in the book,
across a kill -9 of the kiosk, and told to the cloud through the real broker and bridge."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, select

from broker_admin.mosquitto import MosquittoProcess
from contract.envelope import validate_upstream
from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, default_room
from drivers.laundry.vend import VendState
from edge_agent.laundry import LaundryRoom
from edge_agent.store.outbox import Outbox, OutboxRecord, RecordState
from tests.laundry.test_laundry_room import LINE_BAUD, RESIDENT, TOPICS, settings_for, wait_for
from tests.support import agent_settings, running_agent, wait_until

ROOT = Path(__file__).resolve().parents[2]
WASHER = 3
# Wide enough for two kiosk processes to start within it on a loaded machine.
WINDOW_S = 120.0

# A kiosk process: "start" starts a paid wash and says its transaction; "follow" only watches the
# room and says "refunded" once the book has the refund. Either is then killed with SIGKILL.
_KIOSK = """
import asyncio, sys
from pathlib import Path
from edge_agent.laundry import LaundryRoom
from tests.laundry.test_laundry_room import RESIDENT, TOPICS, Outbox, settings_for

async def main(port: str, path: str, mode: str, window: float) -> None:
    room = LaundryRoom(settings_for(port, refund_if_fault_within_s=window), Outbox(Path(path)), TOPICS)
    await room.start()
    if mode == "start":
        room.ledger.open_account(RESIDENT, balance=10, birth_year=1960)
        while room.bus.status(3) is None:
            await asyncio.sleep(0.02)
        result = await room.start_program(3, program=1, subject=RESIDENT)
        print(result.outcome, result.transaction_id, flush=True)
    else:
        while not room.ledger.refunds():
            await asyncio.sleep(0.01)
        print("refunded", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


async def kiosk_says(port: str, path: Path, mode: str) -> list[str]:
    """Run a kiosk process until its first line, then kill -9 it."""
    kiosk = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KIOSK, port, str(path), mode, str(WINDOW_S),
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )
    assert kiosk.stdout is not None
    try:
        return (await asyncio.wait_for(kiosk.stdout.readline(), 60)).decode().split()
    finally:
        kiosk.kill()  # SIGKILL: nothing of the room's in memory survives
        await kiosk.wait()


def faulted_events(path: Path) -> list[dict[str, object]]:
    outbox = Outbox(path)
    try:
        with Session(outbox._engine) as session:
            rows = session.exec(select(OutboxRecord).where(OutboxRecord.topic == TOPICS.event("laundry_vend"))).all()
    finally:
        outbox.close()
    payloads = []
    for row in rows:
        validate_upstream(row.topic, row.body)
        payloads.append(json.loads(row.body)["payload"])
    return [p for p in payloads if p["outcome"] == "faulted"]


@pytest.mark.asyncio
async def test_an_early_fault_is_refunded_once_across_kill_9s_of_the_kiosk(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, default_room(), baudrate=LINE_BAUD, tick_interval_s=0.1,
                                   seconds_per_tick=1)
        await sim.start()
        try:
            outcome, tx = await kiosk_says(link.driver_path, path, "start")
            assert outcome == "started"
            # The kiosk is dead (charged, IN_USE in the book) when the wash faults.
            sim.drain_error(WASHER)
            # The next kiosk reads the fault and refunds; it is killed the moment the book says so.
            assert await kiosk_says(link.driver_path, path, "follow") == ["refunded"]
            # And the one after it, reading the same fault again, gives nothing back twice.
            outbox = Outbox(path)
            room = LaundryRoom(settings_for(link.driver_path, refund_if_fault_within_s=WINDOW_S), outbox, TOPICS)
            await room.start()
            try:
                await wait_for(lambda: room.bus is not None and room.bus.status(WASHER) is not None)
                await asyncio.sleep(1.0)  # several polls of the faulted machine
                assert room.ledger.get(tx).state is VendState.AWAITING_PICKUP  # type: ignore[union-attr]
                assert [(r.transaction_id, r.points) for r in room.ledger.refunds()] == [(tx, 5)]
                assert room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]
                assert [(c.transaction_id, c.points) for c in room.ledger.charges()] == [(tx, 5)]
                assert [m.points_refunded for m in room.machines() if m.unit == WASHER] == [5]
            finally:
                await room.stop()
                outbox.close()
        finally:
            await sim.stop()
    [faulted] = faulted_events(path)
    assert (faulted["transaction_id"], faulted["points_refunded"]) == (tx, 5)
    assert [c[0] for c in sim.machines[WASHER].executed] == ["start"]


@pytest.mark.asyncio
async def test_a_refund_reaches_the_bridge_once_through_mosquitto(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory
) -> None:
    bridge = bridge_factory(running_broker)
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, default_room(), baudrate=LINE_BAUD, tick_interval_s=0.1,
                                   seconds_per_tick=1)
        await sim.start()
        try:
            settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
                update={"laundry": settings_for(link.driver_path, refund_if_fault_within_s=WINDOW_S)}
            )
            async with running_agent(settings) as agent:
                await wait_until(lambda: agent.laundry is not None, what="the laundry room open")
                room = agent.laundry
                assert room is not None
                await wait_until(lambda: all(m.status for m in room.machines()), what="every machine read")
                room.ledger.open_account(RESIDENT, balance=10, birth_year=1970)
                result = await room.start_program(WASHER, program=1, subject=RESIDENT)
                assert result.outcome == "started" and result.points_charged == 5
                tx = result.transaction_id
                sim.drain_error(WASHER)
                await wait_until(lambda: room.ledger.get(tx).state is VendState.AWAITING_PICKUP)  # type: ignore[arg-type, union-attr]
                await wait_until(
                    lambda: agent.outbox.counts()[RecordState.PENDING] + agent.outbox.counts()[RecordState.PUBLISHED] == 0,
                    what="every event confirmed by the bridge",
                )
                assert room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]
        finally:
            await sim.stop()
    vend = sorted((e for e in bridge.events() if e.type == "laundry_vend"), key=lambda e: e.seq)
    assert [(e.payload["outcome"], e.payload["points_charged"], e.payload.get("points_refunded", 0)) for e in vend] == [
        ("started", 5, 0),
        ("faulted", 0, 5),
    ]
    assert vend[1].subject == RESIDENT and vend[1].payload["transaction_id"] == tx
    with bridge.api() as api:
        page = api.get("/api/v1/events", type="laundry_vend", kiosk=settings.kiosk)
        assert page.status == 200 and page.body["items"][0]["payload"]["points_refunded"] == 5


def test_the_contract_takes_a_laundry_vend_from_before_refunds_and_one_with_a_refund() -> None:
    from contract.payloads import LaundryVendEvent

    old = {
        "transaction_id": "3f2e1d0c-b9a8-4765-8432-10fedcba9876", "unit": 2, "program": 2, "outcome": "faulted",
        "points_charged": 0, "free_reason": None, "reason": "error 21: Drain error - please call staff",
        "subject": RESIDENT,
    }
    assert LaundryVendEvent.model_validate(old).points_refunded == 0
    assert LaundryVendEvent.model_validate({**old, "points_refunded": 5}).points_refunded == 5
    with pytest.raises(ValueError):
        LaundryVendEvent.model_validate({**old, "points_refunded": -5})
