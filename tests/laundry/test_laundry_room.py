"""The agent's laundry room over a real pty null modem against the simulated room: the real
bus, the real apscheduler job, the real SQLite outbox. What residents and the cloud are told."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from contract.envelope import validate_upstream
from contract.topics import KioskTopics
from drivers.laundry.bus import OFFLINE, LinkState
from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, default_room
from drivers.laundry.status import MachineCommandResult, MachineStatus
from drivers.laundry.vend import VendState
from edge_agent.laundry import IN_DOUBT, LaundryRoom, poll_interval_s
from edge_agent.settings import LaundrySettings, PollCadence
from edge_agent.store.laundry_ledger import VendTransaction
from edge_agent.store.outbox import Outbox, OutboxRecord
from firmware_configs.laundry import MachineState

LINE_BAUD = 19200
MACHINES = {unit: "washer-retrofit-a" for unit in range(1, 7)} | {7: "dryer-retrofit-b", 8: "dryer-retrofit-b"}
CADENCE = PollCadence(tick_s=0.05, idle_s=0.6, running_s=0.4, finishing_s=0.1, finishing_within_s=600)
TOPICS = KioskTopics("test-site", "kiosk-1")
RESIDENT = "a" * 64
ELDER = "e" * 64
THIS_YEAR = datetime.now(UTC).year
# A paid wash that faults within this many (real, the kiosk's) seconds of its start is refunded.
REFUND_WITHIN_S = 2.0


@dataclass
class Room:
    link: PtyLink
    sim: LaundryRoomSimulator
    outbox: Outbox
    room: LaundryRoom
    path: Path

    def events(self, event_type: str) -> list[dict[str, Any]]:
        with Session(self.outbox.database.engine) as session:
            rows = session.exec(select(OutboxRecord).where(OutboxRecord.topic == TOPICS.event(event_type))).all()  # type: ignore[arg-type]
        payloads = []
        for row in sorted(rows, key=lambda r: r.seq or 0):
            validate_upstream(row.topic, row.body)  # every event the kiosk saved obeys the contract
            payloads.append(json.loads(row.body)["payload"])
        return payloads

    def vend_outcomes(self, transaction_id: str) -> list[str]:
        return [e["outcome"] for e in self.events("laundry_vend") if e["transaction_id"] == transaction_id]


def settings_for(port: str, **overrides: Any) -> LaundrySettings:
    overrides.setdefault("refund_if_fault_within_s", REFUND_WITHIN_S)
    return LaundrySettings(port=port, baudrate=LINE_BAUD, reply_timeout_s=0.15, machines=MACHINES, poll=CADENCE, **overrides)


async def wait_for(condition: Any, within: float = 5.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what or condition}"
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def laundry(tmp_path: Path) -> AsyncIterator[Room]:
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        # 100 machine-seconds per 0.1 s: a 25-minute quick wash takes 1.5 s.
        sim = LaundryRoomSimulator(link.simulator_path, default_room(), baudrate=LINE_BAUD, tick_interval_s=0.1,
                                   seconds_per_tick=100)
        await sim.start()
        outbox = Outbox(tmp_path / "outbox.sqlite3")
        room = LaundryRoom(settings_for(link.driver_path), outbox, TOPICS)
        await room.start()
        room.ledger.open_account(RESIDENT, balance=10, birth_year=1960)
        room.ledger.open_account(ELDER, balance=0, birth_year=THIS_YEAR - 85)
        assert room.bus is not None
        await wait_for(lambda: all(room.bus.status(u) is not None for u in MACHINES), what="every machine read")  # type: ignore[union-attr]
        try:
            yield Room(link, sim, outbox, room, tmp_path)
        finally:
            await room.stop()
            await sim.stop()
            outbox.close()


def unfinished_state(room: LaundryRoom, transaction_id: str) -> VendState | None:
    transaction = room.ledger.get(transaction_id)
    return None if transaction is None else transaction.state


@pytest.mark.asyncio
async def test_a_full_paid_cycle_charges_once_and_tells_the_cloud_each_step(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    result = await room.start_program(2, program=2, subject=RESIDENT)
    assert result.outcome == "started" and result.points_charged == 3 and result.transaction_id is not None
    tx = result.transaction_id
    assert room.ledger.account(RESIDENT).balance == 7  # type: ignore[union-attr]
    assert sim.machines[2].state is MachineState.RUNNING and sim.machines[2].program == 2
    await wait_for(lambda: unfinished_state(room, tx) is VendState.AWAITING_PICKUP, what="the cycle to end")
    assert sim.machines[2].state is MachineState.DONE
    sim.open_door(2)
    await wait_for(lambda: unfinished_state(room, tx) is VendState.AVAILABLE, what="the laundry collected")
    assert laundry.vend_outcomes(tx) == ["started", "cycle_done", "collected"]
    [started] = [e for e in laundry.events("laundry_vend") if e["outcome"] == "started"]
    assert started["points_charged"] == 3 and started["subject"] == RESIDENT and started["free_reason"] is None
    assert [(c.transaction_id, c.points) for c in room.ledger.charges()] == [(tx, 3)]
    states = [e["state"] for e in laundry.events("laundry_machine") if e["unit"] == 2]
    assert states[:1] == ["idle"] and "running" in states and "done" in states and states[-1] == "idle"
    assert [c[0] for c in sim.machines[2].executed] == ["start"]


@pytest.mark.asyncio
async def test_over_80_starts_free_and_refusals_charge_nothing(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    free = await room.start_program(7, program=10, subject=ELDER)
    assert free.outcome == "started" and free.points_charged == 0
    assert [e["free_reason"] for e in laundry.events("laundry_vend") if e["outcome"] == "started"] == ["over_80"]
    # Refused at the kiosk: nothing reserved, nothing sent.
    poor = "b" * 64
    room.ledger.open_account(poor, balance=2, birth_year=1990)
    assert (await room.start_program(1, program=1, subject=poor)).reason == "not_enough_points"
    assert (await room.start_program(1, program=1, subject="c" * 64)).reason == "unknown_resident"
    assert (await room.start_program(7, program=10, subject=RESIDENT)).reason == "machine_busy"
    assert (await room.start_program(1, program=99, subject=RESIDENT)).reason == "no_such_program"
    assert (await room.start_program(42, program=1, subject=RESIDENT)).reason == "no_such_machine"
    sim.door_open(3)
    await wait_for(lambda: room.bus.status(3).door_closed is False)  # type: ignore[union-attr]
    assert (await room.start_program(3, program=1, subject=RESIDENT)).reason == "door_open"
    assert sim.machines[1].executed == [] and sim.machines[3].executed == []
    assert room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_start_the_machine_refuses_is_not_charged(laundry: Room) -> None:
    """The kiosk's map lists program 3; this board's firmware does not have it."""
    room, sim = laundry.room, laundry.sim
    board = sim.machines[4]
    board.profile = board.profile.model_copy(update={"programs": [p for p in board.profile.programs if p.code != 3]})
    result = await room.start_program(4, program=3, subject=RESIDENT)
    assert result.outcome == "refused" and result.reason == MachineCommandResult.BAD_ARGUMENT.name.lower()
    assert result.transaction_id is not None
    assert unfinished_state(room, result.transaction_id) is VendState.AVAILABLE
    assert laundry.vend_outcomes(result.transaction_id) == ["refused"]
    assert room.ledger.charges() == [] and room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]
    assert [c[0] for c in board.executed] == ["start"] and board.state is MachineState.IDLE
    # The machine is free again at once: the next start works and is charged.
    assert (await room.start_program(4, program=1, subject=RESIDENT)).points_charged == 5


@pytest.mark.asyncio
async def test_a_lost_start_reply_is_read_back_not_sent_again_and_charged_once(laundry: Room) -> None:
    room, sim, link = laundry.room, laundry.sim, laundry.link
    link.drop_replies(5)  # the machine hears us; we do not hear it
    result = await room.start_program(5, program=1, subject=RESIDENT)
    assert result.outcome == "checking" and result.points_charged == 0
    tx = result.transaction_id
    assert tx is not None and unfinished_state(room, tx) is VendState.STARTING
    assert sim.machines[5].state is MachineState.RUNNING  # it did start
    assert room.ledger.charges() == []
    await asyncio.sleep(0.5)  # polls keep failing: still nothing charged, nothing re-sent
    assert room.ledger.charges() == [] and len(sim.machines[5].executed) == 1
    link.restore_replies(5)
    await wait_for(lambda: unfinished_state(room, tx) is VendState.IN_USE, what="the echo read back")
    assert [(c.transaction_id, c.points) for c in room.ledger.charges()] == [(tx, 5)]
    assert room.ledger.account(RESIDENT).balance == 5  # type: ignore[union-attr]
    assert [c[0] for c in sim.machines[5].executed] == ["start"]
    assert laundry.vend_outcomes(tx)[:1] == ["started"]


@pytest.mark.asyncio
async def test_a_start_that_never_arrived_is_not_charged(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    sim.inject(6, unresponsive=True)  # deaf: the start is lost on the way there
    result = await room.start_program(6, program=2, subject=RESIDENT)
    assert result.outcome == "checking"
    tx = result.transaction_id
    assert tx is not None
    sim.clear_faults(6)
    await wait_for(lambda: unfinished_state(room, tx) is VendState.AVAILABLE, within=40, what="the read-back")
    assert laundry.vend_outcomes(tx) == ["not_started"]
    assert sim.machines[6].executed == [] and sim.machines[6].state is MachineState.IDLE
    assert room.ledger.charges() == [] and room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_kiosk_restart_mid_start_resolves_it_without_a_second_start(laundry: Room) -> None:
    room, sim, link = laundry.room, laundry.sim, laundry.link
    link.drop_replies(1)
    result = await room.start_program(1, program=3, subject=RESIDENT)
    assert result.outcome == "checking" and result.transaction_id is not None
    await room.stop()  # the kiosk goes down with the start in doubt
    # A reservation that was never sent (down between reserve and send): released on restart.
    abandoned = room.ledger.reserve(unit=2, model="washer-retrofit-a", program=1, list_price=5, subject=RESIDENT,
                                    free_from_age=80, echoed_sequence=None)
    link.restore_replies(1)
    again = LaundryRoom(settings_for(link.driver_path), laundry.outbox, TOPICS)
    laundry.room = again  # the fixture stops this one
    await again.start()
    await wait_for(lambda: unfinished_state(again, result.transaction_id) is VendState.IN_USE, what="the read-back")  # type: ignore[arg-type]
    assert unfinished_state(again, abandoned.id) is VendState.AVAILABLE
    assert [(c.transaction_id, c.points) for c in again.ledger.charges()] == [(result.transaction_id, 6)]
    assert [c[0] for c in sim.machines[1].executed] == ["start"] and sim.machines[2].executed == []


@pytest.mark.asyncio
async def test_machines_about_to_finish_are_polled_faster_and_a_dead_one_is_reported(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    assert room.bus is not None
    sim.seconds_per_tick = 1  # slow the clock: unit 8 stays "about to finish" while we count
    assert (await room.start_program(8, program=10, subject=ELDER)).outcome == "started"
    sim.machines[8].remaining_s = 300
    await asyncio.sleep(0.3)
    before = {u: room.bus.link(u).polls_ok for u in MACHINES}
    await asyncio.sleep(2.0)
    polls = {u: room.bus.link(u).polls_ok - before[u] for u in MACHINES}
    print(f"polls in 2 s: {polls}")
    # Nominally 0.1 s vs 0.6 s; the line and the 0.05 s tick make it ~0.15 s vs ~0.6 s.
    assert polls[8] >= 8 and polls[8] >= 2 * max(polls[u] for u in range(1, 7))
    assert all(2 <= polls[u] <= 5 for u in range(1, 7))  # idle: every 0.6 s
    sim.inject(3, unresponsive=True)
    await wait_for(lambda: room.bus.link(3).state is LinkState.OFFLINE, within=10)  # type: ignore[union-attr]
    await wait_for(lambda: any(e["unit"] == 3 and e["link"] == "offline" for e in laundry.events("laundry_machine")))
    [offline] = [e for e in laundry.events("laundry_machine") if e["unit"] == 3 and e["link"] == "offline"]
    assert offline["link_error"].startswith("timeout")


def status_of(state: MachineState, remaining: int | None = None) -> MachineStatus:
    return MachineStatus(state=state, phase=None, program=None, remaining_seconds=remaining, door_closed=True,
                         door_locked=False, error_code=None, error_text=None, credit=None, cycle_count=None,
                         heartbeat=0, command_echo_sequence=0, command_echo_result=0, firmware=None)


def test_poll_interval_table() -> None:
    c = CADENCE
    assert poll_interval_s(None, c, start_pending=False) == c.finishing_s
    assert poll_interval_s(status_of(MachineState.IDLE), c, start_pending=False) == c.idle_s
    assert poll_interval_s(status_of(MachineState.IDLE), c, start_pending=True) == c.finishing_s
    assert poll_interval_s(status_of(MachineState.RUNNING, remaining=5000), c, start_pending=False) == c.running_s
    assert poll_interval_s(status_of(MachineState.PAUSED, remaining=60), c, start_pending=False) == c.running_s
    assert poll_interval_s(status_of(MachineState.RUNNING, remaining=60), c, start_pending=False) == c.finishing_s
    for state in (MachineState.DONE, MachineState.FAULT, MachineState.SERVICE, MachineState.READY):
        assert poll_interval_s(status_of(state), c, start_pending=False) == c.idle_s


@pytest.mark.asyncio
async def test_other_commands_are_echoed_and_a_lost_reply_is_read_back_not_repeated(laundry: Room) -> None:
    room, sim, link = laundry.room, laundry.sim, laundry.link
    assert (await room.start_program(7, program=10, subject=RESIDENT)).outcome == "started"
    sim.seconds_per_tick = 0  # hold the dryer's clock still while we add time
    assert (await room.command(7, "pause")).outcome == "done"
    assert sim.machines[7].state is MachineState.PAUSED
    again = await room.command(7, "pause")
    assert again.outcome == "refused" and again.reason == "not_allowed_now"
    assert (await room.command(7, "resume")).outcome == "done"
    assert (await room.command(1, "add_time", 600)).reason == "no_such_command"  # a washer has none
    before = sim.machines[7].remaining_s
    link.drop_replies(7)
    lost = await room.command(7, "add_time", 600)
    assert lost.outcome == "checking" and lost.command_id is not None
    link.restore_replies(7)
    await wait_for(lambda: room.ledger.get_command(lost.command_id).state == "done", what="the echo read back")  # type: ignore[union-attr, arg-type]
    assert sim.machines[7].remaining_s == before + 600  # added once, not twice
    assert [c[0] for c in sim.machines[7].executed] == ["start", "pause", "pause", "resume", "add_time"]
    # A command that never arrived is reported so, after a restart too.
    sim.inject(7, unresponsive=True)
    deaf = await room.command(7, "stop")
    assert deaf.outcome == "checking" and deaf.command_id is not None
    await room.stop()
    sim.clear_faults(7)
    again_room = LaundryRoom(settings_for(link.driver_path), laundry.outbox, TOPICS)
    laundry.room = again_room
    await again_room.start()
    await wait_for(lambda: again_room.ledger.get_command(deaf.command_id).state == "not_received", within=10)  # type: ignore[union-attr, arg-type]
    assert sim.machines[7].state is MachineState.RUNNING and sim.machines[7].executed[-1][0] == "add_time"


@pytest.mark.asyncio
async def test_a_paid_cycle_that_faults_after_it_has_run_alerts_with_the_error_and_is_charged_once(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    sim.seconds_per_tick = 1  # a long wash: it faults well before the end
    result = await room.start_program(3, program=1, subject=RESIDENT)
    assert result.outcome == "started" and result.points_charged == 5
    tx = result.transaction_id
    assert tx is not None
    await asyncio.sleep(REFUND_WITHIN_S + 0.5)  # it has really run: no refund
    sim.drain_error(3)
    await wait_for(lambda: unfinished_state(room, tx) is VendState.AWAITING_PICKUP, what="the fault followed")
    assert room.ledger.get(tx).reason == "error 21: Drain error - please call staff"  # type: ignore[union-attr]
    [fault] = [e for e in laundry.events("laundry_machine") if e["unit"] == 3 and e["state"] == "fault"]
    assert fault["error_code"] == 21 and fault["error_text"] == {"zh": "排水故障，请联系工作人员", "en": "Drain error - please call staff"}
    # Staff clear the fault; the resident takes the laundry out; the machine is free again.
    assert (await room.command(3, "clear_fault")).outcome == "done"
    assert sim.machines[3].state is MachineState.IDLE and sim.machines[3].error_code == 0
    sim.open_door(3)
    await wait_for(lambda: unfinished_state(room, tx) is VendState.AVAILABLE, what="the laundry collected")
    assert laundry.vend_outcomes(tx) == ["started", "faulted", "collected"]
    [faulted] = [e for e in laundry.events("laundry_vend") if e["outcome"] == "faulted"]
    assert faulted["points_charged"] == 0 and faulted["reason"].startswith("error 21")
    assert "points_refunded" not in faulted  # the shape a bridge from before refunds takes
    assert [(c.transaction_id, c.points) for c in room.ledger.charges()] == [(tx, 5)]
    assert room.ledger.account(RESIDENT).balance == 5  # type: ignore[union-attr]
    assert room.ledger.refunds() == []


@pytest.mark.asyncio
async def test_a_paid_wash_that_faults_before_it_has_really_run_is_refunded_once_with_a_notice(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    sim.seconds_per_tick = 1
    result = await room.start_program(3, program=1, subject=RESIDENT)
    assert result.outcome == "started" and result.points_charged == 5 and result.transaction_id is not None
    tx = result.transaction_id
    assert room.ledger.account(RESIDENT).balance == 5  # type: ignore[union-attr]
    sim.drain_error(3)  # 3 s in, as residents found: a few kiosk seconds here
    await wait_for(lambda: unfinished_state(room, tx) is VendState.AWAITING_PICKUP, what="the fault followed")
    assert room.ledger.get(tx).reason_code == "machine_fault"  # type: ignore[union-attr]
    assert room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]
    assert [(r.transaction_id, r.subject, r.points) for r in room.ledger.refunds()] == [(tx, RESIDENT, 5)]
    # The charge stays in the book beside its refund: both are history.
    assert [(c.transaction_id, c.points) for c in room.ledger.charges()] == [(tx, 5)]
    [faulted] = [e for e in laundry.events("laundry_vend") if e["outcome"] == "faulted"]
    assert (faulted["points_refunded"], faulted["points_charged"], faulted["subject"]) == (5, 0, RESIDENT)
    # The resident's next look at the machine says the points came back, until the laundry is out.
    [view] = [m for m in room.machines() if m.unit == 3]
    assert view.points_refunded == 5
    # Seen again (polls go on), the fault gives nothing back twice.
    await asyncio.sleep(1.0)
    assert room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]
    assert (await room.command(3, "clear_fault")).outcome == "done"
    sim.open_door(3)
    await wait_for(lambda: unfinished_state(room, tx) is VendState.AVAILABLE, what="the laundry collected")
    assert laundry.vend_outcomes(tx) == ["started", "faulted", "collected"]
    assert [m.points_refunded for m in room.machines() if m.unit == 3] == [0]
    assert len(room.ledger.refunds()) == 1 and room.ledger.account(RESIDENT).balance == 10  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_an_over_80_wash_that_faults_at_once_has_nothing_to_give_back(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    sim.seconds_per_tick = 1
    result = await room.start_program(3, program=1, subject=ELDER)
    assert result.outcome == "started" and result.points_charged == 0 and result.transaction_id is not None
    sim.drain_error(3)
    await wait_for(lambda: unfinished_state(room, result.transaction_id) is VendState.AWAITING_PICKUP)  # type: ignore[arg-type]
    assert room.ledger.refunds() == [] and room.ledger.account(ELDER).balance == 0  # type: ignore[union-attr]
    [faulted] = [e for e in laundry.events("laundry_vend") if e["outcome"] == "faulted"]
    assert "points_refunded" not in faulted


@pytest.mark.asyncio
async def test_two_residents_tapping_one_machine_at_once_start_it_once(laundry: Room) -> None:
    room, sim = laundry.room, laundry.sim
    other = "d" * 64
    room.ledger.open_account(other, balance=10, birth_year=1975)
    first, second = await asyncio.gather(
        room.start_program(6, program=2, subject=RESIDENT), room.start_program(6, program=2, subject=other)
    )
    outcomes = sorted([first.outcome, second.outcome])
    assert outcomes == ["refused", "started"]
    refused = first if first.outcome == "refused" else second
    assert refused.reason == "machine_busy" and refused.transaction_id is None  # refused before reserving
    assert [c[0] for c in sim.machines[6].executed] == ["start"]
    assert len(room.ledger.charges()) == 1
    assert sorted(room.ledger.account(s).balance for s in (RESIDENT, other)) == [7, 10]  # type: ignore[union-attr]


def test_the_book_itself_refuses_a_second_open_transaction_for_one_machine(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    try:
        room = LaundryRoom(settings_for("/dev/null"), outbox, TOPICS)
        room.ledger.open_account(RESIDENT, balance=10)
        first = room.ledger.reserve(unit=2, model="washer-retrofit-a", program=1, list_price=5, subject=RESIDENT,
                                    free_from_age=80, echoed_sequence=None)
        second = first.model_copy(update={"id": "00000000-0000-0000-0000-000000000002"})
        with pytest.raises(IntegrityError), Session(outbox.database.engine) as session:
            session.add(VendTransaction.model_validate(second.model_dump()))
            session.commit()
    finally:
        outbox.close()


@pytest.mark.asyncio
async def test_no_second_command_while_the_first_is_being_read_back(laundry: Room) -> None:
    room, sim, link = laundry.room, laundry.sim, laundry.link
    assert (await room.start_program(7, program=10, subject=ELDER)).outcome == "started"
    sim.seconds_per_tick = 0
    link.drop_replies(7)
    lost = await room.command(7, "pause")
    assert lost.outcome == "checking" and lost.command_id is not None
    # A stop now would overwrite the echo that says whether the pause happened: refused, not sent.
    assert (await room.command(7, "stop")) == type(lost)("refused", None, IN_DOUBT)
    link.restore_replies(7)
    await wait_for(lambda: room.ledger.get_command(lost.command_id).state == "done", what="the pause read back")  # type: ignore[union-attr, arg-type]
    assert (await room.command(7, "stop")).outcome == "done"
    assert [c[0] for c in sim.machines[7].executed] == ["start", "pause", "stop"]


@pytest.mark.asyncio
async def test_a_dead_machine_does_not_slow_the_schedule_of_the_others(laundry: Room) -> None:
    """The agent's own mode (polls on the apscheduler job, not back to back), and the worst case:
    the machine dies mid-start, so the schedule wants it at the fastest interval (a start in
    doubt). Only the backoff keeps its timeouts from filling the line. Measured rates."""
    room, sim, link = laundry.room, laundry.sim, laundry.link
    assert room.bus is not None
    healthy = [u for u in MACHINES if u != 4]
    await asyncio.sleep(0.5)

    async def rate() -> float:
        before = sum(room.bus.link(u).polls_ok for u in healthy)  # type: ignore[union-attr]
        await asyncio.sleep(3.0)
        return (sum(room.bus.link(u).polls_ok for u in healthy) - before) / 3.0 / len(healthy)  # type: ignore[union-attr]

    alone = await rate()
    link.drop_replies(4)
    assert (await room.start_program(4, program=1, subject=RESIDENT)).outcome == "checking"
    await wait_for(lambda: room.bus.link(4).state is LinkState.OFFLINE, within=10)  # type: ignore[union-attr]
    window = time.monotonic()
    with_dead = await rate()
    probes = sum(1 for r in sim.requests if r.unit == 4 and r.at >= window)
    print(f"polls/s per idle machine on the {CADENCE.idle_s} s schedule: {alone:.2f} alone, {with_dead:.2f} "
          f"with unit 4 dead mid-start; unit 4 probed {probes} times in 3 s (link {room.bus.link(4)})")
    assert alone >= 0.7 / CADENCE.idle_s  # the schedule itself is kept
    assert with_dead >= 0.8 * alone
    # The schedule asks for unit 4 every 0.1 s; the backoff (1 s, 2 s, ...) answers for the line.
    assert probes <= 3
    [view] = [m for m in room.machines() if m.unit == 4]
    assert view.state == OFFLINE and view.status is not None  # what the screen shows; the stale status kept
    assert room.ledger.charges() == []


@pytest.mark.asyncio
async def test_a_start_to_a_slow_machine_is_decided_by_its_echo_not_by_late_replies(laundry: Room) -> None:
    """Every reply comes after the timeout: none may be taken for the answer to a later request."""
    room, sim = laundry.room, laundry.sim
    sim.inject(2, slow_reply_s=0.25)  # reply_timeout_s is 0.15; the bus's guard catches them
    result = await room.start_program(2, program=1, subject=RESIDENT)
    assert result.outcome == "checking" and room.ledger.charges() == []
    assert room.bus is not None and room.bus.link(2).last_error.late_reply  # type: ignore[union-attr]
    assert [c[0] for c in sim.machines[2].executed] == ["start"]  # it heard us, once
    sim.clear_faults(2)
    tx = result.transaction_id
    await wait_for(lambda: unfinished_state(room, tx) is VendState.IN_USE, within=40, what="the echo read back")  # type: ignore[arg-type]
    assert [(c.transaction_id, c.points) for c in room.ledger.charges()] == [(tx, 5)]
    assert [c[0] for c in sim.machines[2].executed] == ["start"]
