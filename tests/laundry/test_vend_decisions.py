"""Every laundry decision, from drivers/laundry/vend.py's tables, against the real room.

A start and any other command used to be judged by two copies of the same if/else, and an echo
read back by two more; these tests hold both kinds of command to one answer per table row: each
case provokes one answer on the simulated line (pty, real bus, real SQLite) for a start and for
a command alike, and checks what each became, at once and after the echo is read back. The
expected outcomes are written out literally, not read from the table under test.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes

from drivers.laundry.link import BusError, ErrorKind, LinkState
from drivers.laundry.pty_link import PtyLink
from drivers.laundry.simulator import LaundryRoomSimulator, default_room
from drivers.laundry.status import MachineCommandResult
from drivers.laundry.vend import (
    START_EVENTS,
    TRANSITIONS,
    VERDICTS,
    AfterWrite,
    Answer,
    CommandState,
    Echo,
    Effect,
    VendState,
    verdict_of_echo,
    verdict_of_outcome,
)
from edge_agent.laundry import IN_DOUBT, CommandView, LaundryRoom
from firmware_configs.laundry import MachineState

# Outbox through the room's tests, which follow wherever the kiosk's store lives.
from tests.laundry.test_laundry_room import (
    ELDER,
    LINE_BAUD,
    RESIDENT,
    TOPICS,
    Outbox,
    Room,
    laundry,  # noqa: F401 (the fixture)
    settings_for,
    status_of,
    unfinished_state,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
WASHER, DRYER = 1, 7  # the start goes to the washer, the other command to a running dryer
IN_DOUBT_OUTCOME = "checking"

# -- the tables themselves --


def test_every_answer_the_bus_can_give_has_one_verdict() -> None:
    assert set(VERDICTS) == set(Echo) | set(ErrorKind) | set(AfterWrite)


def test_only_our_number_echoed_with_result_0_is_done_and_no_answer_from_a_board_that_may_have_acted_is_not_received() -> None:
    assert [a for a, v in VERDICTS.items() if v is CommandState.DONE] == [Echo.OURS_DONE]
    # Not received means the machine surely did nothing: its echo shows another number, or it
    # refused the write with an exception (Application Protocol v1.1b3, 7), or it is not there.
    not_received = {a for a, v in VERDICTS.items() if v is CommandState.NOT_RECEIVED}
    assert not_received == {Echo.ANOTHER_NUMBER, ErrorKind.EXCEPTION, ErrorKind.NO_SUCH_UNIT}
    lost_or_busy = (ErrorKind.TIMEOUT, ErrorKind.CRC, ErrorKind.BAD_REPLY, ErrorKind.FROZEN, ErrorKind.DISCONNECTED,
                    AfterWrite.READ_EXCEPTION)
    for lost in lost_or_busy:
        assert VERDICTS[lost] is CommandState.SENT, lost


@pytest.mark.parametrize("verdict", list(CommandState))
def test_every_verdict_of_a_start_moves_its_transaction_and_only_done_charges(verdict: CommandState) -> None:
    transition = TRANSITIONS[(VendState.STARTING, START_EVENTS[verdict])]
    expected = {
        CommandState.DONE: (VendState.IN_USE, Effect.CHARGE, "started"),
        CommandState.REFUSED: (VendState.AVAILABLE, Effect.NONE, "refused"),
        CommandState.NOT_RECEIVED: (VendState.AVAILABLE, Effect.NONE, "not_started"),
        CommandState.SENT: (VendState.STARTING, Effect.NONE, None),  # in doubt: stays, tells nothing
    }[verdict]
    assert (transition.to, transition.effect, transition.tells) == expected


@pytest.mark.parametrize(("ours", "result"), list(itertools.product([True, False], MachineCommandResult)))
def test_the_answer_at_once_and_the_echo_read_back_agree(ours: bool, result: MachineCommandResult) -> None:
    """The bus hands over our number's result, or NOT_CONFIRMED when a live read showed another."""
    sequence = 41
    status = status_of(MachineState.IDLE)
    read_back = verdict_of_echo(
        replace(status, command_echo_sequence=sequence if ours else sequence + 1, command_echo_result=result), sequence
    )
    at_once = (
        verdict_of_outcome(int(result), None, LinkState.ONLINE, written=True)
        if ours
        else verdict_of_outcome(None, BusError(ErrorKind.NOT_CONFIRMED), LinkState.ONLINE, written=True)
    )
    assert at_once == read_back
    if ours:
        assert at_once.state is (CommandState.DONE if result is MachineCommandResult.DONE else CommandState.REFUSED)
    else:
        assert at_once.state is CommandState.NOT_RECEIVED and at_once.result_code is None


def test_an_exception_is_a_refused_write_only_when_the_write_itself_got_it() -> None:
    busy = BusError(ErrorKind.EXCEPTION, "exception 6", exception_code=0x06)
    assert verdict_of_outcome(None, busy, LinkState.DEGRADED, written=False).state is CommandState.NOT_RECEIVED
    assert verdict_of_outcome(None, busy, LinkState.DEGRADED, written=True).state is CommandState.SENT


def test_another_number_from_a_board_not_judged_live_decides_nothing() -> None:
    for link in (LinkState.DEGRADED, LinkState.OFFLINE):
        assert verdict_of_outcome(None, BusError(ErrorKind.NOT_CONFIRMED), link, written=True).state is CommandState.SENT


# -- both kinds of command against the simulated room, one case per answer --


@dataclass(frozen=True)
class Case:
    answer: Answer  # the row the answer at once exercises
    provoke: Callable[[Room, int], None]
    heal: Callable[[Room, int], None]
    command: str  # sent to the running dryer
    at_once: tuple[str, str]  # (the command's outcome, the start's)
    # After the echo is read back: (the command's state, the start's vend outcomes); None when
    # decided at once.
    read_back: tuple[str, list[str]] | None
    acted: bool = True  # whether the boards executed what we wrote
    start_program: int = 1


def _nothing(room: Room, unit: int) -> None:
    return None


def _drop(room: Room, unit: int) -> None:
    room.link.drop_replies(unit)


def _restore(room: Room, unit: int) -> None:
    room.link.restore_replies(unit)


def _inject(**faults: object) -> Callable[[Room, int], None]:
    def inject(room: Room, unit: int) -> None:
        room.sim.inject(unit, **faults)  # type: ignore[arg-type]

    return inject


def _clear(room: Room, unit: int) -> None:
    room.sim.clear_faults(unit)


def _without_program_3(room: Room, unit: int) -> None:
    """The kiosk's map lists program 3; this board's firmware does not have it."""
    board = room.sim.machines[unit]
    if unit == WASHER:
        board.profile = board.profile.model_copy(update={"programs": [p for p in board.profile.programs if p.code != 3]})


CASES = {
    "the machine confirms": Case(Echo.OURS_DONE, _nothing, _nothing, "pause", ("done", "started"), None),
    # A start of a program the board lacks; a resume of a dryer that is running.
    "the machine refuses": Case(Echo.OURS_REFUSED, _without_program_3, _nothing, "resume", ("refused", "refused"), None,
                                start_program=3),
    "an exception to the write": Case(ErrorKind.EXCEPTION, _inject(exception_code=ExcCodes.DEVICE_BUSY), _clear,
                                      "pause", ("not_received", "refused"), None, acted=False),
    # A board busy (0x06) running our start answers the status reads after it with exceptions:
    # the write was not refused, so the start is in doubt until its echo is read.
    "exceptions to the reads after the write, then our echo": Case(
        AfterWrite.READ_EXCEPTION, _inject(read_exception_code=ExcCodes.DEVICE_BUSY), _clear, "pause",
        (IN_DOUBT_OUTCOME, IN_DOUBT_OUTCOME), ("done", ["started"])),
    "no reply, then our echo": Case(ErrorKind.TIMEOUT, _drop, _restore, "pause", (IN_DOUBT_OUTCOME, IN_DOUBT_OUTCOME),
                                    ("done", ["started"])),
    "CRC errors, then our echo": Case(ErrorKind.CRC, _inject(garbage_reply=True), _clear, "pause",
                                      (IN_DOUBT_OUTCOME, IN_DOUBT_OUTCOME), ("done", ["started"])),
    "short status replies, then our echo": Case(ErrorKind.BAD_REPLY, _inject(short_reply=True), _clear, "pause",
                                                (IN_DOUBT_OUTCOME, IN_DOUBT_OUTCOME), ("done", ["started"])),
    "a deaf machine, then another number": Case(ErrorKind.TIMEOUT, _inject(unresponsive=True), _clear, "pause",
                                                (IN_DOUBT_OUTCOME, IN_DOUBT_OUTCOME), ("not_received", ["not_started"]),
                                                acted=False),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(CASES))
async def test_a_start_and_a_command_given_the_same_answer_are_decided_alike(laundry: Room, name: str) -> None:  # noqa: F811
    await decided_alike(laundry, CASES[name])


@pytest.mark.asyncio
async def test_a_gateway_that_cannot_reach_the_unit_decides_a_start_and_a_command_alike(tmp_path: Path) -> None:
    """Application Protocol v1.1b3, 7: exception 0x0B from an RTU gateway, for a deaf unit."""
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, default_room(), baudrate=LINE_BAUD, tick_interval_s=0.1,
                                   seconds_per_tick=100, gateway=True)
        await sim.start()
        outbox = Outbox(tmp_path / "outbox.sqlite3")
        room = LaundryRoom(settings_for(link.driver_path), outbox, TOPICS)
        try:
            await room.start()
            room.ledger.open_account(RESIDENT, balance=10, birth_year=1960)
            room.ledger.open_account(ELDER, balance=0, birth_year=1930)
            await wait_for(lambda: all(room.bus.status(u) is not None for u in (WASHER, DRYER)))  # type: ignore[union-attr]
            await decided_alike(
                Room(link, sim, outbox, room, tmp_path),
                Case(ErrorKind.NO_SUCH_UNIT, _inject(unresponsive=True), _clear, "pause", ("not_received", "refused"),
                     None, acted=False),
            )
        finally:
            await room.stop()
            await sim.stop()
            outbox.close()


async def decided_alike(laundry: Room, case: Case) -> None:
    room, sim = laundry.room, laundry.sim
    assert room.bus is not None
    assert (await room.start_program(DRYER, program=10, subject=ELDER)).outcome == "started"
    sim.seconds_per_tick = 0  # hold the clocks still: the dryer keeps running while we command it
    case.provoke(laundry, WASHER)
    started = await room.start_program(WASHER, program=case.start_program, subject=RESIDENT)
    washer_error = room.bus.link(WASHER).last_error
    case.provoke(laundry, DRYER)
    commanded = await room.command(DRYER, case.command)  # type: ignore[arg-type]
    dryer_error = room.bus.link(DRYER).last_error
    tx, command_id = started.transaction_id, commanded.command_id
    assert tx is not None and command_id is not None

    assert (commanded.outcome, started.outcome) == case.at_once
    # The case really gave the answer of its row, to both (a refused write is not a poll: the
    # link does not record it).
    if isinstance(case.answer, ErrorKind) and case.answer not in (ErrorKind.EXCEPTION, ErrorKind.NO_SUCH_UNIT):
        assert washer_error is not None and dryer_error is not None
        assert (washer_error.kind, dryer_error.kind) == (case.answer, case.answer)
    told_at_once = TRANSITIONS[(VendState.STARTING, START_EVENTS[VERDICTS[case.answer]])].tells
    assert laundry.vend_outcomes(tx) == ([told_at_once] if told_at_once else [])
    row = room.ledger.get_command(command_id)
    assert row is not None and row.state is VERDICTS[case.answer]
    if case.answer in (ErrorKind.EXCEPTION, ErrorKind.NO_SUCH_UNIT):  # the start says which
        assert room.ledger.get(tx).reason == case.answer.value  # type: ignore[union-attr]

    if case.read_back is not None:
        assert await room.command(DRYER, "stop") == CommandView("refused", None, IN_DOUBT)
        case.heal(laundry, WASHER)
        case.heal(laundry, DRYER)
        await wait_for(lambda: unfinished_state(room, tx) is not VendState.STARTING, within=40, what="the start read back")
        await wait_for(lambda: room.ledger.get_command(command_id).state != CommandState.SENT,  # type: ignore[union-attr]
                       within=40, what="the command read back")
        command_state, start_outcomes = case.read_back
        assert room.ledger.get_command(command_id).state == command_state  # type: ignore[union-attr]
        assert laundry.vend_outcomes(tx) == start_outcomes
    started_once = laundry.vend_outcomes(tx) == ["started"]
    assert [c.transaction_id for c in room.ledger.charges() if c.transaction_id == tx] == ([tx] if started_once else [])
    # Written once each, whatever came back: never a second send.
    assert [c[0] for c in sim.machines[WASHER].executed] == (["start"] if case.acted else [])
    assert [c[0] for c in sim.machines[DRYER].executed] == ["start"] + ([case.command] if case.acted else [])


# -- across a kill -9 --

_KIOSK = """
import asyncio, sys
from pathlib import Path
from edge_agent.laundry import LaundryRoom
from tests.laundry.test_laundry_room import RESIDENT, TOPICS, Outbox, settings_for

async def main(port: str, path: str) -> None:
    room = LaundryRoom(settings_for(port), Outbox(Path(path)), TOPICS)
    await room.start()
    room.ledger.open_account(RESIDENT, balance=10, birth_year=1960)
    while room.bus.status(1) is None or room.bus.status(7) is None:
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    start = await room.start_program(1, program=2, subject=RESIDENT)
    stop = await room.command(7, "stop")
    print(start.outcome, start.transaction_id, stop.outcome, stop.command_id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.asyncio
async def test_a_start_and_a_command_in_doubt_at_a_kill_9_are_still_in_doubt_after_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with PtyLink(line_baudrate=LINE_BAUD) as link:
        sim = LaundryRoomSimulator(link.simulator_path, default_room(), baudrate=LINE_BAUD, tick_interval_s=0.1,
                                   seconds_per_tick=0)
        await sim.start()
        try:
            kiosk = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _KIOSK, link.driver_path, str(path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            )
            assert kiosk.stdin is not None and kiosk.stdout is not None
            try:
                assert await asyncio.wait_for(kiosk.stdout.readline(), 60) == b"ready\n"
                link.drop_replies(1)  # both machines hear us; we hear neither
                link.drop_replies(7)
                kiosk.stdin.write(b"go\n")
                await kiosk.stdin.drain()
                said = (await asyncio.wait_for(kiosk.stdout.readline(), 30)).decode().split()
                start_outcome, tx, stop_outcome, command_id = said
                assert (start_outcome, stop_outcome) == ("checking", "checking")
            finally:
                kiosk.kill()  # SIGKILL: nothing of the room's in memory survives
                await kiosk.wait()
            outbox = Outbox(path)
            room = LaundryRoom(settings_for(link.driver_path), outbox, TOPICS)
            await room.start()
            try:
                # From the book alone: the stop is still in doubt, so nothing else goes to the dryer.
                assert await room.command(7, "pause") == CommandView("refused", None, IN_DOUBT)
                assert unfinished_state(room, tx) is VendState.STARTING and room.ledger.charges() == []
                link.restore_replies(1)
                link.restore_replies(7)
                await wait_for(lambda: unfinished_state(room, tx) is VendState.IN_USE, within=40, what="the start read back")
                await wait_for(lambda: room.ledger.get_command(command_id).state != CommandState.SENT,  # type: ignore[union-attr]
                               within=40, what="the stop read back")
                # An idle dryer refuses a stop; the washer started once and is charged once.
                assert room.ledger.get_command(command_id).result_code == MachineCommandResult.NOT_ALLOWED_NOW  # type: ignore[union-attr]
                assert [(c.transaction_id, c.points) for c in room.ledger.charges()] == [(tx, 3)]
                assert [c[0] for c in sim.machines[1].executed] == ["start"]
                assert [c[0] for c in sim.machines[7].executed] == ["stop"]
                assert (await room.command(7, "pause")).reason == "not_allowed_now"  # no longer in doubt
            finally:
                await room.stop()
                outbox.close()
        finally:
            await sim.stop()
