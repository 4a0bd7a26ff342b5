"""Each device's failures since the agent started: what the log says of them and what the
kiosk's telemetry reports.

A cuff is polled every few seconds and is off most of the day, so a failure repeats hundreds
of times: each kind of failure is logged once, when it first happens after the last successful
session (at the level its kind deserves: a lost bond is a WARNING, a cuff that is off only
DEBUG), and once more, with its count, when the device works again. Telemetry carries the
newest failure, when failing started and the counts per code since the last success
(contract/telemetry.py, DeviceTelemetry), so the bridge can tell a technician.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from contract.device_errors import BOND_ERRORS, DeviceErrorCode
from contract.telemetry import DeviceError
from drivers.laundry.link import ERROR_CODES, UnitLink

# How loud the first failure of each kind is. Not finding a cuff is its normal state between
# measurements; a refused bond or a lost reading needs a person.
LOG_LEVELS: Mapping[str, int] = MappingProxyType(
    {
        DeviceErrorCode.BLE_NOT_FOUND: logging.DEBUG,
        DeviceErrorCode.BLE_OUT_OF_SLOTS: logging.INFO,
        DeviceErrorCode.BLE_ABORTED: logging.INFO,
        DeviceErrorCode.BLE_CONNECT_FAILED: logging.INFO,
        DeviceErrorCode.BLE_TIMEOUT: logging.INFO,
        DeviceErrorCode.BLE_DROPPED: logging.WARNING,
        DeviceErrorCode.BLE_NOT_BONDED: logging.WARNING,
        DeviceErrorCode.BLE_BOND_LOST: logging.WARNING,
        DeviceErrorCode.BLE_MISSING_SERVICE: logging.WARNING,
        DeviceErrorCode.BLE_GATT_ERROR: logging.WARNING,
        DeviceErrorCode.BLE_DECODE: logging.WARNING,
        DeviceErrorCode.BLE_PROCEDURE_REFUSED: logging.WARNING,
        DeviceErrorCode.BLE_ADAPTER_UNAVAILABLE: logging.ERROR,
    }
)
# The contract bounds a message (DeviceError.message).
MESSAGE_LIMIT = 500


@dataclass
class DeviceHealth:
    last_error: DeviceError | None = None
    failing_since: datetime | None = None
    counts: Counter[str] = field(default_factory=Counter)  # since the last successful session
    # The newest refusal for want of a bond since the last successful session: it stands while
    # the cuff is off (not found) between tries, as only pairing again helps.
    bond_error: DeviceError | None = None


class DeviceHealthBook:
    """The failures of every device, by address."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._devices: dict[str, DeviceHealth] = {}

    def failed(self, address: str, code: DeviceErrorCode, message: str, at: datetime) -> None:
        health = self._devices.setdefault(address, DeviceHealth())
        health.last_error = DeviceError(code=code, at=at, message=message[:MESSAGE_LIMIT])
        if code in BOND_ERRORS:
            health.bond_error = health.last_error
        if health.failing_since is None:
            health.failing_since = at
        health.counts[code] += 1
        if health.counts[code] == 1:
            self._log.log(LOG_LEVELS.get(code, logging.WARNING), "device %s: %s (%s; repeats are not logged "
                          "until it works again)", address, message, code)

    def succeeded(self, address: str) -> None:
        health = self._devices.get(address)
        if health is None or not health.counts:
            return
        counts = ", ".join(f"{code} x{n}" for code, n in sorted(health.counts.items()))
        # A cuff found again after being off is no news; one that works after a lost bond is.
        loud = any(LOG_LEVELS.get(code, logging.WARNING) > logging.DEBUG for code in health.counts)
        self._log.log(logging.INFO if loud else logging.DEBUG, "device %s works again, after failing since %s: %s",
                      address, health.failing_since, counts)
        health.failing_since = None
        health.counts.clear()
        health.bond_error = None

    def bond_trouble(self) -> dict[str, DeviceError]:
        """The devices refusing the kiosk for want of a bond since their last good session
        (BOND_ERRORS): only pairing them again at the kiosk helps (edge_agent/pairing.py)."""
        return {address: health.bond_error for address, health in self._devices.items() if health.bond_error is not None}

    def telemetry(self, address: str) -> dict[str, Any]:
        """DeviceTelemetry's error fields for this device."""
        health = self._devices.get(address)
        if health is None:
            return {}
        return {"last_error": health.last_error, "failing_since": health.failing_since,
                "error_counts": dict(health.counts)}


def line_telemetry(link: UnitLink) -> dict[str, Any]:
    """DeviceTelemetry's error fields for a machine on the RS-485 line: its bus counts its own
    failures (drivers/laundry/bus.py) and logs its link's changes (edge_agent/laundry.py)."""
    error = link.last_error
    return {
        "last_error": None if error is None or link.last_error_at is None
        else DeviceError(code=error.code, at=link.last_error_at, message=error.message[:MESSAGE_LIMIT]),
        "failing_since": link.failing_since,
        "error_counts": {ERROR_CODES[kind]: n for kind, n in link.failures_by_kind.items()},
    }
