"""Every laundry decision, as tables: what a machine's answer to a command means, and the start
transaction that answer moves. Read top to bottom, this is the spec; edge_agent/laundry.py only
looks rows up, and edge_agent/store/laundry_ledger.py only persists what they say.

1. VERDICTS: what the line's answer to a command we wrote means for that command: done,
   refused, never received, or in doubt (the machine may have acted; only its echo, read back
   later, can tell). Every answer the bus can give has a row.
2. START_EVENTS: a start is a command whose verdict also moves its transaction.
3. TRANSITIONS: the start transaction. Its rule: a resident's points are taken exactly once, and
   only for a machine that really started. So the charge is the effect of one transition only
   (STARTING -> IN_USE on the machine's own confirmation), a start in doubt stays STARTING until
   the machine's command echo is read back, and the state is persisted before each action (by
   the ledger), so a kiosk that reboots mid-start resumes here instead of starting or charging
   again. Each transition also says what the cloud is told (`tells`). A paid wash that faults
   before it has really run (the kiosk's `laundry.refund_if_fault_within_s` after its charge) is
   given its points back: the refund is the effect of one transition only, and the ledger keeps
   one refund row per transaction, so it happens once.

    AVAILABLE --reserve--> RESERVED --send_start--> STARTING --confirmed--> IN_USE (charge)
    STARTING --refused/not_received--> AVAILABLE    STARTING --no_reply--> STARTING (in doubt)
    RESERVED --cancel/expire--> AVAILABLE    IN_USE --cycle_done--> AWAITING_PICKUP
    AWAITING_PICKUP --door_opened--> AVAILABLE      IN_USE --fault--> AWAITING_PICKUP
    IN_USE --early_fault--> AWAITING_PICKUP (refund)

The board's side of a command (docs/laundry.md, "What the board must do with a command"): it
executes the command when the sequence register is written, then sets its echo registers to
that number and a result, and does so before it answers any further request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from drivers.laundry.link import BusError, ErrorKind, LinkState
from drivers.laundry.status import MachineCommandResult, MachineStatus

# -- 1. what an answer to a command means --


class CommandState(StrEnum):
    """A command's verdict, as the ledger keeps it (by name: the names are stored)."""

    SENT = "sent"  # in doubt: persisted, sent (or about to be), outcome unknown; read the echo back
    DONE = "done"  # echoed with result 0
    REFUSED = "refused"  # echoed with another result
    NOT_RECEIVED = "not_received"  # the machine never acted on it


class Echo(StrEnum):
    """What a status read from a live board shows in its echo registers, for one of our commands.
    "Live": a good status whose heartbeat moves (a frozen controller's echo proves nothing)."""

    OURS_DONE = "ours_done"  # our sequence number, result 0
    OURS_REFUSED = "ours_refused"  # our number, another result (MachineCommandResult)
    # Another number: the board echoes a command before it answers any further request, so a
    # read after ours was written would show ours had it arrived.
    ANOTHER_NUMBER = "another_number"


class AfterWrite(StrEnum):
    """An answer that means something else once our write may have reached the board."""

    # A Modbus exception to a confirming status read (e.g. 0x06 busy while the board executes
    # our start), after a write that was not itself refused: the write may well have acted.
    READ_EXCEPTION = "read_exception"


# An answer: the echo of a fresh status read, or why there is none (drivers/laundry/link.py).
Answer = Echo | ErrorKind | AfterWrite

# Citations: "App" is Modbus Application Protocol v1.1b3, "Serial" Modbus over Serial Line v1.02.
VERDICTS: Mapping[Answer, CommandState] = MappingProxyType(
    {
        Echo.OURS_DONE: CommandState.DONE,
        Echo.OURS_REFUSED: CommandState.REFUSED,
        Echo.ANOTHER_NUMBER: CommandState.NOT_RECEIVED,
        # App 7: a server that receives a request it cannot handle answers with an exception
        # instead of acting; our boards execute nothing of a refused write.
        ErrorKind.EXCEPTION: CommandState.NOT_RECEIVED,
        # App 7: the same exception, but to a status read after a write that was not refused
        # (0x06 "server device busy" while the board runs what we wrote): it says nothing
        # about the write, which may have acted.
        AfterWrite.READ_EXCEPTION: CommandState.SENT,
        # App 7, exception codes 0x0A/0x0B: a gateway could not reach the unit; or the unit is
        # not on this bus at all (bus.py, submit_command).
        ErrorKind.NO_SUCH_UNIT: CommandState.NOT_RECEIVED,
        # Serial 2.4.1: the response time-out expired. The request or only its reply was lost
        # (Serial 2.4.2: a slave that finds an error in a received frame does not answer).
        ErrorKind.TIMEOUT: CommandState.SENT,
        # Serial 2.4.1, 2.5.1.2: bytes came back failing CRC-16: the board answered, so it
        # probably acted, but its answer is unreadable.
        ErrorKind.CRC: CommandState.SENT,
        # A valid frame that answers another request (App 6.12: a write's reply echoes address
        # and quantity), or a status that breaks the map: what the board did is unknown.
        ErrorKind.BAD_REPLY: CommandState.SENT,
        ErrorKind.DECODE: CommandState.SENT,
        # It answers but its heartbeat stands still: its echo registers prove nothing.
        ErrorKind.FROZEN: CommandState.SENT,
        # The echo showed another number, but in a status not judged live (a frozen heartbeat).
        ErrorKind.NOT_CONFIRMED: CommandState.SENT,
        ErrorKind.DISCONNECTED: CommandState.SENT,  # the port went away mid-command
    }
)

# The reason code of a start whose echo shows it never arrived (a code, never a sentence: the
# screen has the words for each code, edge_agent/screen/static/i18n.js "err.<code>").
NOT_RECEIVED_REASON = "not_started"


@dataclass(frozen=True, slots=True)
class Verdict:
    state: CommandState
    result_code: int | None  # the machine's echoed result, when it echoed ours
    reason: str | None  # a reason code for the screen and the cloud; None when done or in doubt


def verdict_of_outcome(result_code: int | None, error: BusError | None, link: LinkState, *, written: bool) -> Verdict:
    """What the bus's outcome of a command (drivers/laundry/bus.py, `submit_command`) means.
    `link`: the unit's link state right after it, which says whether the last read was live;
    `written`: the write itself was not refused (MachineCommandOutcome.written)."""
    if result_code is not None:  # the bus returns a result only with our number echoed
        return _verdict(_ours(result_code), result_code)
    if error is None:
        raise ValueError("a command outcome has a result or an error")
    if error.kind is ErrorKind.NOT_CONFIRMED and link is LinkState.ONLINE:
        return _verdict(Echo.ANOTHER_NUMBER, None)
    if error.kind is ErrorKind.EXCEPTION and written:
        return _verdict(AfterWrite.READ_EXCEPTION, None)
    return _verdict(error.kind, None)


def verdict_of_echo(status: MachineStatus, sequence: int) -> Verdict:
    """What a live status read after the command left the bus says about it: always decided."""
    if status.command_echo_sequence != sequence:
        return _verdict(Echo.ANOTHER_NUMBER, None)
    return _verdict(_ours(status.command_echo_result), status.command_echo_result)


def result_reason(code: int) -> str:
    """A refusal's short code, from the board's result (MachineCommandResult)."""
    try:
        return MachineCommandResult(code).name.lower()
    except ValueError:
        return f"result_{code}"


def _ours(result_code: int) -> Echo:
    return Echo.OURS_DONE if result_code == MachineCommandResult.DONE else Echo.OURS_REFUSED


def _verdict(answer: Answer, result_code: int | None) -> Verdict:
    state = VERDICTS[answer]
    reason: str | None = None
    if state is CommandState.REFUSED:
        assert result_code is not None
        reason = result_reason(result_code)
    elif state is CommandState.NOT_RECEIVED:
        reason = NOT_RECEIVED_REASON if answer is Echo.ANOTHER_NUMBER else str(answer)
    return Verdict(state, result_code, reason)


# -- 2 and 3. the start transaction --


class VendState(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"  # a resident chose it and the price is known; nothing sent, nothing charged
    STARTING = "starting"  # the start command was (or may have been) sent; the outcome is unknown
    IN_USE = "in_use"  # the machine confirmed the start; charged
    AWAITING_PICKUP = "awaiting_pickup"  # the cycle ended (or faulted); laundry inside


class VendEvent(StrEnum):
    RESERVE = "reserve"
    CANCEL = "cancel"  # the resident walked away, or the reservation expired
    SEND_START = "send_start"
    CONFIRMED = "confirmed"  # the machine echoed our sequence number with success
    REFUSED = "refused"  # it echoed our sequence number with a refusal (door open, fault, ...)
    NOT_RECEIVED = "not_received"  # the start never reached the machine (VERDICTS)
    NO_REPLY = "no_reply"  # in doubt: it may or may not have started; read the echo back
    CYCLE_DONE = "cycle_done"
    FAULT = "fault"
    EARLY_FAULT = "early_fault"  # a fault before the paid wash had really run (the refund window)
    DOOR_OPENED = "door_opened"


# What a start's verdict does to its transaction.
START_EVENTS: Mapping[CommandState, VendEvent] = MappingProxyType(
    {
        CommandState.DONE: VendEvent.CONFIRMED,
        CommandState.REFUSED: VendEvent.REFUSED,
        CommandState.NOT_RECEIVED: VendEvent.NOT_RECEIVED,
        CommandState.SENT: VendEvent.NO_REPLY,
    }
)


class Effect(StrEnum):
    NONE = "none"
    CHARGE = "charge"  # take the points: the only place this happens
    REFUND = "refund"  # give back the points this transaction's charge took: the only place


# What the cloud hears of a step (LaundryVendEvent.outcome); internal steps tell it nothing.
VendOutcome = Literal["started", "refused", "not_started", "cycle_done", "faulted", "collected"]


@dataclass(frozen=True, slots=True)
class Transition:
    to: VendState
    effect: Effect = Effect.NONE
    tells: VendOutcome | None = None


TRANSITIONS: Mapping[tuple[VendState, VendEvent], Transition] = MappingProxyType(
    {
        (VendState.AVAILABLE, VendEvent.RESERVE): Transition(VendState.RESERVED),
        (VendState.RESERVED, VendEvent.CANCEL): Transition(VendState.AVAILABLE),
        (VendState.RESERVED, VendEvent.SEND_START): Transition(VendState.STARTING),
        (VendState.STARTING, VendEvent.CONFIRMED): Transition(VendState.IN_USE, Effect.CHARGE, "started"),
        (VendState.STARTING, VendEvent.REFUSED): Transition(VendState.AVAILABLE, tells="refused"),
        (VendState.STARTING, VendEvent.NOT_RECEIVED): Transition(VendState.AVAILABLE, tells="not_started"),
        (VendState.STARTING, VendEvent.NO_REPLY): Transition(VendState.STARTING),
        (VendState.IN_USE, VendEvent.CYCLE_DONE): Transition(VendState.AWAITING_PICKUP, tells="cycle_done"),
        (VendState.IN_USE, VendEvent.FAULT): Transition(VendState.AWAITING_PICKUP, tells="faulted"),
        # Told as a fault too (laundry is inside either way), with the points given back
        # (LaundryVendEvent.points_refunded).
        (VendState.IN_USE, VendEvent.EARLY_FAULT): Transition(VendState.AWAITING_PICKUP, Effect.REFUND, "faulted"),
        (VendState.AWAITING_PICKUP, VendEvent.DOOR_OPENED): Transition(VendState.AVAILABLE, tells="collected"),
    }
)


class IllegalVendTransition(ValueError):
    """Our bug, or a stale event: never acted upon."""


def next_state(state: VendState, event: VendEvent) -> Transition:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalVendTransition(f"{event} is not allowed in state {state}") from None
