"""LaundryBus over a real pseudo-terminal null modem against the simulated room."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from drivers.laundry.bus import ErrorKind, LaundryBus, LinkState
from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, default_room
from drivers.laundry.status import CommandResult
from firmware_configs.laundry import MachineState

pytestmark = pytest.mark.asyncio
LINE_BAUD = 19200  # the relay paces bytes like a real line at this rate
TIMEOUT = 0.15


@dataclass
class Room:
    link: PtyLink
    sim: LaundryRoomSimulator
    bus: LaundryBus


async def wait_for(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def room() -> AsyncIterator[Room]:
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, baudrate=LINE_BAUD, tick_interval_s=0.1, seconds_per_tick=30)
        await sim.start()
        bus = LaundryBus(link.driver_path, default_room(), baudrate=LINE_BAUD, timeout=TIMEOUT)
        await bus.start()
        try:
            yield Room(link, sim, bus)
        finally:
            await bus.stop()
            await sim.stop()


def ok_polls(bus: LaundryBus, units: list[int]) -> int:
    return sum(bus.link(u).polls_ok for u in units)


async def poll_rate(bus: LaundryBus, units: list[int], seconds: float) -> float:
    before = ok_polls(bus, units)
    await asyncio.sleep(seconds)
    return (ok_polls(bus, units) - before) / seconds / len(units)


async def test_polls_all_eight_machines(room: Room) -> None:
    await wait_for(lambda: all(room.bus.status(u) is not None for u in range(1, 9)))
    for unit in range(1, 7):
        status = room.bus.status(unit)
        assert status is not None and status.state is MachineState.IDLE and status.firmware == f"SIM{unit}"
        assert status.door_closed is True and status.phase == "none"
    for unit in (7, 8):
        status = room.bus.status(unit)
        assert status is not None and status.state is MachineState.IDLE and status.firmware is None
    assert all(room.bus.link(u).state is LinkState.ONLINE for u in range(1, 9))
    first = room.bus.status(1)
    await wait_for(lambda: room.bus.status(1) is not None and room.bus.status(1).heartbeat != first.heartbeat)  # type: ignore[union-attr]


async def test_start_is_echoed_and_the_machine_runs(room: Room) -> None:
    events = room.bus.changes()
    outcome = await room.bus.submit_command(3, "start", argument=2, sequence=41)
    assert outcome.done and outcome.result_code == 0 and outcome.sequence == 41
    status = room.bus.status(3)
    assert status is not None and status.state is MachineState.RUNNING and status.program == 2
    assert status.command_echo_sequence == 41 and status.door_locked is True
    first = status.remaining_seconds
    assert first is not None and 0 < first <= 1500
    await wait_for(lambda: (room.bus.status(3).remaining_seconds or 0) < first)  # type: ignore[union-attr]
    event = await asyncio.wait_for(anext(events), 2)
    assert event.unit in range(1, 9)
    await events.aclose()
    # Refusals come back as the machine's result code, not as bus errors.
    again = await room.bus.submit_command(3, "start", argument=2, sequence=42)
    assert again.error is None and again.result_code == CommandResult.NOT_ALLOWED_NOW and not again.done
    room.sim.door_open(4)
    door = await room.bus.submit_command(4, "start", argument=1, sequence=7)
    assert door.result_code == CommandResult.DOOR_OPEN
    added = await room.bus.submit_command(7, "add_time", argument=600, sequence=1)
    assert added.result_code == CommandResult.NOT_ALLOWED_NOW  # the dryer is idle
    room.sim.drain_error(5)
    await wait_for(lambda: room.bus.status(5) is not None and room.bus.status(5).error_code == 21)  # type: ignore[union-attr]
    assert (await room.bus.submit_command(5, "clear_fault", sequence=9)).done
    missing = await room.bus.submit_command(99, "start", argument=1, sequence=1)
    assert missing.error is not None and missing.error.kind is ErrorKind.NO_SUCH_UNIT


async def test_a_dead_unit_does_not_starve_the_others(room: Room) -> None:
    others = [u for u in range(1, 9) if u != 5]
    await wait_for(lambda: all(room.bus.status(u) is not None for u in range(1, 9)))
    healthy = await poll_rate(room.bus, others, 2.0)
    room.sim.inject(5, unresponsive=True)
    await wait_for(lambda: room.bus.link(5).state is LinkState.OFFLINE)
    with_dead = await poll_rate(room.bus, others, 2.0)
    print(f"polls/s per healthy unit: {healthy:.2f} without a dead unit, {with_dead:.2f} with one; dead unit {room.bus.link(5)}")
    assert with_dead >= 0.7 * healthy
    link = room.bus.link(5)
    assert link.last_error is not None and link.last_error.kind is ErrorKind.TIMEOUT
    room.sim.clear_faults(5)
    await wait_for(lambda: room.bus.link(5).state is LinkState.ONLINE, within=5.0)


async def test_a_late_reply_is_never_the_next_answer() -> None:
    """One unit on the line, so pymodbus' unit-id filter cannot help: only the guard can."""
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, {3: default_room()[3]}, baudrate=LINE_BAUD)
        await sim.start()
        sim.inject(3, slow_reply_s=TIMEOUT + 0.1)  # past the timeout, inside the guard
        bus = LaundryBus(link.driver_path, {3: default_room()[3]}, baudrate=LINE_BAUD, timeout=TIMEOUT, backoff_initial_s=0.2)
        await bus.start()
        try:
            await asyncio.sleep(1.5)
            assert bus.status(3) is None  # every reply came late; none was taken for a later poll
            link3 = bus.link(3)
            assert link3.polls_ok == 0 and link3.polls_failed >= 3
            assert link3.last_error is not None and link3.last_error.kind is ErrorKind.TIMEOUT
            assert bus.late_bytes_discarded > 0
            sim.clear_faults(3)
            await wait_for(lambda: bus.status(3) is not None)
        finally:
            await bus.stop()
            await sim.stop()


async def test_a_crc_error_is_classified_and_recovered_from(room: Room) -> None:
    await wait_for(lambda: all(room.bus.status(u) is not None for u in range(1, 9)))
    before = {u: room.bus.link(u).polls_ok for u in range(1, 9)}
    room.link.corrupt_next_reply()
    await wait_for(lambda: any((room.bus.link(u).last_error or None) is not None for u in range(1, 9)))
    hit = next(u for u in range(1, 9) if room.bus.link(u).last_error is not None)
    assert room.bus.link(hit).last_error.kind is ErrorKind.CRC  # type: ignore[union-attr]
    await wait_for(lambda: room.bus.link(hit).state is LinkState.ONLINE and room.bus.link(hit).polls_ok > before[hit])
    # A unit that answers garbage every time is a CRC problem, not a timeout.
    room.sim.inject(6, garbage_reply=True)
    await wait_for(lambda: room.bus.link(6).state is LinkState.DEGRADED)
    assert room.bus.link(6).last_error.kind is ErrorKind.CRC  # type: ignore[union-attr]
    # A reply lost on the wire is a timeout. (Unit 2 may already carry the CRC error above.)
    failed_before = room.bus.link(2).polls_failed
    room.link.drop_replies(2)
    await wait_for(lambda: room.bus.link(2).polls_failed > failed_before)
    assert room.bus.link(2).last_error.kind is ErrorKind.TIMEOUT  # type: ignore[union-attr]
