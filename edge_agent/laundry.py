"""The laundry room at the kiosk: polls its machines on a schedule, starts them safely, tells the cloud.

The bus (drivers/laundry/bus.py) owns the RS-485 line; this module decides when each machine
is read, runs the start transaction of drivers/laundry/vend.py through the ledger, and saves
events to the outbox: a machine's state, fault or link changing (`laundry_machine`) and each
step of a start (`laundry_vend`).

What a machine's answer means, and what it does to a start, is drivers/laundry/vend.py's tables;
here they are only looked up, by one path for a start and another command alike. A start or a
command whose outcome is unknown (the reply was lost, the kiosk rebooted mid-start) is never
sent again and never charged on a guess: it stays in doubt, in the ledger, until a status read
*after* it left the bus shows the machine's command echo (vend.VERDICTS).

One start or command per machine at a time (a lock from the checks to the machine's answer),
and none while an earlier one is still being read back: it would overwrite the echo that
decides the earlier one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from contract.payloads import DeviceIdentity, LaundryMachineEvent
from contract.topics import EventType, KioskTopics
from drivers.laundry.bus import (
    BusEvent,
    DriverState,
    ErrorKind,
    LaundryBus,
    LinkState,
    MachineCommandName,
    UnitLink,
    driver_state,
)
from drivers.laundry.status import MachineStatus
from drivers.laundry.vend import (
    START_EVENTS,
    CommandState,
    VendEvent,
    VendState,
    Verdict,
    result_reason,
    verdict_of_echo,
    verdict_of_outcome,
)
from edge_agent.settings import LaundrySettings, PollCadence
from edge_agent.store.laundry_ledger import LaundryLedger, LedgerRefusal, MachineCommand, VendTransaction
from edge_agent.store.outbox import Outbox
from firmware_configs.laundry import LaundryProfile, MachineState, Program, load_laundry_profiles

if TYPE_CHECKING:
    # Imported by `start` only for `port: simulated`: a kiosk's room is real machines, and the
    # agent does not load the simulator (a pymodbus server) to talk to them.
    from drivers.laundry.simulated_room import SimulatedRoom
    from drivers.laundry.simulator import LaundryRoomSimulator

log = logging.getLogger(__name__)

# `port: simulated` plays the demo's room in this process on a pty pair, for tests that drive the
# machines; the demo and the footprint benchmark run it as its own process instead, as a real
# room is (drivers/laundry/simulated_room.py).
SIMULATED_PORT = "simulated"

# The apscheduler job's name (shown by `doorstep doctor`).
POLL_JOB = "laundry-poll"
# A machine whose last command (or start) is still being read back takes no other: a new one
# would overwrite the command echo that decides the old one (docs/laundry.md).
IN_DOUBT = "previous_command_in_doubt"


def poll_interval_s(status: MachineStatus | None, cadence: PollCadence, *, start_pending: bool) -> float:
    """How long a machine may go unread: often when something is about to happen."""
    if status is None or start_pending:
        return cadence.finishing_s
    if status.state is MachineState.RUNNING and (status.remaining_seconds or 0) <= cadence.finishing_within_s:
        return cadence.finishing_s
    if status.state in (MachineState.RUNNING, MachineState.PAUSED):
        return cadence.running_s
    return cadence.idle_s


def why_not_startable(status: MachineStatus | None, link: UnitLink) -> str | None:
    """Why a machine cannot be started now, as a reason code, from its last read: the screen's
    list shows it before anyone taps the machine, and a start is refused by the same rule."""
    if link.state is not LinkState.ONLINE and link.last_error is not None and link.last_error.kind is ErrorKind.FROZEN:
        # It answers, but its heartbeat stands still: its status is stale and it executes nothing.
        return "machine_frozen"
    if status is None or link.state is LinkState.OFFLINE:
        return "machine_offline"
    if status.state is MachineState.FAULT:
        return "machine_fault"
    if status.state not in (MachineState.IDLE, MachineState.READY):
        return "machine_busy"
    if status.door_closed is False:
        return "door_open"
    return None


def machine_event_of(unit: int, status: MachineStatus | None, link: UnitLink, profile: LaundryProfile) -> LaundryMachineEvent:
    error = link.last_error if link.state is not LinkState.ONLINE else None
    return LaundryMachineEvent(
        unit=unit,
        state=status.state.value if status is not None else "unknown",
        link=link.state.value,
        program=status.program if status else None,
        remaining_seconds=status.remaining_seconds if status else None,
        error_code=status.error_code if status else None,
        error_text={"zh": status.error_text.zh, "en": status.error_text.en} if status and status.error_text else None,
        link_error=f"{error.kind}: {error.detail}"[:200] if error is not None else None,
        cycle_count=status.cycle_count if status else None,
    )


@dataclass(frozen=True, slots=True)
class StartResult:
    """What the resident is told. 'checking': the machine's answer was lost; it is being read
    back, and nothing is charged unless it shows the machine started."""

    outcome: Literal["started", "refused", "checking"]
    transaction_id: str | None
    points_charged: int
    reason: str | None  # a short code: door_open, not_enough_points, machine_busy, ...


@dataclass(frozen=True, slots=True)
class CommandView:
    """A command's outcome: 'checking' while its reply is lost and its echo not yet read back."""

    outcome: Literal["done", "refused", "not_received", "checking"]
    command_id: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class MachineView:
    unit: int
    profile: LaundryProfile
    status: MachineStatus | None  # the last one read; stale while the link is offline
    link: UnitLink
    transaction: VendTransaction | None
    programs: tuple[Program, ...]  # those this room sells, at its prices (LaundryRoomSettings.offered)
    points_refunded: int = 0  # given back to the open transaction's resident (an early fault)

    @property
    def state(self) -> DriverState | None:
        """What the screen shows: 'offline' while the link is; None until it has answered."""
        return driver_state(self.status, self.link)

    @property
    def not_startable(self) -> str | None:
        """Why it cannot be started now (a reason code), None if it can."""
        return why_not_startable(self.status, self.link)


class LaundryRoom:
    def __init__(
        self,
        settings: LaundrySettings,
        outbox: Outbox,
        topics: KioskTopics,
        *,
        saved: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scheduler: AsyncIOScheduler | None = None,
    ) -> None:
        """`saved` is called after an event is committed to the outbox (to wake the uplink).
        `scheduler`: the agent's, running, to add this room's job to; else the room runs its own."""
        self.settings = settings
        profiles = load_laundry_profiles()
        self.profiles = {unit: profiles[model] for unit, model in sorted(settings.machines.items())}
        self.programs = {unit: settings.offered(profile) for unit, profile in self.profiles.items()}
        self.ledger = LaundryLedger(outbox, topics, clock=clock)
        self._clock = clock
        self._outbox = outbox
        self._topics = topics
        self._saved = saved
        self._own_scheduler = scheduler is None
        self._scheduler = scheduler or AsyncIOScheduler()
        self._last_poll_request: dict[int, float] = {}
        self._reported: dict[int, LaundryMachineEvent] = {}
        # When each machine's last command left the bus (time.monotonic(); inf while one is queued
        # or on the line): only a status read after it may decide a start or command in doubt.
        # What is in doubt is the ledger's to say; empty after a restart, when every read is after.
        self._sent_at: dict[int, float] = {}
        # One start or command at a time per machine, from the check to the decision: two
        # residents tapping one machine, or a technician's command racing a start.
        self._unit_locks = {unit: asyncio.Lock() for unit in self.profiles}
        self._tasks: list[asyncio.Task[None]] = []
        self._simulated: SimulatedRoom | None = None
        self.bus: LaundryBus | None = None

    @property
    def simulator(self) -> LaundryRoomSimulator | None:
        """The machines of `port: simulated`, to drive them (tests); None for a real line."""
        return self._simulated.simulator if self._simulated is not None else None

    # -- life cycle --

    async def start(self) -> None:
        port = self.settings.port
        if port == SIMULATED_PORT:
            from drivers.laundry.simulated_room import SimulatedRoom

            self._simulated = await SimulatedRoom.open(self.profiles, baudrate=self.settings.baudrate)
            port = self._simulated.driver_path
        await self._resume_unfinished()
        self.bus = LaundryBus(
            port,
            self.profiles,
            baudrate=self.settings.baudrate,
            timeout=self.settings.reply_timeout_s,
            continuous=False,
        )
        changes = self.bus.changes()
        await self.bus.start()
        self._tasks.append(asyncio.create_task(self._follow(changes), name="laundry events"))
        self._scheduler.add_job(
            self._poll_due,
            "interval",
            seconds=self.settings.poll.tick_s,
            id=POLL_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )
        if self._own_scheduler:
            self._scheduler.start()
        log.info("laundry room on %s: %d machine(s)", port, len(self.profiles))

    async def stop(self) -> None:
        if self._own_scheduler:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
        elif self._scheduler.get_job(POLL_JOB) is not None:
            self._scheduler.remove_job(POLL_JOB)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.bus is not None:
            await self.bus.stop()
            self.bus = None
        if self._simulated is not None:
            await self._simulated.close()
            self._simulated = None

    async def _resume_unfinished(self) -> None:
        """After a (re)start: a reservation never sent is released; a start or command in doubt
        stays so in the ledger, and the first status read from now on decides it."""
        for transaction in await asyncio.to_thread(self.ledger.unfinished):
            if transaction.unit in self.profiles and transaction.state is VendState.RESERVED:
                await self._step(transaction, VendState.RESERVED, VendEvent.CANCEL, reason_code="kiosk_restarted",
                                 reason="kiosk restarted before sending")
            elif transaction.unit not in self.profiles:
                # The configuration lost this machine: its book entry is kept as it is, never guessed.
                log.error("unit %d is no longer configured; its transaction %s stays %s",
                          transaction.unit, transaction.id, transaction.state)
        for row in await asyncio.to_thread(self.ledger.in_doubt):
            if row.unit in self.profiles:
                what = row.command if isinstance(row, MachineCommand) else "start"
                log.warning("unit %d: %s %s in doubt after a restart; reading its echo back", row.unit, what, row.id)
            elif isinstance(row, MachineCommand):
                log.error("unit %d is no longer configured; its %s %s stays unconfirmed", row.unit, row.command, row.id)

    # -- what the screen shows --

    def machines(self) -> list[MachineView]:
        assert self.bus is not None
        unfinished = {t.unit: t for t in self.ledger.unfinished()}
        refunded = {r.transaction_id: r.points for r in self.ledger.refunds()}
        views = []
        for unit, profile in self.profiles.items():
            open_one = unfinished.get(unit)
            returned = refunded.get(open_one.id, 0) if open_one is not None else 0
            views.append(MachineView(unit, profile, self.bus.status(unit), self.bus.link(unit), open_one,
                                     self.programs[unit], returned))
        return views

    # -- starting a machine --

    async def start_program(self, unit: int, program: int, subject: str) -> StartResult:
        """Reserve, persist, send, and charge only on the machine's confirmation."""
        assert self.bus is not None
        if unit not in self.profiles:
            return StartResult("refused", None, 0, "no_such_machine")
        async with self._unit_locks[unit]:
            return await self._start_program(unit, program, subject)

    async def _start_program(self, unit: int, program: int, subject: str) -> StartResult:
        assert self.bus is not None
        refusal = await self._why_not_startable(unit, program)
        if refusal is not None:
            return StartResult("refused", None, 0, refusal)
        profile = self.profiles[unit]
        status = self.bus.status(unit)
        price = next(p.price_points for p in self.programs[unit] if p.code == program)
        try:
            reserved = await asyncio.to_thread(
                self.ledger.reserve,
                unit=unit,
                model=profile.model,
                program=program,
                list_price=price,
                subject=subject,
                free_from_age=self.settings.free_from_age,
                echoed_sequence=status.command_echo_sequence if status else None,
            )
        except LedgerRefusal as refused:
            return StartResult("refused", None, 0, refused.reason)
        # Persisted as STARTING (in doubt) before the command is sent: a reboot from here on reads back.
        starting = await self._step(reserved, VendState.RESERVED, VendEvent.SEND_START)
        assert starting is not None
        await self._send(starting, "start", program)
        return await self._result_of(starting.id)

    async def command(self, unit: int, command: MachineCommandName, argument: int = 0) -> CommandView:
        """Pause, resume, stop, clear a fault, add dryer time: persisted with its sequence
        number before it is sent, and after a lost reply read back, never sent twice."""
        assert self.bus is not None
        if command == "start":
            raise ValueError("a start is a transaction: use start_program")
        profile = self.profiles.get(unit)
        if profile is None:
            return CommandView("refused", None, "no_such_machine")
        if command not in profile.commands.codes:
            return CommandView("refused", None, "no_such_command")
        async with self._unit_locks[unit]:
            return await self._command(unit, command, argument)

    async def _command(self, unit: int, command: MachineCommandName, argument: int) -> CommandView:
        assert self.bus is not None
        if await self._has_doubt(unit):
            return CommandView("refused", None, IN_DOUBT)
        if self.bus.link(unit).state is LinkState.OFFLINE:
            return CommandView("refused", None, "machine_offline")
        status = self.bus.status(unit)
        row = await asyncio.to_thread(
            self.ledger.begin_command,
            unit=unit,
            command=command,
            argument=argument,
            echoed_sequence=status.command_echo_sequence if status else None,
        )
        await self._send(row, command, argument)
        return await self._command_view(row.id)

    async def _send(self, row: VendTransaction | MachineCommand, command: MachineCommandName, argument: int) -> None:
        """Submit to the bus and settle the row by what its answer means. Shielded: if our caller
        is cancelled (a remote command's timeout, the agent stopping) the command still completes
        or is dropped by the bus as a whole, and only a status read after that may decide it;
        never one read before it reached the line."""
        assert self.bus is not None
        unit = row.unit
        self._sent_at[unit] = math.inf
        sending = asyncio.ensure_future(self.bus.submit_command(unit, command, argument, row.command_sequence))

        def sent(_: object) -> None:
            self._sent_at[unit] = time.monotonic()

        sending.add_done_callback(sent)
        outcome = await asyncio.shield(sending)
        verdict = verdict_of_outcome(
            outcome.result_code, outcome.error, self.bus.link(unit).state, written=outcome.written
        )
        if verdict.state is CommandState.SENT:
            log.warning("unit %d: no answer to %s %s (%s); reading its echo back", unit, command, row.id, outcome.error)
        await self._settle(row, verdict)

    async def _settle(self, row: VendTransaction | MachineCommand, verdict: Verdict) -> None:
        """Apply a verdict: one path for a start and any other command, the answer just
        received and an echo read back alike."""
        if isinstance(row, VendTransaction):
            await self._step(row, VendState.STARTING, START_EVENTS[verdict.state], reason_code=verdict.reason)
            return
        if verdict.state is CommandState.SENT:
            return  # still in doubt: nothing to write
        finished = await asyncio.to_thread(self.ledger.finish_command, row.id, verdict.state, verdict.result_code)
        if finished is not None:
            log.info("unit %d: %s %s: %s", finished.unit, finished.command, finished.id, finished.state)

    async def _command_view(self, command_id: str) -> CommandView:
        row = await asyncio.to_thread(self.ledger.get_command, command_id)
        assert row is not None
        if row.state is CommandState.SENT:
            return CommandView("checking", row.id, None)
        reason = result_reason(row.result_code) if row.state is CommandState.REFUSED and row.result_code else None
        return CommandView(row.state.value, row.id, reason)  # type: ignore[arg-type]

    async def _why_not_startable(self, unit: int, program: int) -> str | None:
        assert self.bus is not None
        profile = self.profiles.get(unit)
        if profile is None:
            return "no_such_machine"
        if not any(p.code == program for p in profile.programs):
            return "no_such_program"
        if not any(p.code == program for p in self.programs[unit]):
            return "program_not_offered"  # the room's settings withdrew it (LaundryRoomSettings.programs)
        blocked = why_not_startable(self.bus.status(unit), self.bus.link(unit))
        if blocked in ("machine_offline", "machine_frozen"):
            return blocked
        if await self._has_doubt(unit):
            return IN_DOUBT
        return blocked

    async def _has_doubt(self, unit: int) -> bool:
        return any(row.unit == unit for row in await asyncio.to_thread(self.ledger.in_doubt))

    async def _result_of(self, transaction_id: str) -> StartResult:
        transaction = await asyncio.to_thread(self.ledger.get, transaction_id)
        assert transaction is not None
        if transaction.state is VendState.STARTING:
            return StartResult("checking", transaction.id, 0, None)
        if transaction.state is VendState.AVAILABLE:
            # A book from before reason codes kept only `reason`.
            return StartResult("refused", transaction.id, 0, transaction.reason_code or transaction.reason)
        charges = await asyncio.to_thread(self.ledger.charges, transaction.id)
        return StartResult("started", transaction.id, sum(c.points for c in charges), None)

    async def _step(
        self,
        transaction: VendTransaction,
        expected: VendState,
        event: VendEvent,
        *,
        reason_code: str | None = None,
        reason: str | None = None,
    ) -> VendTransaction | None:
        status = self.bus.status(transaction.unit) if self.bus is not None else None
        device = DeviceIdentity(
            model=transaction.model,
            address=f"modbus-unit-{transaction.unit}",
            firmware=status.firmware if status else None,
        )
        moved = await asyncio.to_thread(
            self.ledger.step, transaction.id, expected, event, reason_code=reason_code, reason=reason, device=device
        )
        if moved is not None:
            log.info("unit %d: transaction %s %s -> %s", transaction.unit, transaction.id, expected, moved.state)
            self._saved()
        return moved

    # -- following the machines --

    async def _poll_due(self) -> None:
        """The scheduled job (a coroutine, so apscheduler runs it on the agent's event loop, not
        in a thread): ask the bus for the machines whose interval has passed."""
        in_doubt = await asyncio.to_thread(self.ledger.in_doubt)
        bus = self.bus
        if bus is None:
            return  # the room stopped while the book was read (a running job outlives its removal)
        pending = {row.unit for row in in_doubt}
        now = time.monotonic()
        due = [
            unit
            for unit in self.profiles
            if now - self._last_poll_request.get(unit, -math.inf)
            >= poll_interval_s(bus.status(unit), self.settings.poll, start_pending=unit in pending)
        ]
        for unit in due:
            self._last_poll_request[unit] = now
        if due:
            bus.request_poll(due)
        await self._decide_pending(in_doubt)

    async def _follow(self, changes: AsyncGenerator[BusEvent]) -> None:
        async for event in changes:
            try:
                await self._on_change(event)
            except Exception:
                # Our bug or the disk: loud, and the room goes on being watched.
                log.exception("laundry: handling a change of unit %d failed", event.unit)

    async def _on_change(self, event: BusEvent) -> None:
        unit, status = event.unit, event.status
        reported = machine_event_of(unit, status, event.link, self.profiles[unit])
        previous = self._reported.get(unit)
        if previous is None or (previous.state, previous.error_code, previous.link) != (
            reported.state,
            reported.error_code,
            reported.link,
        ):
            device = DeviceIdentity(
                model=self.profiles[unit].model,
                address=f"modbus-unit-{unit}",
                firmware=status.firmware if status else None,
            )
            await asyncio.to_thread(
                self._outbox.save, self._topics.event(EventType.LAUNDRY_MACHINE), reported, device=device
            )
            self._reported[unit] = reported
            self._saved()
        if status is not None:
            await self._follow_cycle(unit, status)
        await self._decide_pending(await asyncio.to_thread(self.ledger.in_doubt))

    async def _follow_cycle(self, unit: int, status: MachineStatus) -> None:
        transaction = next((t for t in await asyncio.to_thread(self.ledger.unfinished) if t.unit == unit), None)
        if transaction is None:
            return
        if transaction.state is VendState.IN_USE:
            if status.state is MachineState.FAULT:
                reason = f"error {status.error_code}: {status.error_text.en}" if status.error_text else None
                event = VendEvent.EARLY_FAULT if await self._ran_briefly(transaction) else VendEvent.FAULT
                await self._step(transaction, VendState.IN_USE, event, reason_code="machine_fault", reason=reason)
            elif status.state in (MachineState.DONE, MachineState.IDLE, MachineState.READY):
                await self._step(transaction, VendState.IN_USE, VendEvent.CYCLE_DONE)
        elif transaction.state is VendState.AWAITING_PICKUP:
            opened = status.door_closed is False
            if status.door_closed is None:  # a map without a door sensor: back to idle means emptied
                opened = status.state in (MachineState.IDLE, MachineState.READY)
            if opened:
                await self._step(transaction, VendState.AWAITING_PICKUP, VendEvent.DOOR_OPENED)

    async def _ran_briefly(self, transaction: VendTransaction) -> bool:
        """A paid wash whose fault is seen within the refund window of its charge has not really
        run. Judged when the fault is first read: a fault that happened while the kiosk was down
        counts from its charge to that read, never earlier (the kiosk cannot know when)."""
        charges = await asyncio.to_thread(self.ledger.charges, transaction.id)
        if not charges:
            return False  # a free start: nothing to give back
        charge = charges[0]  # at most one: its primary key is the transaction id
        charged_at = charge.charged_at if charge.charged_at.tzinfo else charge.charged_at.replace(tzinfo=UTC)
        return (self._clock() - charged_at).total_seconds() <= self.settings.refund_if_fault_within_s

    async def _decide_pending(self, in_doubt: list[VendTransaction | MachineCommand]) -> None:
        """Decide every start or command in doubt whose machine has been read since it was sent."""
        for row in in_doubt:
            lock = self._unit_locks.get(row.unit)
            if lock is None or lock.locked():
                continue  # not configured (kept as it is), or a start or command of it is under way
            async with lock:
                # Under the lock, so that a command asked for meanwhile waits for this decision
                # instead of finding the old one still in doubt. A row decided since it was read
                # is left alone by the ledger's compare-and-set.
                await self._decide(row)

    async def _decide(self, row: VendTransaction | MachineCommand) -> None:
        if self.bus is None:
            return  # the room stopped meanwhile: the row stays in doubt in the book
        status, link = self.bus.status(row.unit), self.bus.link(row.unit)
        after = self._sent_at.get(row.unit, -math.inf)
        if status is None or link.last_ok_at is None or link.last_ok_at <= after:
            return
        await self._settle(row, verdict_of_echo(status, row.command_sequence))
