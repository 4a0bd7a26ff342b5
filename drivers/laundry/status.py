"""One status block (the registers of one poll) to a normalised machine status. Pure: no I/O.

The bus reads `profile.status_block.count` registers from `profile.status_block.start` with
Read Holding Registers (Modbus Application Protocol v1.1b3, 6.3) and hands them here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from firmware_configs.laundry import (
    BitsField,
    LaundryProfile,
    LocalizedText,
    MachineState,
    StringField,
    U16Field,
    U32Field,
)


class StatusDecodeError(ValueError):
    """The controller's registers break its map: the device's fault, not ours."""

    def __init__(self, model: str, field: str, reason: str) -> None:
        super().__init__(f"{model}: {field}: {reason}")
        self.model = model
        self.field = field
        self.reason = reason


class MachineCommandResult(IntEnum):
    """What our retrofit boards echo in `command_echo_result` after executing a command."""

    DONE = 0
    UNKNOWN_COMMAND = 1
    NOT_ALLOWED_NOW = 2  # e.g. start while not idle, resume while not paused
    DOOR_OPEN = 3
    BAD_ARGUMENT = 4  # e.g. a program code the machine does not have


@dataclass(frozen=True, slots=True)
class MachineStatus:
    state: MachineState
    phase: str | None
    program: int | None
    remaining_seconds: int | None
    door_closed: bool | None
    door_locked: bool | None
    error_code: int | None  # None: no error (code 0) or the model has no error register
    error_text: LocalizedText | None
    credit: int | None
    cycle_count: int | None
    heartbeat: int
    command_echo_sequence: int
    command_echo_result: int
    firmware: str | None


def decode_status(profile: LaundryProfile, registers: Sequence[int]) -> MachineStatus:
    """Raises StatusDecodeError for a block of the wrong length or a code the map does not know."""
    block = profile.status_block
    if len(registers) != block.count:
        raise StatusDecodeError(profile.model, "status_block", f"expected {block.count} registers, got {len(registers)}")
    if any(not 0 <= r <= 0xFFFF for r in registers):
        raise StatusDecodeError(profile.model, "status_block", "a register value outside 0..65535")

    def at(field: U16Field | U32Field | BitsField | StringField) -> int:
        return field.address - block.start

    def number(field: U16Field | U32Field | None) -> int | None:
        if field is None:
            return None
        first = registers[at(field)]
        if isinstance(field, U16Field):
            return first
        second = registers[at(field) + 1]
        high, low = (first, second) if field.word_order == "big" else (second, first)
        return (high << 16) | low

    f = profile.fields
    state_code = registers[at(f.state)]
    if state_code not in profile.states:
        raise StatusDecodeError(profile.model, "state", f"unknown state code {state_code}")
    phase = None
    if f.phase is not None:
        phase_code = registers[at(f.phase)]
        if phase_code not in profile.phases:
            raise StatusDecodeError(profile.model, "phase", f"unknown phase code {phase_code}")
        phase = profile.phases[phase_code]
    door_closed = door_locked = None
    if f.door is not None:
        door = registers[at(f.door)]
        if "closed" in f.door.bits:
            door_closed = bool(door >> f.door.bits["closed"] & 1)
        if "locked" in f.door.bits:
            door_locked = bool(door >> f.door.bits["locked"] & 1)
    error_code = number(f.error_code) or None
    firmware = None
    if f.firmware is not None:
        raw = b"".join(r.to_bytes(2, "big") for r in registers[at(f.firmware) : at(f.firmware) + f.firmware.registers])
        text = raw.rstrip(b"\x00 ").decode("ascii", errors="replace")
        # ASCII padded with NULs or spaces; anything else a board sends (a half-written buffer)
        # is shown as U+FFFD, never as control characters: a NUL would make every event naming
        # this firmware one the bridge refuses (PostgreSQL text cannot hold it).
        firmware = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return MachineStatus(
        state=profile.states[state_code],
        phase=phase,
        program=number(f.program) or None,
        remaining_seconds=number(f.remaining_seconds),
        door_closed=door_closed,
        door_locked=door_locked,
        error_code=error_code,
        # An error code the map does not list is still reported: a technician looks it up.
        error_text=profile.error_codes.get(error_code) if error_code is not None else None,
        credit=number(f.credit),
        cycle_count=number(f.cycle_count),
        heartbeat=registers[at(f.heartbeat)],
        command_echo_sequence=registers[at(f.command_echo_sequence)],
        command_echo_result=registers[at(f.command_echo_result)],
        firmware=firmware,
    )
