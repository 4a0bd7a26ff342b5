"""Simulated BLE blood-pressure cuff, plugged in as a bleak client backend.

Production code keeps calling ``bleak.BleakClient(address, backend=...)``; only
the backend class differs, so the real BleakClient (characteristic lookup,
callback wrapping, disconnect callback plumbing) is exercised in tests.

bleak 3.1.0 contract (bleak/__init__.py BleakClient.__init__, bleak/backends/client.py):
``backend`` is a *class*, a subclass of ``BaseBleakClient``; BleakClient
instantiates it as ``backend(address, disconnected_callback=<no-arg callable or
None>, services=..., timeout=..., bluez=..., winrt=...)`` and delegates to it.
After ``connect`` the backend must have set ``self.services`` to a
``BleakGATTServiceCollection``; characteristic lookups by UUID go through it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
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
from drivers.ble.blood_pressure import (
    SIG_COMPLIANT,
    BloodPressureDialect,
    BloodPressureMeasurement,
    BloodPressureUnit,
    encode_blood_pressure_measurement,
)

_ATT_DEFAULT_MTU = 23  # the LE default ATT_MTU before any MTU exchange

# Blood Pressure Feature (BLS 3.3), uint16: bits 0-4 = body movement,
# cuff fit, irregular pulse, pulse rate range and measurement position detection.
_DEFAULT_FEATURES = 0x001F

MeasurementSource = Callable[[], Iterable[BloodPressureMeasurement]] | Iterable[BloodPressureMeasurement]


def plausible_reading() -> list[BloodPressureMeasurement]:
    """One random but physiologically plausible reading, stamped with local time."""
    rng = random.Random()  # local instance: no shared global RNG state
    systolic = rng.randint(100, 145)
    diastolic = rng.randint(60, 95)
    return [
        BloodPressureMeasurement(
            unit=BloodPressureUnit.MMHG,
            systolic=float(systolic),
            diastolic=float(diastolic),
            mean_arterial_pressure=float(round((systolic + 2 * diastolic) / 3)),
            timestamp=datetime.now().replace(microsecond=0),  # cuff clock: naive local
            pulse_rate=float(rng.randint(55, 95)),
            user_id=None,
            status=(),
        )
    ]


@dataclass
class SimulatedCuff:
    """A blood-pressure cuff: on each connection, after ``start_delay`` s it indicates the
    inflation on 0x2A36 (cuff pressure rising in ``inflate_steps`` notifications every
    ``step_interval`` s), then indicates each measurement from ``measurements`` on 0x2A35,
    then disconnects after ``disconnect_after`` s.

    ``measurements`` is either an iterable (replayed on every connection) or a
    zero-argument callable returning one (called per connection).
    """

    address: str = "SIM:CU:FF:00:00:01"
    name: str = "SIM-BP"
    measurements: MeasurementSource = plausible_reading
    start_delay: float = 0.05
    inflate_steps: int = 5
    step_interval: float = 0.05
    disconnect_after: float = 0.1
    features: int = _DEFAULT_FEATURES
    has_intermediate_cuff_pressure: bool = True
    # Misbehaviour switches.
    drop_mid_measurement: bool = False  # drop the link after inflation, before 0x2A35
    garbage: bytes | None = None  # sent on 0x2A35 instead of the encoded measurements
    dialect: BloodPressureDialect = SIG_COMPLIANT  # encode as a non-compliant cuff would

    def payloads(self) -> list[bytes]:
        """The 0x2A35 values to indicate on one connection."""
        if self.garbage is not None:
            return [self.garbage]
        source = self.measurements() if callable(self.measurements) else self.measurements
        return [encode_blood_pressure_measurement(m, self.dialect) for m in source]

    def cuff_pressures(self) -> list[bytes]:
        """0x2A36 values for the inflation ramp (diastolic/MAP NaN per BLS 3.2)."""
        steps = max(self.inflate_steps, 0)
        return [
            encode_blood_pressure_measurement(
                BloodPressureMeasurement(
                    unit=BloodPressureUnit.MMHG,
                    systolic=float(20 + (160 * (i + 1)) // steps),
                    diastolic=None,
                    mean_arterial_pressure=None,
                )
            )
            for i in range(steps)
        ]


def _build_services(cuff: SimulatedCuff, mtu: int) -> BleakGATTServiceCollection:
    """A GATT table with the Blood Pressure Service (BLS 3) and its characteristics."""
    collection = BleakGATTServiceCollection()
    service = BleakGATTService(None, 1, uuids.BLOOD_PRESSURE_SERVICE)
    collection.add_service(service)
    # (value handle, uuid, properties); BLS 3.1-3.3: BPM indicate, ICP notify, feature read.
    table: list[tuple[int, str, list[CharacteristicPropertyName]]] = [(3, uuids.BLOOD_PRESSURE_MEASUREMENT, ["indicate"])]
    if cuff.has_intermediate_cuff_pressure:
        table.append((6, uuids.INTERMEDIATE_CUFF_PRESSURE, ["notify"]))
    table.append((9, uuids.BLOOD_PRESSURE_FEATURE, ["read"]))
    for handle, uuid, properties in table:
        characteristic = BleakGATTCharacteristic(
            None, handle, uuid, properties, lambda: mtu - 3, service
        )
        collection.add_characteristic(characteristic)
        if "read" not in properties:
            collection.add_descriptor(
                BleakGATTDescriptor(
                    None, handle + 1, uuids.CLIENT_CHARACTERISTIC_CONFIGURATION, characteristic
                )
            )
    return collection


class SimulatedBleakClient(BaseBleakClient):
    """bleak backend talking to the ``SimulatedCuff`` bound by :func:`simulated_backend`."""

    peripheral: SimulatedCuff  # set on the subclass made by simulated_backend()

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._connected = False
        self._subscriptions: dict[int, NotifyCallback] = {}
        self._script: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.peripheral.name

    @property
    def mtu_size(self) -> int:
        return _ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.address.upper() != self.peripheral.address.upper():
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        if self._connected:
            return
        self._connected = True
        self.services = _build_services(self.peripheral, self.mtu_size)
        self._script = asyncio.create_task(self._run_peripheral(), name=f"sim-cuff-{self.address}")

    async def disconnect(self) -> None:
        """Central-initiated disconnect: no disconnected_callback (BaseBleakClient docs)."""
        self._drop_link()
        script = self._script
        if script is not None and script is not asyncio.current_task():
            script.cancel()
            try:
                await script
            except asyncio.CancelledError:
                pass
        self._script = None

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("SimulatedCuff does not simulate pairing")

    async def unpair(self) -> None:
        raise NotImplementedError("SimulatedCuff does not simulate pairing")

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require_connected()
        if characteristic.uuid == uuids.BLOOD_PRESSURE_FEATURE:
            return bytearray(self.peripheral.features.to_bytes(2, "little"))
        # What a real GATT server answers for a value that is not readable.
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        raise NotImplementedError("SimulatedCuff does not simulate descriptor reads")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        raise NotImplementedError("SimulatedCuff has no writable characteristics")

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        raise NotImplementedError("SimulatedCuff does not simulate descriptor writes")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._require_connected()
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"{characteristic.uuid} supports neither notify nor indicate")
        self._subscriptions[characteristic.handle] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require_connected()
        self._subscriptions.pop(characteristic.handle, None)

    def _require_connected(self) -> None:
        if not self._connected:
            raise BleakError("Not connected")

    def _drop_link(self) -> None:
        self._connected = False
        self._subscriptions.clear()
        self.services = None

    def _send(self, uuid: str, payload: bytes) -> None:
        """Notify/indicate ``payload`` if the central subscribed; else it is lost, as on air."""
        assert self.services is not None
        characteristic = self.services.get_characteristic(uuid)
        callback = None if characteristic is None else self._subscriptions.get(characteristic.handle)
        if callback is not None:
            callback(bytearray(payload))

    async def _run_peripheral(self) -> None:
        cuff = self.peripheral
        await asyncio.sleep(cuff.start_delay)
        for pressure in cuff.cuff_pressures():
            if cuff.has_intermediate_cuff_pressure:
                self._send(uuids.INTERMEDIATE_CUFF_PRESSURE, pressure)
            await asyncio.sleep(cuff.step_interval)
        if not cuff.drop_mid_measurement:
            for payload in cuff.payloads():
                self._send(uuids.BLOOD_PRESSURE_MEASUREMENT, payload)
            await asyncio.sleep(cuff.disconnect_after)
        # Peripheral-initiated disconnect: this is the case bleak reports via the callback.
        self._drop_link()
        if self._disconnected_callback is not None:
            self._disconnected_callback()


def simulated_backend(peripheral: SimulatedCuff) -> type[BaseBleakClient]:
    """A bleak backend class bound to ``peripheral`` (a fresh subclass; no global registry)."""
    return type(
        f"SimulatedBleakClient_{peripheral.name}",
        (SimulatedBleakClient,),
        {"peripheral": peripheral},
    )
