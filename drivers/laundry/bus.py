"""One RS-485 line, one owner: round-robin status polling of every machine, commands first.

The only module of the product that imports pymodbus (simulator.py, which plays the machines'
side in the demo and the tests, is the other; tests/laundry/test_layering.py holds both to it).
One owner per port: pymodbus opens it through pyserial with `exclusive=True` (an flock), so a
second bus, or any other program that locks it, is refused at `start()`.

Modbus RTU (Serial Line v1.02) is master/slave, one request in flight, and has no transaction
id: a reply is matched to a request only by arriving while that request is outstanding. So
after a timeout this bus stays quiet for a guard interval and throws away whatever arrives in
it, and every reply is checked for unit, function code and register count (for a write, the
address and quantity it echoes) before it is believed.

What pymodbus 3.16 does and does not do here (read from its source, pinned in
tests/laundry/test_pymodbus_conformance.py):
- it clears its receive buffer when a request is sent and drops frames whose unit id differs
  from the request's; it does NOT check the function code, and a late reply from the same unit
  arriving during the next request would be taken as its answer;
- a frame failing CRC-16 is discarded silently and surfaces as a timeout, so CRC errors are told
  apart here by watching the raw bytes (trace_packet): bytes arrived but no frame was accepted;
- its own retries are disabled (retries=0): a retry policy belongs to the scheduler, which
  knows the other machines are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Final, Literal, Self

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from drivers.laundry.link import ERROR_EFFECTS, BusError, ErrorKind, LinkEffect, LinkRules, LinkState, UnitLink
from drivers.laundry.status import MachineStatus, StatusDecodeError, decode_status
from firmware_configs.laundry import COMMAND_REGISTERS, LaundryProfile, MachineCommandName, MachineState

__all__ = [
    "OFFLINE",
    "BusError",
    "BusEvent",
    "DriverState",
    "ErrorKind",
    "LaundryBus",
    "LinkState",
    "MachineCommandName",
    "MachineCommandOutcome",
    "PortUnavailable",
    "UnitLink",
    "driver_state",
]

# Modbus Application Protocol v1.1b3, 6.3 and 6.12.
READ_HOLDING_REGISTERS = 0x03
WRITE_MULTIPLE_REGISTERS = 0x10
EXCEPTION_FLAG = 0x80  # Application Protocol v1.1b3, 7: function code + 0x80 in an exception reply
# Application Protocol v1.1b3, 7: 0x0A gateway path unavailable, 0x0B gateway target failed to
# respond: the unit is not there (a plain RTU line just stays silent: link.py, NO_SUCH_UNIT).
GATEWAY_NO_UNIT_CODES = frozenset({0x0A, 0x0B})
# Serial Line v1.02, 2.5.1.1: 11 bits per RTU character; frames are separated by 3.5 character
# times of silence; above 19200 bit/s a fixed 1.75 ms is recommended.
BITS_PER_CHARACTER = 11
SILENT_INTERVAL_CHARACTERS = 3.5
SILENT_INTERVAL_FAST_S = 0.00175
FAST_BAUDRATE = 19200

# How long a heartbeat may stand still before the controller counts as frozen. Our boards advance
# it at least once a second (docs/laundry.md, "What the board must do"); at the agent's idle poll
# interval (10 s) this is the second identical reading, never the first.
FROZEN_AFTER_S = 15.0

# The driver's view of a machine's state: the map's normalised states, plus "offline" when the
# link is (a decoded block can never say offline: something answered to produce it).
OFFLINE: Final = "offline"
DriverState = MachineState | Literal["offline"]


class PortUnavailable(ConnectionError):
    """The serial port cannot be opened: unplugged, not permitted, or owned by someone else."""


def silent_interval_s(baudrate: int) -> float:
    if baudrate > FAST_BAUDRATE:
        return SILENT_INTERVAL_FAST_S
    return SILENT_INTERVAL_CHARACTERS * BITS_PER_CHARACTER / baudrate


@dataclass(frozen=True, slots=True)
class MachineCommandOutcome:
    unit: int
    command: str
    sequence: int
    result_code: int | None  # the machine's echoed result; None if never confirmed
    error: BusError | None  # why it is not confirmed; None when result_code is the machine's echo
    write_error: BusError | None = None  # what was wrong with the write's own reply, if anything
    # False when the write itself was answered with an exception (or the unit is not on this
    # bus): the board acted on nothing. True once the write may have reached the board, so that
    # an exception to a confirming status read after it is not taken for a refused write.
    written: bool = True

    @property
    def done(self) -> bool:
        return self.error is None and self.result_code == 0


@dataclass(frozen=True, slots=True)
class BusEvent:
    """A change worth telling the app about: a new status (heartbeat ignored) or link state."""

    unit: int
    status: MachineStatus | None
    link: UnitLink

    @property
    def state(self) -> DriverState | None:
        return driver_state(self.status, self.link)


def driver_state(status: MachineStatus | None, link: UnitLink) -> DriverState | None:
    """'offline' while the link is; else the last status's state; None before the first read."""
    if link.state is LinkState.OFFLINE:
        return OFFLINE
    return None if status is None else status.state


@dataclass(slots=True)
class _Unit:
    """Scheduler bookkeeping, mutable and private; the outside sees UnitLink snapshots."""

    profile: LaundryProfile
    status: MachineStatus | None = None
    state: LinkState = LinkState.ONLINE
    failures: int = 0
    last_error: BusError | None = None
    polls_ok: int = 0
    polls_failed: int = 0
    last_ok_at: float | None = None
    answered_once: bool = False
    last_error_at: datetime | None = None
    failing_since: datetime | None = None
    failures_by_kind: Counter[ErrorKind] = field(default_factory=Counter)
    heartbeat: int | None = None  # the last decoded heartbeat; None after a read that decoded nothing
    heartbeat_moved_at: float = 0.0  # time.monotonic() it was last seen to change
    next_due: float = 0.0

    def snapshot(self) -> UnitLink:
        return UnitLink(
            self.state, self.failures, self.last_error, self.polls_ok, self.polls_failed, self.last_ok_at,
            self.answered_once, self.last_error_at, self.failing_since, MappingProxyType(dict(self.failures_by_kind)),
        )


@dataclass(slots=True)
class _Command:
    unit: int
    command: str
    code: int
    argument: int
    sequence: int
    reply: asyncio.Future[MachineCommandOutcome]


class LaundryBus:
    def __init__(
        self,
        port: str,
        machines: Mapping[int, LaundryProfile],
        *,
        baudrate: int = 9600,
        timeout: float = 0.25,
        guard_s: float | None = None,
        offline_after: int = 3,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        confirm_reads: int = 3,
        frozen_after_s: float = FROZEN_AFTER_S,
        continuous: bool = True,
        on_change: Callable[[BusEvent], None] | None = None,
    ) -> None:
        """timeout: how long to wait for a reply. guard_s: the quiet time after a timeout
        (default: the timeout again), extended while late bytes keep arriving. frozen_after_s:
        how long a heartbeat may stand still. continuous: poll every unit as fast as the line
        allows; otherwise a unit is polled once per `request_poll` (the agent's schedule decides
        how often), offline ones on their backoff."""
        if not all(1 <= unit <= 247 for unit in machines):
            raise ValueError("unit ids are 1..247 (Serial Line v1.02, 2.2: 0 is broadcast)")
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.guard_s = timeout if guard_s is None else guard_s
        self.rules = LinkRules(offline_after, backoff_initial_s, backoff_max_s)
        self.confirm_reads = confirm_reads
        self.frozen_after_s = frozen_after_s
        self.continuous = continuous
        self._on_change = on_change
        self._units = {unit: _Unit(profile) for unit, profile in sorted(machines.items())}
        self._order = list(self._units)
        self._cursor = 0
        self._commands: deque[_Command] = deque()
        self._wake = asyncio.Event()
        self._subscribers: set[asyncio.Queue[BusEvent]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._t35 = silent_interval_s(baudrate)
        # Raw receive watch (see trace_packet): is a request outstanding, did bytes come back.
        self._accepting = False
        self._rx_seen = False
        self._last_rx = 0.0
        self.late_bytes_discarded = 0
        self._client = AsyncModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            timeout=timeout,
            retries=0,
            reconnect_delay=0.5,
            reconnect_delay_max=5.0,
            trace_packet=self._trace_packet,
        )

    # -- public view --

    def status(self, unit: int) -> MachineStatus | None:
        return self._units[unit].status

    def link(self, unit: int) -> UnitLink:
        return self._units[unit].snapshot()

    def state(self, unit: int) -> DriverState | None:
        """The machine's state as the driver sees it: 'offline' while its link is offline
        (its last status is kept, stale, in `status`); None before it has answered once."""
        u = self._units[unit]
        return driver_state(u.status, u.snapshot())

    @property
    def units(self) -> list[int]:
        return list(self._order)

    async def changes(self) -> AsyncGenerator[BusEvent]:
        """Every BusEvent from now on, until the caller stops iterating."""
        queue: asyncio.Queue[BusEvent] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    # -- life cycle --

    async def start(self) -> None:
        """Raises PortUnavailable if the port cannot be opened and locked for this bus alone."""
        if not await self._client.connect():
            raise PortUnavailable(
                f"cannot open {self.port}: missing, no permission (group dialout?), or in use by another program"
            )
        self._task = asyncio.create_task(self._run(), name=f"laundry-bus {self.port}")

    async def stop(self) -> None:
        # The flag as well as the cancel: pymodbus awaits replies with asyncio.wait_for, which on
        # Python 3.11 can swallow a cancellation that races with a reply. The loop then still ends,
        # after the exchange in progress.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for command in self._commands:
            command.reply.cancel()
        self._commands.clear()
        self._client.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- commands --

    async def submit_command(
        self, unit: int, command: MachineCommandName, argument: int = 0, sequence: int = 0
    ) -> MachineCommandOutcome:
        """Queue a command ahead of all polling; returns once the machine's echo is read back."""
        if unit not in self._units:
            return MachineCommandOutcome(
                unit, command, sequence, None, BusError(ErrorKind.NO_SUCH_UNIT, "not on this bus"), written=False
            )
        codes = self._units[unit].profile.commands.codes
        if command not in codes:
            raise ValueError(f"{self._units[unit].profile.model} has no {command!r} command")
        if not (0 <= argument <= 0xFFFF and 0 <= sequence <= 0xFFFF):
            raise ValueError("argument and sequence are 16-bit registers")
        reply: asyncio.Future[MachineCommandOutcome] = asyncio.get_running_loop().create_future()
        self._commands.append(_Command(unit, command, codes[command], argument, sequence, reply))
        self._wake.set()
        return await reply

    def request_poll(self, units: Iterable[int]) -> None:
        """Poll these units once, in round-robin order after any queued command. An offline
        unit keeps its backoff: asking more often must not let a dead unit starve the line."""
        now = time.monotonic()
        for unit in units:
            u = self._units[unit]
            if u.state is not LinkState.OFFLINE:
                u.next_due = min(u.next_due, now)
        self._wake.set()

    # -- the raw receive watch --

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus passes every sent frame and its whole receive buffer through here."""
        if sending:
            self._rx_seen = False
            return data
        self._last_rx = time.monotonic()
        if not self._accepting:
            # No request outstanding: a late reply. Returning nothing keeps it from the framer;
            # pymodbus empties its buffer when the next request is sent.
            self.late_bytes_discarded += len(data)
            return b""
        self._rx_seen = True
        return data

    async def _guard(self) -> None:
        """After a timeout: silence for guard_s, restarted by every late byte (bounded)."""
        start = time.monotonic()
        limit = start + 5 * self.guard_s  # a babbling line must not stall the bus forever
        while (now := time.monotonic()) < limit:
            quiet_until = max(start, self._last_rx) + self.guard_s
            if now >= quiet_until:
                return
            await asyncio.sleep(min(quiet_until, limit) - now)

    async def _transact(self, unit: int, function: int, send: Callable[[], object]) -> ModbusPDU | BusError:
        self._accepting = True
        try:
            reply = await send()  # type: ignore[misc]
        except ModbusIOException:
            self._accepting = False
            if self._rx_seen:
                await self._guard()
                return BusError(ErrorKind.CRC, "bytes without a valid frame")
            late_before = self.late_bytes_discarded
            await self._guard()
            if self.late_bytes_discarded > late_before:
                return BusError(ErrorKind.TIMEOUT, "a reply came after the timeout and was discarded", late_reply=True)
            return BusError(ErrorKind.TIMEOUT, "no reply")
        except ConnectionException as exc:
            return BusError(ErrorKind.DISCONNECTED, str(exc))
        finally:
            self._accepting = False
        assert isinstance(reply, ModbusPDU)
        # Serial Line v1.02, 2.5.1.1: the next frame may start only after 3.5 characters of silence.
        await asyncio.sleep(self._t35)
        if reply.dev_id != unit or reply.function_code & ~EXCEPTION_FLAG != function:
            await self._guard()
            return BusError(ErrorKind.BAD_REPLY, f"unit {reply.dev_id} function {reply.function_code:#x}")
        if reply.isError():
            code = getattr(reply, "exception_code", None)
            kind = ErrorKind.NO_SUCH_UNIT if code in GATEWAY_NO_UNIT_CODES else ErrorKind.EXCEPTION
            return BusError(kind, f"exception {code}", exception_code=code)
        return reply

    async def _read_status(self, unit: int) -> MachineStatus | BusError:
        block = self._units[unit].profile.status_block
        reply = await self._transact(
            unit,
            READ_HOLDING_REGISTERS,
            lambda: self._client.read_holding_registers(block.start, count=block.count, device_id=unit),
        )
        if isinstance(reply, BusError):
            return reply
        if len(reply.registers) != block.count:
            return BusError(ErrorKind.BAD_REPLY, f"{len(reply.registers)} registers, asked for {block.count}")
        try:
            return decode_status(self._units[unit].profile, reply.registers)
        except StatusDecodeError as exc:
            return BusError(ErrorKind.DECODE, str(exc))

    # -- scheduling --

    def _record(self, unit: int, result: MachineStatus | BusError) -> None:
        u = self._units[unit]
        before_state, before_status = u.state, u.status
        now = time.monotonic()
        # A valid frame from the unit itself, whatever it said, proves the unit id is on the line.
        answered = isinstance(result, MachineStatus) or result.kind in (ErrorKind.EXCEPTION, ErrorKind.DECODE)
        result = self._judge(u, result, now)
        u.answered_once |= answered
        effect = LinkEffect.ANSWERED if isinstance(result, MachineStatus) else ERROR_EFFECTS[result.kind]
        u.state, u.failures = self.rules.after(effect, u.failures)
        if isinstance(result, MachineStatus):
            u.status, u.polls_ok, u.last_ok_at = result, u.polls_ok + 1, now
            u.failing_since = None
            u.failures_by_kind.clear()
        else:
            u.last_error, u.polls_failed = result, u.polls_failed + 1
            u.last_error_at = datetime.now(UTC)
            u.failing_since = u.failing_since or u.last_error_at
            u.failures_by_kind[result.kind] += 1
        if u.state is LinkState.OFFLINE:
            u.next_due = now + self.rules.backoff_s(u.failures)
        else:
            u.next_due = self._after_poll()
        if u.state is not before_state or _without_heartbeat(u.status) != _without_heartbeat(before_status):
            self._emit(BusEvent(unit, u.status, u.snapshot()))

    def _judge(self, u: _Unit, result: MachineStatus | BusError, now: float) -> MachineStatus | BusError:
        """What only the unit's history can tell: a status whose heartbeat has stood still too
        long is a frozen controller; silence from a unit that never answered is no such unit."""
        if isinstance(result, MachineStatus):
            # Only consecutive decoded reads are compared: after a gap the old value means nothing.
            if result.heartbeat != u.heartbeat:
                u.heartbeat, u.heartbeat_moved_at = result.heartbeat, now
            elif now - u.heartbeat_moved_at >= self.frozen_after_s:
                return BusError(
                    ErrorKind.FROZEN,
                    f"heartbeat stuck at {result.heartbeat} for {now - u.heartbeat_moved_at:.0f} s",
                )
            return result
        u.heartbeat = None
        if result.kind is ErrorKind.TIMEOUT and not result.late_reply and not u.answered_once:
            return BusError(
                ErrorKind.NO_SUCH_UNIT, "has never answered since the bus opened: check its unit id, baud rate and wiring"
            )
        return result

    def _after_poll(self) -> float:
        return 0.0 if self.continuous else math.inf

    def _emit(self, event: BusEvent) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)
        if self._on_change is not None:
            self._on_change(event)

    def _next_due(self) -> int | float:
        """The next unit in round-robin order that is due, else the time the first one will be."""
        now = time.monotonic()
        for step in range(len(self._order)):
            unit = self._order[(self._cursor + step) % len(self._order)]
            if self._units[unit].next_due <= now:
                self._cursor = (self._cursor + step + 1) % len(self._order)
                return unit
        return min(u.next_due for u in self._units.values())

    async def _run(self) -> None:
        while not self._stopping:
            if self._commands:
                command = self._commands.popleft()
                outcome = await self._execute(command)
                if not command.reply.done():
                    command.reply.set_result(outcome)
                continue
            due = self._next_due()
            if isinstance(due, int):
                self._record(due, await self._read_status(due))
                continue
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (stop()).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if due == math.inf else max(0.0, due - time.monotonic())):
                    await self._wake.wait()

    async def _execute(self, command: _Command) -> MachineCommandOutcome:
        profile = self._units[command.unit].profile
        written = await self._transact(
            command.unit,
            WRITE_MULTIPLE_REGISTERS,
            lambda: self._client.write_registers(
                profile.commands.start, [command.code, command.argument, command.sequence], device_id=command.unit
            ),
        )
        if isinstance(written, BusError) and written.kind in (ErrorKind.EXCEPTION, ErrorKind.NO_SUCH_UNIT):
            # A valid exception reply: the board refused the write itself and did not act on it.
            return MachineCommandOutcome(command.unit, command.command, command.sequence, None, written, written=False)
        if not isinstance(written, BusError) and (written.address, written.count) != (
            profile.commands.start,
            COMMAND_REGISTERS,
        ):
            # Application Protocol v1.1b3, 6.12: the reply echoes starting address and quantity.
            written = BusError(
                ErrorKind.BAD_REPLY,
                f"write reply for {written.count} registers at {written.address}, "
                f"not {COMMAND_REGISTERS} at {profile.commands.start}",
            )
        # Written, or the reply was lost or wrong: either way the echo decides, never a resend.
        write_error = written if isinstance(written, BusError) else None
        last: BusError = write_error or BusError(ErrorKind.NOT_CONFIRMED)
        for _ in range(self.confirm_reads):
            status = await self._read_status(command.unit)
            self._record(command.unit, status)
            if isinstance(status, BusError):
                last = status
                continue
            if status.command_echo_sequence == command.sequence:
                return MachineCommandOutcome(
                    command.unit, command.command, command.sequence, status.command_echo_result, None, write_error
                )
            last = BusError(ErrorKind.NOT_CONFIRMED, f"echo is sequence {status.command_echo_sequence}")
        return MachineCommandOutcome(command.unit, command.command, command.sequence, None, last, write_error)


def _without_heartbeat(status: MachineStatus | None) -> MachineStatus | None:
    return None if status is None else dataclasses.replace(status, heartbeat=0)
