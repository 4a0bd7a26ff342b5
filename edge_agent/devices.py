"""One reader per configured device: its profile decides the session, its quirks the options.

A reader's `read()` runs one session (connect, collect, disconnect) and returns what the device
sent. The agent calls it again and again; a device that is off or out of range raises a
DeviceUnavailableError, which is normal for a cuff that is only on while someone measures.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from bleak.backends.client import BaseBleakClient

from contract.payloads import DeviceIdentity
from drivers.ble import pulse_oximeter, thermometer, uuids, weight
from drivers.ble.blood_pressure import BloodPressureDialect, BloodPressureMeasurement
from drivers.ble.cuff_session import BloodPressureCuffSession
from drivers.ble.glucose import GlucoseConcentrationUnit, GlucoseMeasurement, GlucoseType, SampleLocation
from drivers.ble.glucose_session import GlucoseMeterSession, GlucoseRecord
from drivers.ble.measurement_session import DeviceSession, IndicationSession
from drivers.ble.omron.session import OmronMemorySession
from drivers.ble.simulated import (
    SimulatedCuff,
    SimulatedGlucoseMeter,
    SimulatedOmronCuff,
    SimulatedPeripheral,
    SimulatedPulseOximeter,
    SimulatedScale,
    SimulatedThermometer,
    cuff_at_a_persons_pace,
    plausible_reading,
    simulated_backend,
)
from edge_agent.readings import DeviceReading
from edge_agent.settings import DeviceSettings
from firmware_configs.profiles import BleDeviceProfile, Quirk

log = logging.getLogger(__name__)

# How long an Omron cuff's link waits for the agent to have its records in the outbox; past it
# the link closes without marking them read, and they come again next time.
OMRON_SAVE_WAIT_S = 10.0

class DeviceReader(Protocol):
    device: DeviceIdentity

    async def read(self) -> Sequence[DeviceReading]: ...

    @property
    def battery_percent(self) -> int | None:
        """What the device's Battery Service said on the last connection (None: no service)."""

    @property
    def clock_offset_s(self) -> float | None:
        """The device's clock minus the kiosk's at the last connection, before it was set."""

    def saved(self) -> None:
        """Called once every reading of the last read() is in the outbox."""


@dataclass
class CursorStore:
    """Where a reader keeps how far it has read (a glucose meter's last sequence number)."""

    load: Callable[[str], int | None]
    store: Callable[[str, int], None]


CuffPressureListener = Callable[[DeviceIdentity, float | None], None]


class _SessionState:
    """A reader's view of what its session's device said about itself on the last connection."""

    session: DeviceSession

    @property
    def battery_percent(self) -> int | None:
        return self.session.battery_percent

    @property
    def clock_offset_s(self) -> float | None:
        return self.session.clock_offset_s


@dataclass
class CuffReader(_SessionState):
    """A blood-pressure cuff; while it inflates, its pressure goes to `on_cuff_pressure`
    (the kiosk screen shows it rising, from Intermediate Cuff Pressure 0x2A36)."""

    device: DeviceIdentity
    session: BloodPressureCuffSession
    on_cuff_pressure: CuffPressureListener | None = None

    async def read(self) -> Sequence[DeviceReading]:
        listener = self.on_cuff_pressure
        if listener is None:
            return await self.session.collect()
        return await self.session.collect(lambda pressure: listener(self.device, pressure.current_cuff_pressure))

    def saved(self) -> None:
        return None  # nothing to remember: replays are caught by the outbox's fingerprint


@dataclass
class SessionReader(_SessionState):
    device: DeviceIdentity
    session: IndicationSession[DeviceReading]

    async def read(self) -> Sequence[DeviceReading]:
        return await self.session.collect()

    def saved(self) -> None:
        return None  # nothing to remember: replays are caught by the outbox's fingerprint


@dataclass
class GlucoseReader(_SessionState):
    """Fetches only records newer than the last one saved, through the meter's RACP.

    The cursor moves after the records were handed on; if the agent dies in between, the
    same records come again and the outbox's replay fingerprint keeps them single.
    """

    device: DeviceIdentity
    session: GlucoseMeterSession
    cursor: CursorStore
    _pending_cursor: int | None = None

    async def read(self) -> Sequence[DeviceReading]:
        records = await self.session.fetch_since(self.cursor.load(self.device.address))
        if records:
            self._pending_cursor = max(r.measurement.sequence_number for r in records)
        return [r.measurement for r in records]

    def saved(self) -> None:
        """The agent calls this once every reading of the last read() is in the outbox."""
        if self._pending_cursor is not None:
            self.cursor.store(self.device.address, self._pending_cursor)
            self._pending_cursor = None


@dataclass
class OmronReader(_SessionState):
    """An Omron cuff that keeps its readings in memory (drivers/ble/omron/). The cuff may mark
    them read only once they are in the outbox, so the session keeps its link open after read()
    returned them, until the agent calls saved() (or OMRON_SAVE_WAIT_S passes)."""

    device: DeviceIdentity
    session: OmronMemorySession
    _saved: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    _closing: asyncio.Task[list[BloodPressureMeasurement]] | None = None

    async def read(self) -> Sequence[DeviceReading]:
        if self._closing is not None:
            await asyncio.wait([self._closing])  # the last link is closed before the next opens
        handed: asyncio.Future[Sequence[DeviceReading]] = asyncio.get_running_loop().create_future()
        saved = self._saved = asyncio.Event()

        async def save(readings: list[BloodPressureMeasurement]) -> None:
            handed.set_result(readings)
            async with asyncio.timeout(OMRON_SAVE_WAIT_S):
                await saved.wait()

        session = asyncio.create_task(self.session.collect(save))
        either: list[asyncio.Future[Any]] = [session, handed]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not handed.done():
            return await session  # nothing to hand over, or the session failed: its error
        self._closing = session
        session.add_done_callback(self._closed)
        return handed.result()

    def _closed(self, session: asyncio.Task[list[BloodPressureMeasurement]]) -> None:
        if not session.cancelled() and session.exception() is not None:
            # The records are saved; the cuff will offer them again and the outbox's replay
            # fingerprint keeps them single. Worth a warning, not a device failure.
            log.warning("%s: records saved but not marked read on the cuff: %s", self.device.address,
                        session.exception())

    def saved(self) -> None:
        self._saved.set()


# What the demo's simulated devices report from their Battery Service.
SIMULATED_BATTERY_PERCENT = 87


def default_simulator(
    profile: BleDeviceProfile, address: str, start_button: Path | None = None, unlock_key: bytes | None = None
) -> SimulatedPeripheral:
    """What `simulated: true` plugs in for a device of this kind (demo, tests, trying a config).
    An Omron cuff that unlocks with a key holds `unlock_key`: paired with this kiosk."""
    battery = SIMULATED_BATTERY_PERCENT
    if profile.omron_memory is not None:
        omron = SimulatedOmronCuff(memory_map=profile.omron_memory, address=address, name=profile.model.upper(),
                                   requires_bonding=Quirk.NEEDS_BONDING in profile.quirks, unlock_key=unlock_key)
        waiting = plausible_reading(datetime.now() - timedelta(days=1)) + plausible_reading()
        for reading in waiting:  # yesterday's and today's, waiting in its memory
            omron.measure(dataclasses.replace(reading, mean_arterial_pressure=None, user_id=1))
        return omron
    match profile.kind:
        case "blood_pressure" if start_button is not None:
            return cuff_at_a_persons_pace(address, start_button, battery)
        case "blood_pressure":
            return SimulatedCuff(address=address, battery_percent=battery)
        case "glucose":
            return SimulatedGlucoseMeter(address=address, records=_simulated_glucose_records(), battery_percent=battery)
        case "temperature":
            return SimulatedThermometer(address=address, battery_percent=battery)
        case "weight":
            return SimulatedScale(address=address, battery_percent=battery)
        case "spo2":
            return SimulatedPulseOximeter(address=address, battery_percent=battery)
    raise ValueError(f"no simulator for kind {profile.kind!r}")


def _simulated_glucose_records() -> list[GlucoseRecord]:
    rng = random.Random()
    start = datetime.now().replace(microsecond=0) - timedelta(days=3)
    return [
        GlucoseRecord(
            GlucoseMeasurement(
                sequence_number=n,
                base_time=start + timedelta(hours=12 * n),
                time_offset=0,
                glucose_concentration=round(rng.randint(45, 90) / 10_000, 4),  # mol/L: 4.5-9.0 mmol/L
                unit=GlucoseConcentrationUnit.MOL_PER_L,
                type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
                sample_location=SampleLocation.FINGER,
            )
        )
        for n in range(1, 6)
    ]


# Devices that indicate their readings on connection (HTS 3.1, WSS 3.1, PLXS 3.1).
_INDICATED: dict[str, tuple[str, Callable[[bytes], DeviceReading]]] = {
    "temperature": (uuids.TEMPERATURE_MEASUREMENT, thermometer.decode_temperature_measurement),
    "weight": (uuids.WEIGHT_MEASUREMENT, weight.decode_weight_measurement),
    "spo2": (uuids.PLX_SPOT_CHECK_MEASUREMENT, pulse_oximeter.decode_plx_spot_check_measurement),
}


def reader_for(
    settings: DeviceSettings,
    profile: BleDeviceProfile,
    *,
    backend: type[BaseBleakClient] | None,
    cursor: CursorStore,
    on_cuff_pressure: CuffPressureListener | None = None,
    kiosk_time: Callable[[], datetime | None] = datetime.now,
    unlock_key: bytes | None = None,
) -> DeviceReader:
    """The reader for one configured device; `backend` None means the platform's Bluetooth.
    `kiosk_time`: the local wall clock written to devices' clocks; None while it is untrusted.
    `unlock_key`: this kiosk's key for Omron cuffs that unlock with one (edge_agent/unlock_key.py)."""
    if backend is None and settings.simulated:
        backend = simulated_backend(default_simulator(profile, settings.address, settings.simulated_start_button,
                                                      unlock_key))
    device = DeviceIdentity(model=profile.model, address=settings.address)
    needs_bonding = Quirk.NEEDS_BONDING in profile.quirks
    forgets_bond = Quirk.FORGETS_BOND in profile.quirks
    if profile.omron_memory is not None:
        omron = OmronMemorySession(settings.address, profile.omron_memory, backend=backend, needs_bonding=needs_bonding,
                                   forgets_bond=forgets_bond, unlock_key=unlock_key, now=kiosk_time)
        return OmronReader(device, omron)
    if profile.kind == "blood_pressure":
        cuff = BloodPressureCuffSession(
            settings.address,
            backend=backend,
            idle_timeout=settings.idle_timeout_s,
            dialect=BloodPressureDialect(**profile.blood_pressure_dialect.model_dump()),
            needs_bonding=needs_bonding,
            forgets_bond=forgets_bond,
            now=kiosk_time,
        )
        return CuffReader(device, cuff, on_cuff_pressure)
    if profile.kind == "glucose":
        meter = GlucoseMeterSession(
            settings.address, backend=backend, needs_bonding=needs_bonding, forgets_bond=forgets_bond
        )
        return GlucoseReader(device, meter, cursor)
    if profile.kind in _INDICATED:
        characteristic, decode = _INDICATED[profile.kind]
        session: IndicationSession[DeviceReading] = IndicationSession(
            settings.address,
            characteristic,
            decode,
            backend=backend,
            idle_timeout=settings.idle_timeout_s,
            needs_bonding=needs_bonding,
            forgets_bond=forgets_bond,
            now=kiosk_time,
        )
        return SessionReader(device, session)
    raise ValueError(f"no reader for kind {profile.kind!r}")
