"""Connecting to a device, with bleak-retry-connector's retries and error classification.

On a Pi the radio is shared and BlueZ fails connections transiently (aborted, out of slots,
services changed); bleak-retry-connector knows those failures and backs off by class, so we
do not hand-write it. A simulated backend takes the same path: establish_connection builds the
client from a BleakClient subclass that carries the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError
from bleak_retry_connector import (
    BleakAbortedError,
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
    establish_connection,
)

from drivers.ble.errors import ConnectAbortedError, ConnectFailedError, DeviceNotFoundError, OutOfConnectionSlotsError

# A cuff is only on while someone measures: a few quick attempts, then the agent's own loop
# tries again later.
CONNECT_ATTEMPTS: Final = 3


def client_class(backend: type[BaseBleakClient] | None) -> type[BleakClient]:
    """BleakClient, or a subclass bound to `backend` (bleak-retry-connector builds the client)."""
    if backend is None:
        return BleakClient

    class BoundBleakClient(BleakClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, backend=backend, **kwargs)

    return BoundBleakClient


async def find_device(address: str, backend: type[BaseBleakClient] | None, timeout: float) -> BLEDevice:
    """The BLEDevice to connect to. On BlueZ it must come from a scan (it carries the D-Bus path);
    a backend that knows what it can reach (a simulator) answers through its `find_device`."""
    backend_finder: Callable[[str], BLEDevice | None] | None = getattr(backend, "find_device", None)
    if backend_finder is not None:
        device = backend_finder(address)
    elif backend is not None:
        device = BLEDevice(address, None, None)
    else:
        try:
            device = await BleakScanner.find_device_by_address(address, timeout=timeout)
        except (BleakError, OSError) as exc:
            raise DeviceNotFoundError(f"cannot scan for {address}: {exc}") from exc
    if device is None:
        raise DeviceNotFoundError(f"{address} is not advertising (off, out of range, or not in pairing mode)")
    return device


async def connect(
    address: str,
    *,
    backend: type[BaseBleakClient] | None,
    disconnected_callback: Callable[[BleakClient], None],
    timeout: float,
) -> BleakClient:
    device = await find_device(address, backend, timeout)
    try:
        return await establish_connection(
            client_class(backend),
            device,
            address,
            disconnected_callback=disconnected_callback,
            max_attempts=CONNECT_ATTEMPTS,
        )
    except (BleakError, TimeoutError, OSError) as exc:
        raise connect_error(address, exc) from exc


def connect_error(address: str, exc: BaseException) -> DeviceNotFoundError:
    """Our class for a failed connection, keeping bleak-retry-connector's classification
    (establish_connection raises BleakNotFoundError, BleakOutOfConnectionSlotsError,
    BleakAbortedError, else BleakConnectionError, having matched BlueZ's error texts): out of
    slots wants fewer connections at once, aborted a closer device, not found a device turned on."""
    message = f"could not connect to {address}: {exc}"
    if isinstance(exc, BleakOutOfConnectionSlotsError):
        return OutOfConnectionSlotsError(message)
    if isinstance(exc, BleakAbortedError):
        return ConnectAbortedError(message)
    if isinstance(exc, (BleakNotFoundError, TimeoutError)):
        return DeviceNotFoundError(message)
    return ConnectFailedError(message)
