"""LaundryBus over a real pseudo-terminal null modem against the simulated room."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from pymodbus.constants import ExcCodes

from drivers.laundry.bus import OFFLINE, ErrorKind, LaundryBus, LinkState, PortUnavailable
from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, default_room
from edge_agent.device_health import line_telemetry
from drivers.laundry.status import MachineCommandResult
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


@contextlib.asynccontextmanager
async def open_room(bus_units: list[int] | None = None, *, gateway: bool = False, **bus_options: Any) -> AsyncIterator[Room]:
    """The simulated room (6 washers, 2 dryers) and a bus polling `bus_units` of it (default all
    eight; units beyond 8 are configured on the bus but not on the line)."""
    machines = default_room()
    on_bus = {u: machines.get(u, machines[1]) for u in (bus_units or list(machines))}
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, baudrate=LINE_BAUD, tick_interval_s=0.1, seconds_per_tick=30,
                                   gateway=gateway)
        await sim.start()
        bus = LaundryBus(link.driver_path, on_bus, baudrate=LINE_BAUD, timeout=TIMEOUT, **bus_options)
        await bus.start()
        try:
            yield Room(link, sim, bus)
        finally:
            await bus.stop()
            await sim.stop()


@pytest_asyncio.fixture
async def room() -> AsyncIterator[Room]:
    async with open_room() as opened:
        yield opened


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
    assert again.error is None and again.result_code == MachineCommandResult.NOT_ALLOWED_NOW and not again.done
    room.sim.door_open(4)
    door = await room.bus.submit_command(4, "start", argument=1, sequence=7)
    assert door.result_code == MachineCommandResult.DOOR_OPEN
    added = await room.bus.submit_command(7, "add_time", argument=600, sequence=1)
    assert added.result_code == MachineCommandResult.NOT_ALLOWED_NOW  # the dryer is idle
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
            assert link3.last_error.late_reply  # it is there, only slow: not "no such unit"
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


async def test_a_units_failures_are_counted_by_kind_for_telemetry_until_it_answers_again(room: Room) -> None:
    await wait_for(lambda: room.bus.status(6) is not None)
    room.sim.inject(6, garbage_reply=True)
    await wait_for(lambda: room.bus.link(6).failures_by_kind.get(ErrorKind.CRC, 0) >= 2)
    link = room.bus.link(6)
    assert link.failing_since is not None and link.last_error_at is not None and link.failing_since <= link.last_error_at
    fields = line_telemetry(link)
    assert fields["last_error"].code == "modbus_crc" and fields["error_counts"]["modbus_crc"] >= 2
    assert fields["failing_since"] == link.failing_since
    room.sim.inject(6, garbage_reply=False)
    await wait_for(lambda: room.bus.link(6).state is LinkState.ONLINE)
    link = room.bus.link(6)
    assert (link.failing_since, dict(link.failures_by_kind)) == (None, {})
    assert line_telemetry(link)["last_error"].code == "modbus_crc"  # the newest failure is kept


async def test_commands_jump_the_queue_of_polls(room: Room) -> None:
    """Eight units polled back to back: a command waits for the exchange in flight, not the round."""
    await wait_for(lambda: all(room.bus.status(u) is not None for u in range(1, 9)))
    waited = []
    for sequence, unit in enumerate((8, 3, 6, 1, 7), start=1):
        await asyncio.sleep(0.13)  # somewhere in the middle of a round
        submitted = time.monotonic()
        outcome = await room.bus.submit_command(unit, "stop", sequence=sequence)
        assert outcome.result_code == MachineCommandResult.NOT_ALLOWED_NOW  # idle: refused, but it arrived
        log = [r for r in room.sim.requests if r.at >= submitted]
        write = next(i for i, r in enumerate(log) if r.function == 16)
        assert log[write].unit == unit
        assert (log[write + 1].unit, log[write + 1].function) == (unit, 3)  # its echo, read back at once
        waited.append(write)
    print(f"requests ahead of each command on the line: {waited}")
    # Only the poll already on the wire (and one that was leaving as we submitted) may go first;
    # without the jump a command would wait on average half a round of eight.
    assert max(waited) <= 2


async def test_a_modbus_exception_is_an_answer_not_a_dead_unit(room: Room) -> None:
    await wait_for(lambda: all(room.bus.status(u) is not None for u in range(1, 9)))
    room.sim.inject(4, exception_code=ExcCodes.DEVICE_BUSY)
    failed = room.bus.link(4).polls_failed
    await wait_for(lambda: room.bus.link(4).polls_failed >= failed + 5)
    link = room.bus.link(4)
    assert link.last_error is not None and link.last_error.kind is ErrorKind.EXCEPTION
    assert link.last_error.exception_code == ExcCodes.DEVICE_BUSY
    # It answers at once, so no backoff: degraded, never offline, and polled as often as the rest.
    assert link.state is LinkState.DEGRADED and link.consecutive_failures == 0
    refused = await room.bus.submit_command(4, "start", argument=1, sequence=5)
    assert refused.error is not None and refused.error.kind is ErrorKind.EXCEPTION and refused.result_code is None
    assert room.sim.machines[4].executed == []
    room.sim.clear_faults(4)
    await wait_for(lambda: room.bus.link(4).state is LinkState.ONLINE)


async def test_a_unit_that_never_answers_is_no_such_unit_and_does_not_slow_the_room() -> None:
    async with open_room() as room:
        await wait_for(lambda: all(room.bus.status(u) is not None for u in range(1, 9)))
        alone = await poll_rate(room.bus, list(range(1, 9)), 2.0)
    async with open_room(list(range(1, 10)), backoff_initial_s=0.5) as room:  # unit 9 is on no machine
        await wait_for(lambda: room.bus.link(9).state is LinkState.OFFLINE)
        link = room.bus.link(9)
        assert link.last_error is not None and link.last_error.kind is ErrorKind.NO_SUCH_UNIT
        assert "never answered" in link.last_error.detail and not link.answered_once
        assert room.bus.state(9) == OFFLINE and room.bus.status(9) is None
        rate = await poll_rate(room.bus, list(range(1, 9)), 2.0)
        print(f"polls/s per unit: {alone:.2f} for the room alone, {rate:.2f} with a missing unit 9 on the bus")
        assert rate >= 0.7 * alone
        # A unit that did answer and then stopped is a timeout, not a configuration problem.
        room.sim.inject(2, unresponsive=True)
        await wait_for(lambda: room.bus.link(2).state is LinkState.OFFLINE, within=5)
        assert room.bus.link(2).last_error.kind is ErrorKind.TIMEOUT  # type: ignore[union-attr]
        assert room.bus.state(2) == OFFLINE and room.bus.status(2) is not None  # the stale status is kept


async def test_a_gateway_saying_no_such_unit_is_classified() -> None:
    async with open_room([1, 9], gateway=True) as room:
        await wait_for(lambda: room.bus.link(9).state is LinkState.OFFLINE)
        error = room.bus.link(9).last_error
        assert error is not None and error.kind is ErrorKind.NO_SUCH_UNIT and error.exception_code == 0x0B
        assert room.bus.link(1).state is LinkState.ONLINE


async def test_a_reply_with_the_wrong_register_count_is_not_believed(room: Room) -> None:
    await wait_for(lambda: room.bus.status(2) is not None)
    room.sim.inject(2, short_reply=True)
    failed = room.bus.link(2).polls_failed
    await wait_for(lambda: room.bus.link(2).polls_failed > failed)
    error = room.bus.link(2).last_error
    assert error is not None and error.kind is ErrorKind.BAD_REPLY and error.detail == "15 registers, asked for 16"
    room.sim.clear_faults(2)
    await wait_for(lambda: room.bus.link(2).state is LinkState.ONLINE)


async def test_a_write_reply_that_does_not_match_is_not_believed_and_the_echo_decides(room: Room) -> None:
    room.sim.inject(5, wrong_write_echo=True)
    outcome = await room.bus.submit_command(5, "start", argument=1, sequence=77)
    assert outcome.write_error is not None and outcome.write_error.kind is ErrorKind.BAD_REPLY
    assert outcome.done and outcome.result_code == MachineCommandResult.DONE  # read back, not resent
    assert [c[0] for c in room.sim.machines[5].executed] == ["start"]


async def test_a_frozen_controller_is_told_apart_by_its_heartbeat() -> None:
    async with open_room(frozen_after_s=0.5, backoff_initial_s=0.2) as room:
        await wait_for(lambda: all(room.bus.status(u) is not None for u in range(1, 9)))
        room.sim.freeze(3)
        await wait_for(lambda: room.bus.link(3).state is LinkState.OFFLINE)
        error = room.bus.link(3).last_error
        assert error is not None and error.kind is ErrorKind.FROZEN and "heartbeat stuck" in error.detail
        assert all(room.bus.link(u).state is LinkState.ONLINE for u in range(1, 9) if u != 3)
        room.sim.freeze(3, False)
        await wait_for(lambda: room.bus.link(3).state is LinkState.ONLINE, within=5)


async def test_the_port_has_one_owner(room: Room) -> None:
    second = LaundryBus(room.link.driver_path, default_room(), baudrate=LINE_BAUD, timeout=TIMEOUT)
    with pytest.raises(PortUnavailable, match="in use by another program"):
        await second.start()
    await second.stop()
    polls = room.bus.link(1).polls_ok
    await wait_for(lambda: room.bus.link(1).polls_ok > polls)  # the owner carries on
