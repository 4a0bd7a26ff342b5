"""A whole laundry room on one RS-485 line: a pymodbus RTU server playing every machine's map.

Each unit is a small state machine over its register map (firmware_configs/laundry/*.yaml):
idle -> running (through its phases, remaining seconds counting down on a compressed clock)
-> done -> idle when the door is opened. Commands written to the command block are executed
and echoed (sequence number + result code) in the status block, as the retrofit boards do.
Faults are injectable per unit, both in the machine (door open, drain error, a frozen
controller) and on the wire (no reply, garbage, a reply that comes too late, an exception reply,
a reply with too few registers, a write reply echoing the wrong address).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Self

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerRTU, FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.transport import ModbusProtocol

from drivers.laundry.status import MachineCommandResult
from firmware_configs.laundry import (
    COMMAND_REGISTERS,
    BitsField,
    LaundryProfile,
    MachineState,
    StringField,
    U16Field,
    U32Field,
    load_laundry_profiles,
)

# Modbus Application Protocol v1.1b3, 6.3 / 6.6 / 6.12: the functions a retrofit board answers.
READ_HOLDING_REGISTERS = 3
WRITE_SINGLE_REGISTER = 6
WRITE_MULTIPLE_REGISTERS = 16

_I, _RD, _RN, _P, _F = MachineState.IDLE, MachineState.READY, MachineState.RUNNING, MachineState.PAUSED, MachineState.FAULT
# The board's command rules, one table: (state, command) -> the state it moves to. A pair not
# listed is refused with NOT_ALLOWED_NOW; a listed one may still be refused by its own check
# (start: door closed, a program the board has; add_time: a non-zero argument).
MACHINE_COMMANDS: Mapping[tuple[MachineState, str], MachineState] = MappingProxyType(
    {
        (_I, "start"): _RN,
        (_RD, "start"): _RN,
        (_RN, "pause"): _P,
        (_P, "resume"): _RN,
        (_RN, "stop"): _I,
        (_P, "stop"): _I,
        (_F, "clear_fault"): _I,
        (_RN, "add_time"): _RN,
        (_P, "add_time"): _P,
    }
)


@dataclass(frozen=True, slots=True)
class UnitFaults:
    """Wire faults of one unit. Machine faults (door, drain, frozen) live in the machine state."""

    unresponsive: bool = False
    garbage_reply: bool = False
    slow_reply_s: float = 0.0
    exception_code: ExcCodes | None = None  # answer every request with this Modbus exception
    short_reply: bool = False  # a valid frame with one register fewer than asked for
    wrong_write_echo: bool = False  # a write's reply echoes another starting address (valid CRC)
    # Answer every read with this exception, but execute writes: a board that is busy (0x06)
    # running what was just written to it.
    read_exception_code: ExcCodes | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the simulated line received it: what test assertions about order use."""

    at: float  # time.monotonic()
    unit: int
    function: int


def default_room() -> dict[int, LaundryProfile]:
    """6 washers on units 1-6, 2 dryers on units 7-8."""
    profiles = load_laundry_profiles()
    room = {unit: profiles["washer-retrofit-a"] for unit in range(1, 7)}
    room |= {unit: profiles["dryer-retrofit-b"] for unit in (7, 8)}
    return room


def busy_room(simulator: LaundryRoomSimulator) -> None:
    """A room as a resident finds it mid-morning (for the demo): some machines running, one
    done with laundry inside, one with a drain fault. Units beyond the room are left idle."""
    machines = simulator.machines
    for unit, minutes_left in ((1, 20), (7, 35)):
        if unit in machines:
            machine = machines[unit]
            machine.execute(machine.profile.commands.codes["start"], machine.profile.programs[0].code, 1)
            machine.remaining_s = minutes_left * 60
    if 4 in machines:
        machines[4].state = MachineState.DONE
    if 5 in machines:
        machines[5].drain_error()


def _drain_error_code(profile: LaundryProfile) -> int:
    """The map's own code for a drain fault; a dryer has none, so its first listed fault."""
    for code, text in sorted(profile.error_codes.items()):
        if "drain" in text.en.lower():
            return code
    return min(profile.error_codes, default=1)


class SimulatedMachine:
    """One machine's behaviour; renders itself into its map's registers on every read."""

    def __init__(self, profile: LaundryProfile, firmware: str = "SIM1.0") -> None:
        self.profile = profile
        self.firmware = firmware
        self.state = MachineState.IDLE
        self.program = 0
        self.duration_s = 0
        self.remaining_s = 0
        self.door_closed = True
        self.door_jammed_open = False
        self.frozen = False  # the controller's program hangs; its Modbus side still answers
        self.error_code = 0
        self.credit = 0
        self.cycle_count = 0
        self.heartbeat = 0
        self.echo_sequence = 0
        self.echo_result = 0
        self.command_registers = [0] * COMMAND_REGISTERS
        self.executed: list[tuple[str | None, int, int, MachineCommandResult]] = []  # (command, argument, sequence, result)
        self._state_codes: dict[MachineState, int] = {}
        for code, state in sorted(profile.states.items()):
            self._state_codes.setdefault(state, code)
        self._phase_codes = {name: code for code, name in profile.phases.items()}

    # -- the clock --

    def tick(self, seconds: int) -> None:
        if self.frozen:
            return  # no heartbeat, no clock: exactly what the heartbeat register exists to show
        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        if self.state is not MachineState.RUNNING:
            return
        self.remaining_s = max(0, self.remaining_s - seconds)
        if self.remaining_s == 0:
            self.state = MachineState.DONE
            self.cycle_count = (self.cycle_count + 1) & 0xFFFFFFFF

    def phase(self) -> str:
        if self.state not in (MachineState.RUNNING, MachineState.PAUSED) or not self.duration_s:
            return "none"
        # The washer's phases in order, each an equal share of the programme.
        order = [name for code, name in sorted(self.profile.phases.items()) if name != "none"]
        if not order:
            return "none"
        done = 1 - self.remaining_s / self.duration_s
        return order[min(len(order) - 1, int(done * len(order)))]

    # -- the door (a resident's hand, or a fault) --

    def open_door(self) -> None:
        if self.state in (MachineState.RUNNING, MachineState.PAUSED):
            return  # locked while a cycle is on
        self.door_closed = False
        if self.state is MachineState.DONE:
            self.state = MachineState.IDLE
            self.program = 0

    def close_door(self) -> None:
        if not self.door_jammed_open:
            self.door_closed = True

    def drain_error(self) -> None:
        self.state = MachineState.FAULT
        self.error_code = _drain_error_code(self.profile)

    # -- commands --

    def execute(self, code: int, argument: int, sequence: int) -> None:
        if self.frozen:
            return  # written, never executed, never echoed
        names = {value: name for name, value in self.profile.commands.codes.items()}
        result = self._run(names.get(code), argument)
        self.executed.append((names.get(code), argument, sequence, result))
        self.echo_sequence = sequence
        self.echo_result = int(result)

    def _run(self, command: str | None, argument: int) -> MachineCommandResult:
        if command is None:
            return MachineCommandResult.UNKNOWN_COMMAND
        target = MACHINE_COMMANDS.get((self.state, command))
        if target is None:
            return MachineCommandResult.NOT_ALLOWED_NOW
        match command:
            case "start":
                if not self.door_closed:
                    return MachineCommandResult.DOOR_OPEN
                program = next((p for p in self.profile.programs if p.code == argument), None)
                if program is None:
                    return MachineCommandResult.BAD_ARGUMENT
                self.program = program.code
                self.duration_s = self.remaining_s = program.duration_s
            case "stop":
                self.program, self.remaining_s = 0, 0
            case "clear_fault":
                self.error_code = 0
            case "add_time":
                if argument == 0:
                    return MachineCommandResult.BAD_ARGUMENT
                self.remaining_s = min(0xFFFF, self.remaining_s + argument)
                self.duration_s = max(self.duration_s, self.remaining_s)
        self.state = target
        return MachineCommandResult.DONE

    # -- registers --

    def status_registers(self) -> list[int]:
        block = self.profile.status_block
        regs = [0] * block.count
        f = self.profile.fields

        def put(field: U16Field | U32Field | BitsField | StringField | None, value: int | str) -> None:
            if field is None:
                return
            at = field.address - block.start
            match field:
                case U32Field():
                    assert isinstance(value, int)
                    high, low = value >> 16 & 0xFFFF, value & 0xFFFF
                    regs[at : at + 2] = [high, low] if field.word_order == "big" else [low, high]
                case StringField():
                    raw = str(value).encode("ascii")[: field.registers * 2].ljust(field.registers * 2, b"\x00")
                    regs[at : at + field.registers] = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
                case _:
                    assert isinstance(value, int)
                    regs[at] = value & 0xFFFF

        put(f.state, self._state_codes[self.state])
        put(f.phase, self._phase_codes.get(self.phase(), 0))
        put(f.program, self.program)
        put(f.remaining_seconds, self.remaining_s)
        if f.door is not None:
            locked = self.state in (MachineState.RUNNING, MachineState.PAUSED)
            bits = {"closed": self.door_closed, "locked": locked}
            put(f.door, sum(1 << bit for name, bit in f.door.bits.items() if bits[name]))
        put(f.error_code, self.error_code)
        put(f.credit, self.credit)
        put(f.cycle_count, self.cycle_count)
        put(f.heartbeat, self.heartbeat)
        put(f.command_echo_sequence, self.echo_sequence)
        put(f.command_echo_result, self.echo_result)
        put(f.firmware, self.firmware)
        return regs


class _RoomContext(ModbusServerContext):
    """The datastore pymodbus' request handler calls: every read renders the machine's registers.

    Passed to ModbusSerialServer as a ModbusServerContext flagged `old_simulator`, which makes
    pymodbus use it as-is (pinned in tests/laundry/test_pymodbus_conformance.py). The parent's
    __init__ is skipped on purpose: it wraps devices in its own deprecated data blocks.
    """

    def __init__(self, room: LaundryRoomSimulator) -> None:  # no super().__init__(): see above
        self._room = room
        self.old_simulator = True
        self.simdevices = []

    def _machine(self, device_id: int, func_code: int) -> SimulatedMachine:
        self._room.requests.append(Request(time.monotonic(), device_id, func_code))
        machine = self._room.machines.get(device_id)
        if machine is None or self._room.faults(device_id).unresponsive:
            # With ignore_missing_devices the handler then sends nothing: a silent unit, as on a
            # real line. Without it (gateway=True) it answers exception 0x0B, as a gateway does.
            raise NoSuchIdException(f"unit {device_id} does not answer")
        return machine

    async def async_getValues(  # pymodbus' name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        if func_code in (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS):
            # A write's response echoes only address and count; nothing to read back (and the
            # request was logged by async_setValues already).
            return [0] * count
        machine = self._machine(device_id, func_code)
        faults = self._room.faults(device_id)
        if faults.exception_code is not None:
            return faults.exception_code
        if faults.read_exception_code is not None:
            return faults.read_exception_code
        if func_code != READ_HOLDING_REGISTERS:
            return ExcCodes.ILLEGAL_FUNCTION
        block = machine.profile.status_block
        if block.start <= address and address + count <= block.start + block.count:
            regs = machine.status_registers()
            # Application Protocol v1.1b3, 6.3: the reply's byte count says how many follow, so
            # a shorter reply is still a valid frame; only the register count can catch it.
            shown = count - 1 if faults.short_reply else count
            return regs[address - block.start : address - block.start + shown]
        cmd = machine.profile.commands.start
        if cmd <= address and address + count <= cmd + COMMAND_REGISTERS:
            return machine.command_registers[address - cmd : address - cmd + count]
        return ExcCodes.ILLEGAL_ADDRESS  # Application Protocol v1.1b3, 7: exception code 02

    async def async_setValues(  # pymodbus' name
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        machine = self._machine(device_id, func_code)
        if (code := self._room.faults(device_id).exception_code) is not None:
            return code
        if func_code not in (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS):
            return ExcCodes.ILLEGAL_FUNCTION
        cmd = machine.profile.commands.start
        if not (cmd <= address and address + len(values) <= cmd + COMMAND_REGISTERS):
            return ExcCodes.ILLEGAL_ADDRESS  # the status block is read-only
        for offset, value in enumerate(values, start=address - cmd):
            machine.command_registers[offset] = int(value)
        if address + len(values) == cmd + COMMAND_REGISTERS:
            # Writing the sequence number (the last register) is what triggers execution.
            machine.execute(*machine.command_registers)
        return None

    def device_ids(self) -> list[int]:
        return list(self._room.machines)


class _RoomServer(ModbusSerialServer):
    """Remembers the request handler for the line, so a slow reply can be sent later."""

    handler: ModbusProtocol | None = None

    def callback_new_connection(self) -> ModbusProtocol:
        self.handler = super().callback_new_connection()
        return self.handler


class LaundryRoomSimulator:
    """`await start()`, then drive it: `open_door(unit)`, `inject(unit, ...)`; `await stop()`."""

    def __init__(
        self,
        port_path: str,
        machines: Mapping[int, LaundryProfile] | None = None,
        *,
        baudrate: int = 9600,
        tick_interval_s: float = 0.1,
        seconds_per_tick: int = 30,
        rng: random.Random | None = None,
        gateway: bool = False,
    ) -> None:
        """seconds_per_tick: machine seconds that pass per real tick (a compressed clock).
        gateway: answer for a unit that is not there (or unresponsive) with exception 0x0B, as
        an RTU gateway does, instead of the silence of a plain line."""
        self.port_path = port_path
        self.gateway = gateway
        self.baudrate = baudrate
        self.tick_interval_s = tick_interval_s
        self.seconds_per_tick = seconds_per_tick
        self.machines: dict[int, SimulatedMachine] = {
            unit: SimulatedMachine(profile, firmware=f"SIM{unit}") for unit, profile in (machines or default_room()).items()
        }
        self._faults: dict[int, UnitFaults] = {}
        self._rng = rng or random.Random(0)
        self._server: _RoomServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._late: set[asyncio.TimerHandle] = set()
        self.requests_seen = 0  # replies sent
        self.requests: deque[Request] = deque(maxlen=10_000)  # requests received, in order

    def faults(self, unit: int) -> UnitFaults:
        return self._faults.get(unit, UnitFaults())

    # -- fault injection --

    def inject(
        self,
        unit: int,
        *,
        unresponsive: bool = False,
        garbage_reply: bool = False,
        slow_reply_s: float = 0.0,
        exception_code: ExcCodes | None = None,
        short_reply: bool = False,
        wrong_write_echo: bool = False,
        read_exception_code: ExcCodes | None = None,
    ) -> None:
        """Replace unit's wire faults with these."""
        self._faults[unit] = UnitFaults(
            unresponsive, garbage_reply, slow_reply_s, exception_code, short_reply, wrong_write_echo, read_exception_code
        )

    def clear_faults(self, unit: int) -> None:
        self._faults.pop(unit, None)

    def door_open(self, unit: int) -> None:
        """A door that will not shut (a jammed latch): start is refused with DOOR_OPEN."""
        machine = self.machines[unit]
        machine.door_jammed_open = True
        machine.open_door()

    def drain_error(self, unit: int) -> None:
        self.machines[unit].drain_error()

    def freeze(self, unit: int, frozen: bool = True) -> None:
        """A controller whose program hangs while its Modbus side still answers."""
        self.machines[unit].frozen = frozen

    def open_door(self, unit: int) -> None:
        self.machines[unit].open_door()

    def close_door(self, unit: int) -> None:
        self.machines[unit].door_jammed_open = False
        self.machines[unit].close_door()

    # -- the wire --

    def _trace_packet(self, sending: bool, packet: bytes) -> bytes:
        """pymodbus calls this with every outgoing frame; wire faults are applied here."""
        if not sending:
            return packet
        if not packet:
            return packet
        self.requests_seen += 1
        faults = self.faults(packet[0])
        if faults.wrong_write_echo and len(packet) == 8 and packet[1] == WRITE_MULTIPLE_REGISTERS:
            # Application Protocol v1.1b3, 6.12: unit, 0x10, address (2), quantity (2), CRC (2).
            address = (int.from_bytes(packet[2:4], "big") + 1) & 0xFFFF
            body = packet[:2] + address.to_bytes(2, "big") + packet[4:6]
            packet = body + FramerRTU.compute_CRC(body).to_bytes(2, "big")
        if faults.garbage_reply:
            garbage = packet[:1] + self._rng.randbytes(len(packet) - 1)
            # Serial Line v1.02, 2.5.1.2: CRC-16 (poly 0xA001, init 0xFFFF); make sure it fails.
            if FramerRTU.check_CRC(garbage[:-2], int.from_bytes(garbage[-2:], "big")):
                garbage = garbage[:-1] + bytes([garbage[-1] ^ 0xFF])
            return garbage
        if faults.slow_reply_s > 0 and self._server is not None and self._server.handler is not None:
            handler = self._server.handler
            loop = asyncio.get_running_loop()
            timer: asyncio.TimerHandle

            def send_late() -> None:
                self._late.discard(timer)
                handler.send(packet)

            timer = loop.call_later(faults.slow_reply_s, send_late)
            self._late.add(timer)
            return b""
        return packet

    # -- life cycle --

    async def start(self) -> None:
        self._server = _RoomServer(
            _RoomContext(self),
            framer=FramerType.RTU,
            port=self.port_path,
            baudrate=self.baudrate,
            ignore_missing_devices=not self.gateway,
            trace_packet=self._trace_packet,
        )
        await self._server.serve_forever(background=True)
        self._ticker = asyncio.create_task(self._tick_forever(), name="laundry-sim-clock")

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval_s)
            for machine in self.machines.values():
                machine.tick(self.seconds_per_tick)

    async def stop(self) -> None:
        for timer in self._late:
            timer.cancel()
        self._late.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


