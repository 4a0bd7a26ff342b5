"""Laundry machine register maps: YAML data in firmware_configs/laundry/, validated when loaded.

There are no public Modbus maps for branded commercial laundry: real installs put a PLC or a
retrofit controller board on each machine, so the map is ours to define, per model. Addresses
are 0-based PDU addresses (Modbus Application Protocol v1.1b3, 4.4): what a PLC manual calls
holding register 40001 is address 0 here.
"""

from __future__ import annotations

from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_REGISTER_ADDRESS = 0xFFFF
MAX_BLOCK_REGISTERS = 125  # Modbus 6.3: Read Holding Registers returns at most 125 registers
COMMAND_REGISTERS = 3  # command code, argument, sequence number: see CommandBlock


class LaundryProfileError(ValueError):
    """A register map that cannot be used; the message names the file, the field and the problem."""


class MachineState(StrEnum):
    """The normalised states every model's own state codes map onto."""

    IDLE = "idle"
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAULT = "fault"
    SERVICE = "service"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Address = Annotated[int, Field(ge=0, le=MAX_REGISTER_ADDRESS)]
# A code the board writes into (or reads from) one 16-bit register.
RegisterValue = Annotated[int, Field(ge=0, le=0xFFFF)]
# 0 in an error register means "no error" (status.py); 0 in a program register means "none".
NonZeroRegisterValue = Annotated[int, Field(ge=1, le=0xFFFF)]
MachineCommandName = Literal["start", "pause", "resume", "stop", "clear_fault", "add_time"]
# The state each command needs the map to have, else the board could never be in a state where
# the command is allowed (the simulator's MACHINE_COMMANDS; docs/laundry.md).
_STATE_A_COMMAND_NEEDS: dict[str, MachineState] = {
    "pause": MachineState.PAUSED,
    "resume": MachineState.PAUSED,
    "clear_fault": MachineState.FAULT,
}


class U16Field(_Strict):
    type: Literal["u16"]
    address: Address


class U32Field(_Strict):
    type: Literal["u32"]
    address: Address
    # Modbus has no 32-bit type; controllers disagree on which register holds the high word.
    word_order: Literal["big", "little"] = "big"


class BitsField(_Strict):
    type: Literal["bits"]
    address: Address
    bits: dict[str, Annotated[int, Field(ge=0, le=15)]] = Field(min_length=1)


class StringField(_Strict):
    type: Literal["string"]
    address: Address
    registers: int = Field(ge=1, le=16, description="two ASCII characters per register, high byte first")


RegisterField = Annotated[U16Field | U32Field | BitsField | StringField, Field(discriminator="type")]
# A number that may need more than 16 bits: discriminated by `type`, so a wrong type is reported
# as one problem ("Input tag 'float' ... expected tags: 'u16', 'u32'"), not one per alternative.
NumberField = Annotated[U16Field | U32Field, Field(discriminator="type")]


def register_count(field: U16Field | U32Field | BitsField | StringField) -> int:
    match field:
        case U32Field():
            return 2
        case StringField():
            return field.registers
    return 1


class StatusFields(_Strict):
    """Where each part of the normalised status lives. Optional parts may be left out."""

    state: U16Field
    phase: U16Field | None = None
    program: U16Field | None = None
    remaining_seconds: NumberField | None = None
    door: BitsField | None = Field(default=None, description="bits named 'closed' and/or 'locked'")
    error_code: U16Field | None = None
    credit: U16Field | None = None
    cycle_count: NumberField | None = None
    heartbeat: U16Field = Field(description="a counter the controller advances: proof it is not frozen")
    command_echo_sequence: U16Field = Field(description="the sequence number of the last command it executed")
    command_echo_result: U16Field = Field(description="that command's result code (0 = done)")
    firmware: StringField | None = None


class StatusBlock(_Strict):
    """One contiguous read per poll (Read Holding Registers, function 3)."""

    start: Address
    count: int = Field(ge=1, le=MAX_BLOCK_REGISTERS)


class LocalizedText(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Program(_Strict):
    code: NonZeroRegisterValue = Field(description="what the controller's program register takes (0 means none)")
    name: LocalizedText
    duration_s: int = Field(gt=0)
    price_points: int = Field(ge=0, description="volunteer points; free for residents over 80 by site policy")


class CommandBlock(_Strict):
    """Commands are written as one block: command code, argument, sequence number. The machine
    echoes the sequence number with a result in the status block, so a command whose reply was
    lost can be read back instead of being sent twice."""

    start: Address
    codes: dict[MachineCommandName, NonZeroRegisterValue] = Field(min_length=1)


class LaundryProfile(_Strict):
    model: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    manufacturer: str = Field(min_length=1)
    kind: Literal["washer", "dryer"]
    status_block: StatusBlock
    fields: StatusFields
    states: dict[RegisterValue, MachineState] = Field(min_length=1, description="the controller's state codes")
    phases: dict[RegisterValue, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    error_codes: dict[NonZeroRegisterValue, LocalizedText] = Field(default_factory=dict)
    programs: list[Program] = Field(min_length=1)
    commands: CommandBlock
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Every cross-field problem at once, one per line, each naming its field."""
        problems: list[str] = []
        block = range(self.status_block.start, self.status_block.start + self.status_block.count)
        used: dict[int, str] = {}
        for name in StatusFields.model_fields:
            field = getattr(self.fields, name)
            if field is None:
                continue
            span = range(field.address, field.address + register_count(field))
            if span.start not in block or span.stop - 1 not in block:
                problems.append(
                    f"fields.{name}: registers {span.start}-{span.stop - 1} lie outside the status block "
                    f"{block.start}-{block.stop - 1}"
                )
                continue
            for address in span:
                if address in used:
                    problems.append(f"fields.{name}: register {address} is already fields.{used[address]}")
                used[address] = name
        if self.status_block.start + self.status_block.count - 1 > MAX_REGISTER_ADDRESS:
            problems.append(f"status_block: registers {block.start}-{block.stop - 1} pass address 65535")
        states = set(self.states.values())
        for needed in (MachineState.IDLE, MachineState.RUNNING):
            if needed not in states:
                problems.append(f"states: no code means {needed.value!r}: the kiosk could not start or follow a cycle")
        for command, needed in _STATE_A_COMMAND_NEEDS.items():
            if command in self.commands.codes and needed not in states:
                problems.append(f"commands.codes.{command}: the map has no {needed.value!r} state for it")
        if (self.fields.phase is None) != (not self.phases):
            problems.append("phases: a phase table needs fields.phase, and fields.phase needs a phase table")
        if self.fields.door is not None and not set(self.fields.door.bits) <= {"closed", "locked"}:
            problems.append("fields.door.bits: only 'closed' and 'locked' are understood")
        codes = [p.code for p in self.programs]
        if len(codes) != len(set(codes)):
            problems.append("programs: two programs share a code")
        if "start" not in self.commands.codes:
            problems.append("commands.codes.start: required: a machine the kiosk cannot start cannot be sold")
        by_code: dict[int, str] = {}
        for command, code in self.commands.codes.items():
            if code in by_code:
                problems.append(f"commands.codes.{command}: code {code} is already commands.codes.{by_code[code]}")
            by_code[code] = command
        if self.commands.start + COMMAND_REGISTERS - 1 > MAX_REGISTER_ADDRESS:
            problems.append(f"commands.start: the command registers {self.commands.start}-"
                            f"{self.commands.start + COMMAND_REGISTERS - 1} pass address 65535")
        if "add_time" in self.commands.codes and self.kind != "dryer":
            problems.append("commands.codes.add_time: only dryers add time")
        if set(range(self.commands.start, self.commands.start + COMMAND_REGISTERS)) & set(block):
            problems.append("commands.start: the command registers overlap the status block")
        if problems:
            raise ValueError("\n".join(problems))
        return self


def format_problems(name: str, error: ValidationError) -> list[str]:
    """One 'file: field: problem' line per problem (cross-field checks report several at once)."""
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"])
        for message in str(item["msg"]).removeprefix("Value error, ").splitlines():
            lines.append(f"{name}: {where}: {message}" if where else f"{name}: {message}")
    return lines


def load_laundry_profile(source: Traversable | Path, name: str) -> LaundryProfile:
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as error:
        raise LaundryProfileError(f"{name}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise LaundryProfileError(f"{name}: not UTF-8 text: {error.reason} at byte {error.start}") from None
    except yaml.YAMLError as error:
        raise LaundryProfileError(f"{name}: not valid YAML: {error}") from None
    try:
        return LaundryProfile.model_validate(data)
    except ValidationError as error:
        raise LaundryProfileError("\n".join(format_problems(name, error))) from None


def load_laundry_profiles(directory: Traversable | Path | None = None) -> dict[str, LaundryProfile]:
    """Every map in `directory` (default: the ones shipped in firmware_configs/laundry/), by
    model name. Two files claiming one model name are an error, never a silent choice."""
    if directory is None:
        directory, shown = files(__package__).joinpath("laundry"), "firmware_configs/laundry"
    else:
        shown = str(directory)
    profiles: dict[str, LaundryProfile] = {}
    origin: dict[str, str] = {}
    for source in sorted(directory.iterdir(), key=lambda t: t.name):
        if source.name.endswith(".yaml"):
            name = f"{shown}/{source.name}"
            profile = load_laundry_profile(source, name)
            if profile.model in profiles:
                raise LaundryProfileError(f"{name}: model: {profile.model!r} is already the model of {origin[profile.model]}")
            profiles[profile.model], origin[profile.model] = profile, name
    return profiles
