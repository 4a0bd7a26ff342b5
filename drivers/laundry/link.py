"""What went wrong on the RS-485 line, and what it does to a machine's link: pure rules, no I/O.

The bus (bus.py) classifies every exchange into an ErrorKind (or a good status); this module
decides, as one table, what that means for the machine's link state and when it is next polled.
Written apart from the I/O so that the rules can be read in one place and enumerated by a test
(tests/laundry/test_link.py), the way h11 keeps its state machine in h11/_state.py.

    result of a poll                    effect                     link state after
    a valid status                      ANSWERED                   ONLINE   (failures reset)
    a Modbus exception reply            ANSWERED_WITHOUT_STATUS    DEGRADED (failures reset:
                                                                   it answers at once, no backoff)
    timeout, CRC, bad reply, decode,    FAILED                     DEGRADED, then OFFLINE from the
    frozen, no such unit, disconnected                             `offline_after`-th in a row
    (OFFLINE: probed only with exponential backoff, so a dead machine cannot starve the others)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from contract.device_errors import DeviceErrorCode


class ErrorKind(StrEnum):
    """Whose fault, roughly: the line (timeout, crc, disconnected), the board (exception,
    bad_reply, decode, frozen), the configuration (no_such_unit), or unknown (not_confirmed)."""

    TIMEOUT = "timeout"  # no reply in time (a late one, if any, was discarded: BusError.late_reply)
    CRC = "crc"  # bytes came back but no valid frame: CRC-16 or framing error
    EXCEPTION = "exception"  # a Modbus exception response; see BusError.exception_code
    # Not configured on this bus; a gateway's exception 0x0A/0x0B; or, on a plain RTU line where
    # a missing unit is simply silent, a unit that has never answered anything since the bus
    # opened (wrong unit id, wrong baud rate, not wired): told apart from one that stopped.
    NO_SUCH_UNIT = "no_such_unit"
    BAD_REPLY = "bad_reply"  # a valid frame that does not answer the request (unit, function, count)
    DECODE = "decode"  # the registers break the machine's map (StatusDecodeError)
    FROZEN = "frozen"  # it answers, but its heartbeat register has stopped: the controller hangs
    NOT_CONFIRMED = "not_confirmed"  # a command whose echo never showed up (a command outcome only)
    DISCONNECTED = "disconnected"  # the serial port itself is gone


@dataclass(frozen=True, slots=True)
class BusError:
    kind: ErrorKind
    detail: str = ""
    exception_code: int | None = None
    late_reply: bool = False  # a timeout after which the unit's reply did arrive, and was thrown away

    @property
    def code(self) -> DeviceErrorCode:
        """Its code on the wire (device telemetry)."""
        return ERROR_CODES[self.kind]

    @property
    def message(self) -> str:
        """Plain words for a technician."""
        return f"{ERROR_WORDS[self.kind]}" + (f": {self.detail}" if self.detail else "")


# Every ErrorKind's code on the wire (contract/device_errors.py) and its plain words.
ERROR_CODES: Mapping[ErrorKind, DeviceErrorCode] = MappingProxyType(
    {
        ErrorKind.TIMEOUT: DeviceErrorCode.MODBUS_TIMEOUT,
        ErrorKind.CRC: DeviceErrorCode.MODBUS_CRC,
        ErrorKind.EXCEPTION: DeviceErrorCode.MODBUS_EXCEPTION,
        ErrorKind.NO_SUCH_UNIT: DeviceErrorCode.MODBUS_NO_SUCH_UNIT,
        ErrorKind.BAD_REPLY: DeviceErrorCode.MODBUS_BAD_REPLY,
        ErrorKind.DECODE: DeviceErrorCode.MODBUS_DECODE,
        ErrorKind.FROZEN: DeviceErrorCode.MODBUS_FROZEN,
        ErrorKind.NOT_CONFIRMED: DeviceErrorCode.MODBUS_NOT_CONFIRMED,
        ErrorKind.DISCONNECTED: DeviceErrorCode.MODBUS_DISCONNECTED,
    }
)
ERROR_WORDS: Mapping[ErrorKind, str] = MappingProxyType(
    {
        ErrorKind.TIMEOUT: "no reply on the RS-485 line (power, wiring, unit id)",
        ErrorKind.CRC: "garbled reply (CRC or framing error: wiring, termination, interference)",
        ErrorKind.EXCEPTION: "the machine's board answered with a Modbus exception",
        ErrorKind.NO_SUCH_UNIT: "no machine with this unit id on the line (configuration, wiring, baud rate)",
        ErrorKind.BAD_REPLY: "a reply that does not answer the request (two units with one id?)",
        ErrorKind.DECODE: "registers that break the machine's register map (firmware or map version)",
        ErrorKind.FROZEN: "the board answers but its heartbeat has stopped (controller hangs)",
        ErrorKind.NOT_CONFIRMED: "a command the machine never confirmed",
        ErrorKind.DISCONNECTED: "the serial port is gone (USB adapter unplugged)",
    }
)


class LinkState(StrEnum):
    ONLINE = "online"  # the last exchange gave a valid status
    DEGRADED = "degraded"  # recent failures, or it answers without a status; still polled normally
    OFFLINE = "offline"  # `offline_after` failures in a row; probed with exponential backoff only


class LinkEffect(StrEnum):
    ANSWERED = "answered"
    ANSWERED_WITHOUT_STATUS = "answered_without_status"
    FAILED = "failed"


# Every ErrorKind a poll can end in -> its effect. NOT_CONFIRMED is absent on purpose: it is the
# outcome of a command whose status reads each already counted here.
ERROR_EFFECTS: Mapping[ErrorKind, LinkEffect] = MappingProxyType(
    {
        ErrorKind.TIMEOUT: LinkEffect.FAILED,
        ErrorKind.CRC: LinkEffect.FAILED,
        ErrorKind.EXCEPTION: LinkEffect.ANSWERED_WITHOUT_STATUS,
        ErrorKind.NO_SUCH_UNIT: LinkEffect.FAILED,
        ErrorKind.BAD_REPLY: LinkEffect.FAILED,
        ErrorKind.DECODE: LinkEffect.FAILED,
        ErrorKind.FROZEN: LinkEffect.FAILED,
        ErrorKind.DISCONNECTED: LinkEffect.FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class LinkRules:
    offline_after: int = 3
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.offline_after < 1 or self.backoff_initial_s <= 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("offline_after >= 1 and 0 < backoff_initial_s <= backoff_max_s")

    def after(self, effect: LinkEffect, failures: int) -> tuple[LinkState, int]:
        """(the link state, consecutive failures) after a poll with this effect."""
        if effect is LinkEffect.ANSWERED:
            return LinkState.ONLINE, 0
        if effect is LinkEffect.ANSWERED_WITHOUT_STATUS:
            return LinkState.DEGRADED, 0
        failures += 1
        return (LinkState.OFFLINE if failures >= self.offline_after else LinkState.DEGRADED), failures

    def backoff_s(self, failures: int) -> float:
        """How long an offline unit waits for its next probe: doubling from the first time it
        went offline, capped (bleak-retry-connector's calculate_backoff_time, for a line)."""
        exponent = max(0, failures - self.offline_after)
        return min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(exponent, 32))


@dataclass(frozen=True, slots=True)
class UnitLink:
    state: LinkState
    consecutive_failures: int
    last_error: BusError | None
    polls_ok: int
    polls_failed: int
    last_ok_at: float | None  # time.monotonic() of the last good status read
    answered_once: bool  # anything valid (a status or an exception) came back since the bus opened
    # For device telemetry (contract/telemetry.py, DeviceTelemetry): the wall-clock time
    # of last_error, of the first failure since the last good status read (None after one), and
    # the failures since then by kind.
    last_error_at: datetime | None
    failing_since: datetime | None
    failures_by_kind: Mapping[ErrorKind, int]
