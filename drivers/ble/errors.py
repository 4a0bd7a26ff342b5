"""Exception tree for the BLE drivers.

The split says whose fault a failure is, so callers can react differently:
``DecodeError`` means the *device* sent bytes that break the spec (log, skip,
report the firmware); ``DeviceUnavailableError`` means the *link or the
person* (cuff off, out of range, dropped mid-measurement) - retry or ask the
user to try again. Each class below it carries a stable ``code``
(contract/device_errors.py), which the agent reports and the bridge alerts on:
the connection failures keep the classes bleak-retry-connector tells apart
(connect.py), the bond failures are in bonding.py.
"""

from __future__ import annotations

from typing import ClassVar

from contract.device_errors import DeviceErrorCode


class BleDriverError(Exception):
    """Root of every error raised by ``drivers.ble``; ``code`` says which kind, on the wire."""

    code: ClassVar[DeviceErrorCode]


class DecodeError(BleDriverError):
    """The device sent bytes that break the spec."""

    code = DeviceErrorCode.BLE_DECODE

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

    code = DeviceErrorCode.BLE_GATT_ERROR


class DeviceNotFoundError(DeviceUnavailableError):
    """Connecting failed: the device is off, out of range or not advertising."""

    code = DeviceErrorCode.BLE_NOT_FOUND


class OutOfConnectionSlotsError(DeviceNotFoundError):
    """The adapter has no free connection slot (too many devices connected at once)."""

    code = DeviceErrorCode.BLE_OUT_OF_SLOTS


class ConnectAbortedError(DeviceNotFoundError):
    """The attempt was aborted under way: interference, or the device at the edge of range."""

    code = DeviceErrorCode.BLE_ABORTED


class ConnectFailedError(DeviceNotFoundError):
    """Every attempt failed, for a reason the stack did not name."""

    code = DeviceErrorCode.BLE_CONNECT_FAILED


class MissingServiceError(DeviceUnavailableError):
    """Connected, but the device lacks the service or characteristic its profile names
    (a wrong profile, or another device at that address)."""

    code = DeviceErrorCode.BLE_MISSING_SERVICE


class DeviceDisconnectedError(DeviceUnavailableError):
    """The connection dropped mid-measurement."""

    code = DeviceErrorCode.BLE_DROPPED


class MeasurementTimeoutError(DeviceUnavailableError):
    """The device stayed connected but sent no measurement in time."""

    code = DeviceErrorCode.BLE_TIMEOUT
