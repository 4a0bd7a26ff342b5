"""Simulated BLE peripherals (cuff, glucose meter, thermometer, scale, oximeter) as a bleak backend.

Production code keeps calling ``bleak.BleakClient(address, backend=...)``; only
the backend class differs, so the real BleakClient (characteristic lookup,
callback wrapping, disconnect callback plumbing) is exercised in tests.

bleak 3.1.0 contract (bleak/__init__.py BleakClient.__init__, bleak/backends/client.py):
``backend`` is a *class*, a subclass of ``BaseBleakClient``; BleakClient
instantiates it as ``backend(address, disconnected_callback=<no-arg callable or
None>, services=..., timeout=..., bluez=..., winrt=...)`` and delegates to it.
After ``connect`` the backend must have set ``self.services`` to a
``BleakGATTServiceCollection``; characteristic lookups by UUID go through it.

Layout: a :class:`SimulatedPeripheral` describes a GATT table (``gatt()``) and a
per-connection script (``run(link)``); the single backend class
(:class:`SimulatedBleakClient`) serves any peripheral and is the :class:`Link`
the script talks through. Misbehaviours every peripheral supports:
``drop_mid_transfer``, ``garbage``, memory replayed on every connection,
``requires_bonding`` and ``forgets_bond``; the Current Time Service (CTS 1.1) is
added with ``has_current_time``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

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

from drivers.ble import racp, uuids
from drivers.ble.blood_pressure import (
    SIG_COMPLIANT,
    BloodPressureDialect,
    BloodPressureMeasurement,
    BloodPressureUnit,
    encode_blood_pressure_measurement,
)
from drivers.ble.clock import decode_current_time, encode_current_time
from drivers.ble.errors import DecodeError
from drivers.ble.glucose import (
    encode_glucose_measurement,
    encode_glucose_measurement_context,
)
from drivers.ble.glucose_session import GlucoseRecord
from drivers.ble.pulse_oximeter import (
    PlxSpotCheckMeasurement,
    encode_plx_spot_check_measurement,
)
from drivers.ble.thermometer import (
    TemperatureMeasurement,
    TemperatureUnit,
    encode_temperature_measurement,
)
from drivers.ble.weight import WeightMeasurement, WeightUnit, encode_weight_measurement

_ATT_DEFAULT_MTU = 23  # the LE default ATT_MTU before any MTU exchange

# Blood Pressure Feature (BLS 3.3), uint16: bits 0-4 = body movement,
# cuff fit, irregular pulse, pulse rate range and measurement position detection.
_DEFAULT_FEATURES = 0x001F

# What a cheap device clock typically drifts by between battery changes: several minutes.
TYPICAL_DRIFT = timedelta(minutes=7)

MeasurementSource = Callable[[], Iterable[BloodPressureMeasurement]] | Iterable[BloodPressureMeasurement]


# -- GATT table -----------------------------------------------------------------


@dataclass(frozen=True)
class SimCharacteristic:
    """One characteristic of the simulated GATT table; handlers run on the peripheral side."""

    uuid: str
    properties: tuple[CharacteristicPropertyName, ...]
    read: Callable[[], bytes] | None = None
    write: Callable[[bytes, Link], None] | None = None  # may raise BleakGATTProtocolError


@dataclass(frozen=True)
class SimService:
    uuid: str
    characteristics: tuple[SimCharacteristic, ...]


class Link(Protocol):
    """What a peripheral's script can do on one connection."""

    def send(self, uuid: str, payload: bytes) -> None:
        """Notify/indicate ``payload`` on ``uuid``; lost if the central has not subscribed."""

    def disconnect(self) -> None:
        """Peripheral-initiated disconnect (bleak reports it via disconnected_callback)."""

    def run_soon(self, script: Coroutine[Any, Any, None]) -> None:
        """Run ``script`` for as long as the connection lasts (cancelled at disconnect)."""

    async def wait_subscribed(self, uuid: str) -> None:
        """Wait until the central enabled notifications/indications on ``uuid``."""


# -- Peripherals ----------------------------------------------------------------


@dataclass(kw_only=True)
class SimulatedPeripheral:
    """A device: GATT table + per-connection script + misbehaviour switches + observable state."""

    address: str = "SIM:00:00:00:00:01"
    name: str = "SIM"
    # Misbehaviour switches (meaning per device in each subclass's docstring).
    drop_mid_transfer: bool = False  # disconnect part-way through delivering data
    garbage: bytes | None = None  # sent instead of a valid measurement value
    requires_bonding: bool = False  # ATT 0x05 on every access until the link is bonded
    forgets_bond: bool = False  # drops its side of the bond at every disconnect
    has_current_time: bool = False  # exposes CTS 0x1805 / Current Time 0x2A2B
    clock_offset: timedelta | None = None  # device clock - real clock; None: TYPICAL_DRIFT with CTS, else 0
    # Observable state for tests.
    connections: int = field(default=0, init=False)
    bonded: bool = field(default=False, init=False)  # the peripheral's side of the bond
    # The kiosk's (BlueZ's) side: lives with the device because one simulated adapter serves it.
    central_bonded: bool = field(default=False, init=False)
    writes: list[tuple[str, bytes]] = field(default_factory=list, init=False)  # (uuid, value), all chars

    def __post_init__(self) -> None:
        if self.clock_offset is None:
            self.clock_offset = TYPICAL_DRIFT if self.has_current_time else timedelta(0)

    def clock(self) -> datetime:
        """The device's wall clock (naive, like the Date Time fields it sends)."""
        assert self.clock_offset is not None
        return datetime.now() + self.clock_offset

    def services(self) -> list[SimService]:
        table = self.gatt()
        if self.has_current_time:
            table.append(self._current_time_service())
        return table

    def gatt(self) -> list[SimService]:
        raise NotImplementedError

    async def run(self, link: Link) -> None:
        """What the device does on each connection; the default is to wait for the central."""

    def _current_time_service(self) -> SimService:
        # CTS 1.1 section 3.1: Current Time is read + notify, write optional (we support it).
        return SimService(
            uuids.CURRENT_TIME_SERVICE,
            (
                SimCharacteristic(
                    uuids.CURRENT_TIME,
                    ("read", "write", "notify"),
                    read=lambda: encode_current_time(self.clock()),
                    write=self._set_clock,
                ),
            ),
        )

    def _set_clock(self, data: bytes, _link: Link) -> None:
        try:
            written = decode_current_time(data).time
        except DecodeError:
            written = None
        if written is None:
            # What a real CTS server answers for a value it cannot use (CTS 1.1 section 3.1.2.1).
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.VALUE_NOT_ALLOWED)
        self.clock_offset = written - datetime.now()


def plausible_reading(now: datetime | None = None) -> list[BloodPressureMeasurement]:
    """One random but physiologically plausible reading, stamped ``now`` (default: local time)."""
    rng = random.Random()  # local instance: no shared global RNG state
    systolic = rng.randint(100, 145)
    diastolic = rng.randint(60, 95)
    return [
        BloodPressureMeasurement(
            unit=BloodPressureUnit.MMHG,
            systolic=float(systolic),
            diastolic=float(diastolic),
            mean_arterial_pressure=float(round((systolic + 2 * diastolic) / 3)),
            timestamp=(now or datetime.now()).replace(microsecond=0),  # cuff clock: naive local
            pulse_rate=float(rng.randint(55, 95)),
            user_id=None,
            status=(),
        )
    ]


@dataclass(kw_only=True)
class SimulatedCuff(SimulatedPeripheral):
    """A blood-pressure cuff: on each connection, after ``start_delay`` s it notifies the
    inflation on 0x2A36 (cuff pressure rising in ``inflate_steps`` notifications every
    ``step_interval`` s), then indicates each measurement from ``measurements`` on 0x2A35,
    then disconnects after ``disconnect_after`` s.

    ``measurements`` is either an iterable (replayed on every connection), a
    zero-argument callable returning one (called per connection), or None: one
    plausible reading stamped with the cuff's own :meth:`clock`.
    ``drop_mid_measurement`` / ``drop_mid_transfer``: drop the link after inflation.
    """

    address: str = "SIM:CU:FF:00:00:01"
    name: str = "SIM-BP"
    measurements: MeasurementSource | None = None
    start_delay: float = 0.05
    inflate_steps: int = 5
    step_interval: float = 0.05
    disconnect_after: float = 0.1
    features: int = _DEFAULT_FEATURES
    has_intermediate_cuff_pressure: bool = True
    drop_mid_measurement: bool = False  # the cuff's historic name for drop_mid_transfer
    dialect: BloodPressureDialect = SIG_COMPLIANT  # encode as a non-compliant cuff would

    def payloads(self) -> list[bytes]:
        """The 0x2A35 values to indicate on one connection."""
        if self.garbage is not None:
            return [self.garbage]
        if self.measurements is None:
            source: Iterable[BloodPressureMeasurement] = plausible_reading(self.clock())
        elif callable(self.measurements):
            source = self.measurements()
        else:
            source = self.measurements
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

    def gatt(self) -> list[SimService]:
        # BLS 3.1-3.3: measurement indicate, intermediate cuff pressure notify (optional), feature read.
        chars = [SimCharacteristic(uuids.BLOOD_PRESSURE_MEASUREMENT, ("indicate",))]
        if self.has_intermediate_cuff_pressure:
            chars.append(SimCharacteristic(uuids.INTERMEDIATE_CUFF_PRESSURE, ("notify",)))
        chars.append(
            SimCharacteristic(
                uuids.BLOOD_PRESSURE_FEATURE, ("read",), read=lambda: self.features.to_bytes(2, "little")
            )
        )
        return [SimService(uuids.BLOOD_PRESSURE_SERVICE, tuple(chars))]

    async def run(self, link: Link) -> None:
        await asyncio.sleep(self.start_delay)
        for pressure in self.cuff_pressures():
            if self.has_intermediate_cuff_pressure:
                link.send(uuids.INTERMEDIATE_CUFF_PRESSURE, pressure)
            await asyncio.sleep(self.step_interval)
        if not (self.drop_mid_measurement or self.drop_mid_transfer):
            for payload in self.payloads():
                link.send(uuids.BLOOD_PRESSURE_MEASUREMENT, payload)
            await asyncio.sleep(self.disconnect_after)
        link.disconnect()


@dataclass(kw_only=True)
class SimulatedIndicatingDevice(SimulatedPeripheral):
    """A device that connects to deliver readings: once the central subscribes to
    ``MEASUREMENT``, it indicates each reading every ``step_interval`` s, then disconnects.

    ``readings``: a sequence (replayed on every connection), a callable returning one
    (per connection), or None: one plausible reading stamped with the device :meth:`clock`.
    ``drop_mid_transfer``: the link drops after subscription, before the first reading.
    ``garbage``: indicated instead of the readings.
    """

    SERVICE: ClassVar[str]
    MEASUREMENT: ClassVar[str]

    readings: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    step_interval: float = 0.02
    disconnect_after: float = 0.05

    def encode(self, reading: Any) -> bytes:
        raise NotImplementedError

    def plausible(self, now: datetime) -> Any:
        raise NotImplementedError

    def payloads(self) -> list[bytes]:
        if self.garbage is not None:
            return [self.garbage]
        if self.readings is None:
            source: Sequence[Any] = [self.plausible(self.clock().replace(microsecond=0))]
        elif callable(self.readings):
            source = self.readings()
        else:
            source = self.readings
        return [self.encode(r) for r in source]

    def gatt(self) -> list[SimService]:
        # HTS 3.1 / WSS 3.1 / PLXS 3.1: the measurement is indicated (confirmed) to the collector.
        return [SimService(self.SERVICE, (SimCharacteristic(self.MEASUREMENT, ("indicate",)),))]

    async def run(self, link: Link) -> None:
        # Real devices hold stored readings until the collector configures the CCCD.
        await link.wait_subscribed(self.MEASUREMENT)
        if not self.drop_mid_transfer:
            for payload in self.payloads():
                link.send(self.MEASUREMENT, payload)
                await asyncio.sleep(self.step_interval)
            await asyncio.sleep(self.disconnect_after)
        link.disconnect()


@dataclass(kw_only=True)
class SimulatedThermometer(SimulatedIndicatingDevice):
    """Health Thermometer Service 0x1809, Temperature Measurement 0x2A1C indicate (HTS 3.1)."""

    SERVICE: ClassVar[str] = uuids.HEALTH_THERMOMETER_SERVICE
    MEASUREMENT: ClassVar[str] = uuids.TEMPERATURE_MEASUREMENT
    address: str = "SIM:TH:ER:00:00:01"
    name: str = "SIM-THERMO"

    def encode(self, reading: TemperatureMeasurement) -> bytes:
        return encode_temperature_measurement(reading)

    def plausible(self, now: datetime) -> TemperatureMeasurement:
        return TemperatureMeasurement(temperature=36.8, unit=TemperatureUnit.CELSIUS, timestamp=now)


@dataclass(kw_only=True)
class SimulatedScale(SimulatedIndicatingDevice):
    """Weight Scale Service 0x181D, Weight Measurement 0x2A9D indicate (WSS 3.1)."""

    SERVICE: ClassVar[str] = uuids.WEIGHT_SCALE_SERVICE
    MEASUREMENT: ClassVar[str] = uuids.WEIGHT_MEASUREMENT
    address: str = "SIM:SC:AL:00:00:01"
    name: str = "SIM-SCALE"

    def encode(self, reading: WeightMeasurement) -> bytes:
        return encode_weight_measurement(reading)

    def plausible(self, now: datetime) -> WeightMeasurement:
        return WeightMeasurement(weight=72.5, unit=WeightUnit.KG, timestamp=now)


@dataclass(kw_only=True)
class SimulatedPulseOximeter(SimulatedIndicatingDevice):
    """Pulse Oximeter Service 0x1822, PLX Spot-check Measurement 0x2A5E indicate (PLXS 3.1)."""

    SERVICE: ClassVar[str] = uuids.PULSE_OXIMETER_SERVICE
    MEASUREMENT: ClassVar[str] = uuids.PLX_SPOT_CHECK_MEASUREMENT
    address: str = "SIM:OX:IM:00:00:01"
    name: str = "SIM-PLX"

    def encode(self, reading: PlxSpotCheckMeasurement) -> bytes:
        return encode_plx_spot_check_measurement(reading)

    def plausible(self, now: datetime) -> PlxSpotCheckMeasurement:
        return PlxSpotCheckMeasurement(spo2=97.0, pulse_rate=68.0, timestamp=now)


@dataclass(kw_only=True)
class SimulatedGlucoseMeter(SimulatedPeripheral):
    """Glucose Service 0x1808 (GLS 1.0.1): stored ``records`` reported over RACP 0x2A52.

    Per GLS 3.4 / GLP: a RACP write is acknowledged at once; the meter then notifies
    each matching record on 0x2A18 (and 0x2A34 when it has context) and finally
    indicates the RACP response. Records are kept (replayed) unless deleted by RACP.
    ``drop_mid_transfer``: the link drops after half the matching records (at least one).
    ``garbage``: sent instead of the first matching record's 0x2A18 value.
    """

    address: str = "SIM:GL:UC:00:00:01"
    name: str = "SIM-GLUCOSE"
    records: list[GlucoseRecord] = field(default_factory=list)
    features: int = 0x0000  # Glucose Feature (GLS 3.3), uint16: no optional features claimed
    record_interval: float = 0.01
    in_progress: bool = field(default=False, init=False)

    def gatt(self) -> list[SimService]:
        return [
            SimService(
                uuids.GLUCOSE_SERVICE,
                (
                    SimCharacteristic(uuids.GLUCOSE_MEASUREMENT, ("notify",)),  # GLS 3.1
                    SimCharacteristic(uuids.GLUCOSE_MEASUREMENT_CONTEXT, ("notify",)),  # GLS 3.2
                    SimCharacteristic(
                        uuids.GLUCOSE_FEATURE, ("read",), read=lambda: self.features.to_bytes(2, "little")
                    ),  # GLS 3.3
                    SimCharacteristic(
                        uuids.RECORD_ACCESS_CONTROL_POINT, ("write", "indicate"), write=self._on_racp
                    ),  # GLS 3.4
                ),
            )
        ]

    def matching(self, request: racp.RacpRequest) -> list[GlucoseRecord]:
        """Stored records selected by ``request``'s operator (GSS 3.178.2), oldest first."""
        stored = sorted(self.records, key=lambda r: r.measurement.sequence_number)
        op, operand = request.operator, request.operand
        if op is racp.RacpOperator.ALL_RECORDS:
            return stored
        if op is racp.RacpOperator.FIRST_RECORD:
            return stored[:1]
        if op is racp.RacpOperator.LAST_RECORD:
            return stored[-1:]
        low, high = {
            racp.RacpOperator.LESS_THAN_OR_EQUAL_TO: lambda: (0, operand[0]),
            racp.RacpOperator.GREATER_THAN_OR_EQUAL_TO: lambda: (operand[0], 0xFFFF),
            racp.RacpOperator.WITHIN_RANGE_OF: lambda: (operand[0], operand[1]),
        }[op]()
        return [r for r in stored if low <= r.measurement.sequence_number <= high]

    def _on_racp(self, data: bytes, link: Link) -> None:
        # GSS 3.178 / GLS 3.4: ATT errors for the write itself, response codes for the procedure.
        if self.in_progress and data[:1] != bytes([racp.RacpOpCode.ABORT_OPERATION]):
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS)
        try:
            request = racp.decode_racp_request(data)
        except DecodeError:
            # Answer as GSS 3.178.4 says for a request we cannot parse; echo the raw op code.
            link.send(uuids.RECORD_ACCESS_CONTROL_POINT, bytes([0x06, 0x00, data[0] if data else 0, 0x03]))
            return
        selected = self.matching(request) if request.operator is not racp.RacpOperator.NULL else []
        op = request.op_code
        if op is racp.RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
            self._respond(link, racp.NumberOfRecords(len(selected)))
        elif op is racp.RacpOpCode.ABORT_OPERATION:
            self.in_progress = False
            self._respond(link, racp.ResponseCode(op, racp.ResponseCodeValue.SUCCESS))
        elif not selected:
            self._respond(link, racp.ResponseCode(op, racp.ResponseCodeValue.NO_RECORDS_FOUND))
        elif op is racp.RacpOpCode.DELETE_STORED_RECORDS:
            self.records = [r for r in self.records if r not in selected]
            self._respond(link, racp.ResponseCode(op, racp.ResponseCodeValue.SUCCESS))
        else:
            self.in_progress = True
            link.run_soon(self._report(link, selected))

    async def _report(self, link: Link, selected: list[GlucoseRecord]) -> None:
        try:
            cut = max(1, len(selected) // 2) if self.drop_mid_transfer else len(selected)
            for index, record in enumerate(selected[:cut]):
                has_context = record.context is not None
                measurement = dataclasses.replace(record.measurement, context_information_follows=has_context)
                payload = encode_glucose_measurement(measurement)
                if index == 0 and self.garbage is not None:
                    payload = self.garbage
                link.send(uuids.GLUCOSE_MEASUREMENT, payload)
                if record.context is not None:
                    link.send(uuids.GLUCOSE_MEASUREMENT_CONTEXT, encode_glucose_measurement_context(record.context))
                await asyncio.sleep(self.record_interval)
            if self.drop_mid_transfer:
                link.disconnect()
                return
            code = racp.ResponseCode(racp.RacpOpCode.REPORT_STORED_RECORDS, racp.ResponseCodeValue.SUCCESS)
            self._respond(link, code)
        finally:
            self.in_progress = False

    @staticmethod
    def _respond(link: Link, response: racp.RacpResponse) -> None:
        link.send(uuids.RECORD_ACCESS_CONTROL_POINT, racp.encode_racp_response(response))


# -- The bleak backend ----------------------------------------------------------


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
        return _ATT_DEFAULT_MTU

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
    """A bleak backend class bound to ``peripheral`` (a fresh subclass; no global registry)."""
    return type(
        f"SimulatedBleakClient_{peripheral.name}",
        (SimulatedBleakClient,),
        {"peripheral": peripheral},
    )
