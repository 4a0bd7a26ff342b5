"""Simulated devices that indicate readings on connection: thermometer, scale, oximeter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from drivers.ble import uuids
from drivers.ble.pulse_oximeter import (
    PlxSpotCheckMeasurement,
    encode_plx_spot_check_measurement,
)
from drivers.ble.simulated.peripheral import (
    Link,
    SimCharacteristic,
    SimService,
    SimulatedPeripheral,
)
from drivers.ble.thermometer import (
    TemperatureMeasurement,
    TemperatureUnit,
    encode_temperature_measurement,
)
from drivers.ble.weight import WeightMeasurement, WeightUnit, encode_weight_measurement


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


