"""A simulated blood-pressure cuff (BLS 1.1)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drivers.ble import uuids
from drivers.ble.blood_pressure import (
    SIG_COMPLIANT,
    BloodPressureDialect,
    BloodPressureMeasurement,
    BloodPressureUnit,
    encode_blood_pressure_measurement,
)
from drivers.ble.simulated.peripheral import (
    DEFAULT_BP_FEATURES,
    Link,
    MeasurementSource,
    SimCharacteristic,
    SimService,
    SimulatedPeripheral,
)


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
    features: int = DEFAULT_BP_FEATURES
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
class ButtonCuff(SimulatedCuff):
    """A cuff that is off until its start button is pressed, measures once, and is off again:
    what a real one does, and what the kiosk screen tells the resident to do. The button is
    :meth:`press_start` in the same process, or ``button``, a file another process creates
    (the demo's Enter key), used up by the connection it starts."""

    advertising: bool = False
    button: Path | None = None

    def press_start(self) -> None:
        self.advertising = True

    def is_advertising(self) -> bool:
        return self.advertising or (self.button is not None and self.button.exists())

    async def run(self, link: Link) -> None:
        self.advertising = False  # connected: it stops advertising, and is off after this
        if self.button is not None:
            self.button.unlink(missing_ok=True)
        await super().run(link)


def cuff_at_a_persons_pace(address: str, button: Path, battery_percent: int | None = None) -> ButtonCuff:
    """The demo's cuff: off until ``button`` appears, then inflating half a second after it
    connects, the pressure climbing for about 12 s (a real cuff takes 30-40 s in all)."""
    return ButtonCuff(address=address, battery_percent=battery_percent, button=button,
                      start_delay=0.5, inflate_steps=30, step_interval=0.4)
