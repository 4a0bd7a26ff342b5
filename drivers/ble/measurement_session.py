"""Generic measurement sessions over ``bleak.BleakClient``, and the plumbing every session shares.

Shared (used by cuff_session and glucose_session too): :class:`LinkWatch` (wake-ups,
link loss and decode-or-warn for one connection), :func:`open_link` (connect, bond,
always disconnect), :func:`subscribe` (error mapping) and :func:`set_device_clock`
(CTS 1.1 section 3.1 Current Time write). :class:`IndicationSession` is the
session for devices that connect to deliver readings on one indicated characteristic
(HTS 3.1 thermometer, WSS 3.1 scale, PLXS 3.1 spot-check oximeter).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Generic, TypeVar

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.exc import BleakError

from drivers.ble import bonding, uuids
from drivers.ble.battery import decode_battery_level
from drivers.ble.clock import decode_current_time, encode_current_time
from drivers.ble.connect import client_class, connect
from drivers.ble.errors import (
    DecodeError,
    DeviceDisconnectedError,
    MissingServiceError,
    DeviceUnavailableError,
    MeasurementTimeoutError,
)

logger = logging.getLogger(__name__)

# A device clock further off than this is worth a warning (a cheap cuff drifts minutes a year).
CLOCK_OFF_WARN_S = 120

T = TypeVar("T")
NotifyHandler = Callable[[BleakGATTCharacteristic, bytearray], None]


class LinkWatch:
    """What one connection has seen: which characteristics sent bytes, and whether it dropped."""

    def __init__(self, address: str, log: logging.Logger = logger) -> None:
        self.address = address
        self.wake = asyncio.Event()  # set on every notification and on link loss
        self.disconnected = asyncio.Event()
        self.seen: set[str] = set()  # UUIDs that sent any bytes, decodable or not
        # The kiosk paired on this link and pairing returned: a refusal for want of a bond
        # then means the device dropped it (bond lost), not that it was never paired.
        self.bonded = False
        self._log = log

    def on_disconnect(self, _client: BleakClient) -> None:
        self.disconnected.set()
        self.wake.set()

    def handler(self, decode: Callable[[bytes], T], on_value: Callable[[T], None]) -> NotifyHandler:
        """A start_notify callback: note the bytes, wake the waiter, decode, hand on the value."""

        def on_notify(characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
            self.seen.add(characteristic.uuid)
            self.wake.set()
            value = self.decode_or_warn(decode, data)
            if value is not None:
                on_value(value)

        return on_notify

    def decode_or_warn(self, decode: Callable[[bytes], T], data: bytearray) -> T | None:
        try:
            return decode(bytes(data))
        except DecodeError as exc:
            # The device's fault, not ours: keep the session alive, leave evidence.
            self._log.warning(
                "skipping undecodable value from %s: %s (bytes: %s)", self.address, exc, bytes(data).hex()
            )
            return None

    async def wait_idle(self, idle_timeout: float, done: asyncio.Event | None = None) -> None:
        """Return on link loss, when ``done`` is set, or after ``idle_timeout`` s without a value."""
        while not self.disconnected.is_set() and not (done is not None and done.is_set()):
            # No await between clear() and wait(), so no notification can slip in between.
            self.wake.clear()
            try:
                async with asyncio.timeout(idle_timeout):
                    await self.wake.wait()
            except TimeoutError:
                return

    def failure(self, client: BleakClient, action: str, exc: BleakError) -> DeviceUnavailableError:
        """The typed error for a failed GATT operation: link loss, missing bond, or other."""
        if self.disconnected.is_set() or not client.is_connected:
            return DeviceDisconnectedError(f"{self.address} dropped while {action}")
        if bonding.is_security_failure(exc):
            refused = bonding.DeviceBondLostError if self.bonded else bonding.DeviceNotBondedError
            return refused(self.address, f"{action}: {exc}")
        return DeviceUnavailableError(f"{self.address}: {action} failed: {exc}")


@asynccontextmanager
async def open_link(
    address: str,
    watch: LinkWatch,
    *,
    backend: type[BaseBleakClient] | None,
    connect_timeout: float,
    needs_bonding: bool = False,
    forgets_bond: bool = False,
    on_battery: Callable[[int], None] | None = None,
) -> AsyncIterator[BleakClient]:
    """Connect (bonding as the device needs), yield the client, always disconnect.

    DeviceNotFoundError if connecting fails; DeviceNotBondedError if pairing fails. A device
    with a Battery Service has its level read first and given to `on_battery`.
    """
    if forgets_bond:
        # Before connecting: BlueZ's unpair disconnects (see bonding.py).
        stale = client_class(backend)(address, timeout=connect_timeout)
        await bonding.forget_stale_bond(stale, address)
    client = await connect(
        address, backend=backend, disconnected_callback=watch.on_disconnect, timeout=connect_timeout
    )
    try:
        if needs_bonding or forgets_bond:
            await bonding.pair(client, address)
            watch.bonded = True
        if on_battery is not None:
            level = await read_battery_level(client, address)
            if level is not None:
                on_battery(level)
        yield client
    finally:
        await _disconnect_quietly(client, address)


async def subscribe(client: BleakClient, watch: LinkWatch, uuid: str, handler: NotifyHandler) -> None:
    """start_notify with failures mapped to the driver's error types."""
    try:
        await client.start_notify(uuid, handler)
    except BleakError as exc:
        raise watch.failure(client, f"subscribing to {uuids.short_form(uuid) or uuid}", exc) from exc


async def read_battery_level(client: BleakClient, address: str) -> int | None:
    """Battery Level 0x2A19 (BAS 1.1 section 3.1) if the device has it; best effort: a failure is
    logged and the session goes on."""
    characteristic = client.services.get_characteristic(uuids.BATTERY_LEVEL)
    if characteristic is None or "read" not in characteristic.properties:
        return None
    try:
        return decode_battery_level(bytes(await client.read_gatt_char(characteristic)))
    except (BleakError, DecodeError) as exc:
        # Refused for want of a bond: the session's next secured access raises the typed error,
        # which the agent reports once; a warning here would repeat at every poll.
        level = logging.DEBUG if bonding.is_security_failure(exc) else logging.WARNING
        logger.log(level, "reading the battery of %s failed: %s", address, exc)
        return None


async def set_device_clock(
    client: BleakClient,
    address: str,
    now: Callable[[], datetime | None],
    on_offset: Callable[[float], None] | None = None,
) -> bool:
    """Write ``now()`` to Current Time 0x2A2B (CTS 1.1 section 3.1) if the device lets us.

    Keeps drifting device clocks right, so the timestamps in their measurements are too.
    First, if it is readable, the device's clock is compared with the kiosk's: the offset (device
    minus kiosk, seconds) goes to ``on_offset`` and a large one is logged.
    ``now()`` returns None while the kiosk's own clock is not to be trusted (a Pi before NTP):
    a wrong time must not overwrite a device's clock that may be right.
    Best effort: a failure is logged and the session goes on (True if written).
    """
    kiosk_time = now()
    if kiosk_time is None:
        logger.info("not setting the clock of %s: the kiosk's own clock is not synchronised", address)
        return False
    characteristic = client.services.get_characteristic(uuids.CURRENT_TIME)
    if characteristic is None:
        return False
    properties = set(characteristic.properties)
    if on_offset is not None and "read" in properties:
        offset = await _device_clock_offset(client, characteristic, kiosk_time, address)
        if offset is not None:
            on_offset(offset)
    if not {"write", "write-without-response"} & properties:
        return False
    try:
        await client.write_gatt_char(characteristic, encode_current_time(kiosk_time), response="write" in properties)
    except (BleakError, ValueError) as exc:
        logger.warning("setting the clock of %s failed, its timestamps may drift: %s", address, exc)
        return False
    return True


async def _device_clock_offset(
    client: BleakClient, characteristic: BleakGATTCharacteristic, kiosk_time: datetime, address: str
) -> float | None:
    try:
        device_time = decode_current_time(bytes(await client.read_gatt_char(characteristic))).time
    except (BleakError, DecodeError) as exc:
        logger.warning("reading the clock of %s failed: %s", address, exc)
        return None
    if device_time is None:
        return None
    offset = (device_time - kiosk_time.replace(tzinfo=None)).total_seconds()
    if abs(offset) > CLOCK_OFF_WARN_S:
        logger.warning("the clock of %s is %+.0f s off the kiosk's; setting it", address, offset)
    return offset


class DeviceSession:
    """A session with one device: how to reach it (its address, the bleak backend, its bonding
    quirks), and what it said about itself on the last connection."""

    battery_percent: int | None = None
    clock_offset_s: float | None = None  # the device's clock minus the kiosk's, before it was set

    def __init__(
        self,
        address: str,
        *,
        backend: type[BaseBleakClient] | None,
        connect_timeout: float,
        needs_bonding: bool,
        forgets_bond: bool,
    ) -> None:
        self._address = address
        self._backend = backend
        self._connect_timeout = connect_timeout
        self._needs_bonding = needs_bonding  # pair after connecting (profile quirk)
        self._forgets_bond = forgets_bond  # unpair + pair every time (profile quirk; see bonding.py)

    def _open_link(self, watch: LinkWatch) -> AbstractAsyncContextManager[BleakClient]:
        return open_link(
            self._address,
            watch,
            backend=self._backend,
            connect_timeout=self._connect_timeout,
            needs_bonding=self._needs_bonding,
            forgets_bond=self._forgets_bond,
            on_battery=self._note_battery,
        )

    def _note_battery(self, percent: int) -> None:
        self.battery_percent = percent

    def _note_clock_offset(self, offset_s: float) -> None:
        self.clock_offset_s = offset_s


async def _disconnect_quietly(client: BleakClient, address: str) -> None:
    if not client.is_connected:
        return
    try:
        await client.disconnect()
    except BleakError as exc:
        # We are done with the device either way; a failed goodbye is not worth raising.
        logger.warning("disconnecting from %s failed: %s", address, exc)


class IndicationSession(DeviceSession, Generic[T]):
    """Connect to a device that delivers readings on one characteristic; return them.

    Why not shared with the cuff's outcome rules: a cuff shows progress (0x2A36
    inflation) before its result, so it can tell "left without measuring" from
    "dropped mid-measurement". These devices only connect to deliver a reading, so a
    link lost before any value is a lost reading (DeviceDisconnectedError). Values
    that did arrive were indicated, i.e. confirmed, and the device deletes a stored
    reading only after confirmation (HTS 3.1, WSS 3.1), so they are returned.
    The waiting, decoding and connection plumbing above is shared.
    """

    def __init__(
        self,
        address: str,
        characteristic_uuid: str,
        decode: Callable[[bytes], T],
        *,
        backend: type[BaseBleakClient] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 5.0,
        needs_bonding: bool = False,
        forgets_bond: bool = False,
        now: Callable[[], datetime | None] = datetime.now,
    ) -> None:
        super().__init__(address, backend=backend, connect_timeout=connect_timeout, needs_bonding=needs_bonding,
                         forgets_bond=forgets_bond)
        self._uuid = characteristic_uuid
        self._decode = decode
        self._idle_timeout = idle_timeout
        self._now = now

    async def collect(self) -> list[T]:
        """The readings of one connection; returns on peripheral disconnect or idle timeout.

        Raises DeviceNotFoundError (connect), DeviceNotBondedError (security),
        DeviceDisconnectedError (link lost before any value) and
        MeasurementTimeoutError (connected but silent for ``idle_timeout``).
        Undecodable values are logged and skipped.
        """
        watch = LinkWatch(self._address)
        values: list[T] = []
        async with self._open_link(watch) as client:
            if client.services.get_characteristic(self._uuid) is None:
                raise MissingServiceError(f"{self._address} has no {uuids.short_form(self._uuid) or self._uuid}")
            await set_device_clock(client, self._address, self._now, self._note_clock_offset)
            await subscribe(client, watch, self._uuid, watch.handler(self._decode, values.append))
            await watch.wait_idle(self._idle_timeout)
        if self._uuid in watch.seen:
            return values
        if watch.disconnected.is_set():
            raise DeviceDisconnectedError(f"{self._address}: connection dropped before any measurement arrived")
        raise MeasurementTimeoutError(f"{self._address}: no measurement within {self._idle_timeout} s")
