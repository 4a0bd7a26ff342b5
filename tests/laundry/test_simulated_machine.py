"""The simulated board's command rules, enumerated from its table: every state x every command."""

from __future__ import annotations

import itertools

import pytest

from drivers.laundry.simulator import MACHINE_COMMANDS, SimulatedMachine, default_room
from drivers.laundry.status import MachineCommandResult
from firmware_configs.laundry import MachineState

DRYER = default_room()[7]
COMMANDS = sorted(DRYER.commands.codes)  # the dryer has every command, add_time included


def machine_in(state: MachineState) -> SimulatedMachine:
    machine = SimulatedMachine(DRYER)
    machine.state = state
    machine.remaining_s = machine.duration_s = 600
    return machine


@pytest.mark.parametrize(("state", "command"), list(itertools.product(MachineState, COMMANDS)))
def test_each_state_and_command_follows_the_table(state: MachineState, command: str) -> None:
    machine = machine_in(state)
    argument = DRYER.programs[0].code if command == "start" else 60
    machine.execute(DRYER.commands.codes[command], argument, sequence=7)
    target = MACHINE_COMMANDS.get((state, command))
    assert machine.echo_sequence == 7
    if target is None:
        assert (machine.echo_result, machine.state) == (MachineCommandResult.NOT_ALLOWED_NOW, state)
    else:
        assert (machine.echo_result, machine.state) == (MachineCommandResult.DONE, target)


def test_the_checks_after_the_table() -> None:
    machine = machine_in(MachineState.IDLE)
    machine.door_closed = False
    machine.execute(DRYER.commands.codes["start"], DRYER.programs[0].code, 1)
    assert (machine.echo_result, machine.state) == (MachineCommandResult.DOOR_OPEN, MachineState.IDLE)
    machine.door_closed = True
    machine.execute(DRYER.commands.codes["start"], 999, 2)
    assert (machine.echo_result, machine.state) == (MachineCommandResult.BAD_ARGUMENT, MachineState.IDLE)
    running = machine_in(MachineState.RUNNING)
    running.execute(DRYER.commands.codes["add_time"], 0, 3)
    assert (running.echo_result, running.remaining_s) == (MachineCommandResult.BAD_ARGUMENT, 600)
    running.execute(0x7777, 0, 4)
    assert running.echo_result == MachineCommandResult.UNKNOWN_COMMAND


def test_the_clock_and_the_door() -> None:
    machine = machine_in(MachineState.RUNNING)
    machine.tick(599)
    assert machine.state is MachineState.RUNNING
    machine.tick(1)
    assert (machine.state, machine.cycle_count) == (MachineState.DONE, 1)
    machine.open_door()
    assert (machine.state, machine.door_closed) == (MachineState.IDLE, False)
    locked = machine_in(MachineState.RUNNING)
    locked.open_door()
    assert locked.door_closed is True  # locked while a cycle is on
