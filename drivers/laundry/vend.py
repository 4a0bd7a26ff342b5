"""Starting a paid machine as a small transaction, written as one table.

The rule it exists for: a resident's points are taken exactly once, and only for a machine that
really started. So the charge is an effect of one transition only (STARTING -> IN_USE on the
machine's own confirmation), a start whose reply was lost stays STARTING until the machine's
command echo is read back, and the state is persisted before each action (by the caller), so a
kiosk that reboots mid-start resumes here instead of starting or charging again.

    AVAILABLE --reserve--> RESERVED --send_start--> STARTING --confirmed--> IN_USE (charge)
    STARTING --refused--> AVAILABLE          STARTING --no_reply--> STARTING (read the echo back)
    RESERVED --cancel/expire--> AVAILABLE    IN_USE --cycle_done--> AWAITING_PICKUP
    AWAITING_PICKUP --door_opened--> AVAILABLE      IN_USE --fault--> AWAITING_PICKUP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


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
    CONFIRMED = "confirmed"  # the machine echoed our sequence number with success, or reports running
    REFUSED = "refused"  # it echoed our sequence number with a refusal (door open, fault, ...)
    NO_REPLY = "no_reply"  # timeout: it may or may not have started; read the echo back
    CYCLE_DONE = "cycle_done"
    FAULT = "fault"
    DOOR_OPENED = "door_opened"


class Effect(StrEnum):
    NONE = "none"
    CHARGE = "charge"  # take the points: the only place this happens
    # No effect for a lost reply (the kiosk reads the echo back) or a fault (it alerts): both
    # are edge_agent/laundry.py's reading of machine status, which nothing here could trigger;
    # an effect in this table that the ledger does not act on would misstate what happens.


@dataclass(frozen=True, slots=True)
class Transition:
    to: VendState
    effect: Effect = Effect.NONE


TRANSITIONS: Mapping[tuple[VendState, VendEvent], Transition] = MappingProxyType(
    {
        (VendState.AVAILABLE, VendEvent.RESERVE): Transition(VendState.RESERVED),
        (VendState.RESERVED, VendEvent.CANCEL): Transition(VendState.AVAILABLE),
        (VendState.RESERVED, VendEvent.SEND_START): Transition(VendState.STARTING),
        (VendState.STARTING, VendEvent.CONFIRMED): Transition(VendState.IN_USE, Effect.CHARGE),
        (VendState.STARTING, VendEvent.REFUSED): Transition(VendState.AVAILABLE),
        (VendState.STARTING, VendEvent.NO_REPLY): Transition(VendState.STARTING),
        (VendState.IN_USE, VendEvent.CYCLE_DONE): Transition(VendState.AWAITING_PICKUP),
        (VendState.IN_USE, VendEvent.FAULT): Transition(VendState.AWAITING_PICKUP),
        (VendState.AWAITING_PICKUP, VendEvent.DOOR_OPENED): Transition(VendState.AVAILABLE),
    }
)


class IllegalVendTransition(ValueError):
    """Our bug, or a stale event: never acted upon."""


def next_state(state: VendState, event: VendEvent) -> Transition:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalVendTransition(f"{event} is not allowed in state {state}") from None
