"""The one bleak client backend class that serves any simulated peripheral."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from drivers.ble import uuids
from drivers.ble.simulated.peripheral import (
    ATT_DEFAULT_MTU,
    SimCharacteristic,
    SimulatedPeripheral,
)


def _build_services(
    peripheral: SimulatedPeripheral, mtu: int
) -> tuple[BleakGATTServiceCollection, dict[int, SimCharacteristic]]:
    """bleak's view of ``peripheral.services()``, plus value handle -> simulated characteristic."""
    collection = BleakGATTServiceCollection()
    by_handle: dict[int, SimCharacteristic] = {}
    handle = 1
    for sim_service in peripheral.services():
        service = BleakGATTService(None, handle, sim_service.uuid)
        collection.add_service(service)
        for sim_char in sim_service.characteristics:
            value_handle = handle + 2  # declaration at handle + 1, value right after it
            characteristic = BleakGATTCharacteristic(
                None, value_handle, sim_char.uuid, list(sim_char.properties), lambda: mtu - 3, service
            )
            collection.add_characteristic(characteristic)
            by_handle[value_handle] = sim_char
            handle = value_handle
            if {"notify", "indicate"} & set(sim_char.properties):
                handle += 1
                collection.add_descriptor(
                    BleakGATTDescriptor(None, handle, uuids.CLIENT_CHARACTERISTIC_CONFIGURATION, characteristic)
                )
        handle += 1
    return collection, by_handle


class SimulatedBleakClient(BaseBleakClient):
    """bleak backend talking to the peripheral bound by :func:`simulated_backend`; also its Link."""

    peripheral: SimulatedPeripheral  # set on the subclass made by simulated_backend()

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._connected = False
        self._encrypted = False  # link encrypted with a bond both sides hold
        self._subscriptions: dict[int, NotifyCallback] = {}
        self._subscribed = asyncio.Event()  # pulsed on every start_notify
        self._by_handle: dict[int, SimCharacteristic] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._link = _LinkView(self)  # what scripts and write handlers see

    @property
    def name(self) -> str:
        return self.peripheral.name

    @property
    def mtu_size(self) -> int:
        return ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.address.upper() != self.peripheral.address.upper():
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        if self._connected:
            return
        device = self.peripheral
        self._connected = True
        device.connections += 1
        # Re-encryption with stored keys works only if both sides still hold the bond.
        self._encrypted = device.central_bonded and device.bonded
        self.services, self._by_handle = _build_services(device, self.mtu_size)
        if pair:
            await self.pair()
        self.run_soon(device.run(self._link))

    async def disconnect(self) -> None:
        """Central-initiated disconnect: no disconnected_callback (BaseBleakClient docs)."""
        self._drop_link()
        await self._stop_tasks()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        self._require_connected()  # BlueZ pairs on an existing connection (device path needed)
        device = self.peripheral
        if device.central_bonded:
            # bleak's BlueZ backend returns early when BlueZ lists the device as paired,
            # even if the device forgot its side: that is why forgets_bond needs unpair().
            return
        device.central_bonded = device.bonded = True
        self._encrypted = True

    async def unpair(self) -> None:
        device = self.peripheral
        if not device.central_bonded:
            # BlueZ RemoveDevice on a device it holds nothing for (bleak maps DoesNotExist so).
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        device.central_bonded = False
        # bleak docs: "Unpairing will also disconnect the device."
        await self.disconnect()

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        sim_char = self._accessible(characteristic)
        if sim_char.read is None:
            # What a real GATT server answers for a value that is not readable.
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED)
        return bytearray(sim_char.read())

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        raise NotImplementedError("simulated peripherals do not simulate descriptor reads")

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        self._require_connected()
        sim_char = self._by_handle[characteristic.handle]
        if sim_char.write is None:
            # NotImplementedError (not ATT 0x03) is pinned by test_backend_plain_bleak_surface.
            raise NotImplementedError(f"{characteristic.uuid} has no write handler in the simulator")
        self._check_security()
        value = bytes(data)
        self.peripheral.writes.append((sim_char.uuid, value))
        sim_char.write(value, self._link)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        raise NotImplementedError("simulated peripherals do not simulate descriptor writes")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._accessible(characteristic)
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"{characteristic.uuid} supports neither notify nor indicate")
        self._subscriptions[characteristic.handle] = callback
        self._subscribed.set()

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require_connected()
        self._subscriptions.pop(characteristic.handle, None)

    # -- Link (the peripheral's side) --

    def send(self, uuid: str, payload: bytes) -> None:
        """Notify/indicate ``payload`` if the central subscribed; else it is lost, as on air."""
        if not self._connected or self.services is None:
            return
        characteristic = self.services.get_characteristic(uuid)
        callback = None if characteristic is None else self._subscriptions.get(characteristic.handle)
        if callback is not None:
            callback(bytearray(payload))

    def disconnect_from_peripheral(self) -> None:
        if not self._connected:
            return
        self._drop_link()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()  # nothing the device was doing survives the link
        # Peripheral-initiated disconnect: this is the case bleak reports via the callback.
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    def run_soon(self, script: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(script, name=f"sim-{self.peripheral.name}-{self.address}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_subscribed(self, uuid: str) -> None:
        assert self.services is not None
        characteristic = self.services.get_characteristic(uuid)
        while characteristic is None or characteristic.handle not in self._subscriptions:
            self._subscribed.clear()
            await self._subscribed.wait()

    # -- internals --

    def _accessible(self, characteristic: BleakGATTCharacteristic) -> SimCharacteristic:
        self._require_connected()
        self._check_security()
        return self._by_handle[characteristic.handle]

    def _check_security(self) -> None:
        if self.peripheral.requires_bonding and not self._encrypted:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION)

    def _require_connected(self) -> None:
        if not self._connected:
            raise BleakError("Not connected")

    def _drop_link(self) -> None:
        if self._connected and self.peripheral.forgets_bond:
            self.peripheral.bonded = False
        self._connected = False
        self._encrypted = False
        self._subscriptions.clear()
        self.services = None

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is current:
                continue
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


class _LinkView:
    """The :class:`Link` surface of one connection, handed to peripheral scripts.

    A separate object because bleak already owns ``disconnect`` on the backend
    (central-initiated, no callback), while ``Link.disconnect`` is the peripheral's.
    """

    def __init__(self, client: SimulatedBleakClient) -> None:
        self._client = client

    def send(self, uuid: str, payload: bytes) -> None:
        self._client.send(uuid, payload)

    def disconnect(self) -> None:
        self._client.disconnect_from_peripheral()

    def run_soon(self, script: Coroutine[Any, Any, None]) -> None:
        self._client.run_soon(script)

    async def wait_subscribed(self, uuid: str) -> None:
        await self._client.wait_subscribed(uuid)


def simulated_backend(peripheral: SimulatedPeripheral) -> type[BaseBleakClient]:
    """A bleak backend class bound to ``peripheral`` (a fresh subclass; no global registry).

    Its ``find_device`` is what a scan would hear: the peripheral, by its address, or nothing
    (drivers/ble/connect.py asks a backend that has one instead of scanning the radio).
    """

    def find_device(address: str) -> BLEDevice | None:
        if address.upper() != peripheral.address.upper() or not peripheral.is_advertising():
            return None
        return BLEDevice(peripheral.address, peripheral.name, None)

    return type(
        f"SimulatedBleakClient_{peripheral.name}",
        (SimulatedBleakClient,),
        {"peripheral": peripheral, "find_device": staticmethod(find_device)},
    )
