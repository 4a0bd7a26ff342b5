"""Exception tree for the BLE drivers.

The split says whose fault a failure is, so callers can react differently:
``DecodeError`` means the *device* sent bytes that break the spec (log, skip,
report the firmware); ``DeviceUnavailableError`` means the *link or the
person* (cuff off, out of range, dropped mid-measurement) - retry or ask the
user to try again.
"""

from __future__ import annotations


class BleDriverError(Exception):
    """Root of every error raised by ``drivers.ble``."""


class DecodeError(BleDriverError):
    """The device sent bytes that break the spec."""

    def __init__(self, characteristic: str, field: str, reason: str) -> None:
        self.characteristic = characteristic  # short UUID, e.g. "2a35"
        self.field = field  # SIG field name in snake_case, e.g. "time_stamp"
        self.reason = reason
        super().__init__(f"{characteristic}: field {field!r} {reason}")

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, str, str]]:
        # Keep the exception picklable (multiprocessing, logging handlers).
        return (type(self), (self.characteristic, self.field, self.reason))


class DeviceUnavailableError(BleDriverError):
    """The device could not be talked to: not the bytes' fault but the link's."""


class DeviceNotFoundError(DeviceUnavailableError):
    """Connecting failed: the device is off, out of range or not advertising."""


class DeviceDisconnectedError(DeviceUnavailableError):
    """The connection dropped mid-measurement."""


class MeasurementTimeoutError(DeviceUnavailableError):
    """The device stayed connected but sent no measurement in time."""
