"""IndicationSession with the simulated thermometer, scale and oximeter (real bleak.BleakClient, no mocks)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from drivers.ble import uuids
from drivers.ble.bonding import DeviceNotBondedError
from drivers.ble.errors import DeviceDisconnectedError, MeasurementTimeoutError
from drivers.ble.measurement_session import IndicationSession
from drivers.ble.pulse_oximeter import (
    PlxSpotCheckMeasurement,
    decode_plx_spot_check_measurement,
)
from drivers.ble.simulated import (
    SimulatedIndicatingDevice,
    SimulatedPulseOximeter,
    SimulatedScale,
    SimulatedThermometer,
    simulated_backend,
)
from drivers.ble.thermometer import (
    TemperatureMeasurement,
    TemperatureUnit,
    decode_temperature_measurement,
)
from drivers.ble.weight import WeightMeasurement, WeightUnit, decode_weight_measurement

STAMP = datetime(2025, 6, 1, 8, 30, 0)
THERMO = [TemperatureMeasurement(temperature=36.9, unit=TemperatureUnit.CELSIUS, timestamp=STAMP)]
WEIGHTS = [WeightMeasurement(weight=70.0, unit=WeightUnit.KG, timestamp=STAMP), WeightMeasurement(weight=70.5, unit=WeightUnit.KG)]
PLX = [PlxSpotCheckMeasurement(spo2=98.0, pulse_rate=64.0, timestamp=STAMP)]

# (device class, characteristic, decoder, scripted readings)
DEVICES: list[tuple[type[SimulatedIndicatingDevice], str, Callable[[bytes], Any], list[Any]]] = [
    (SimulatedThermometer, uuids.TEMPERATURE_MEASUREMENT, decode_temperature_measurement, THERMO),
    (SimulatedScale, uuids.WEIGHT_MEASUREMENT, decode_weight_measurement, WEIGHTS),
    (SimulatedPulseOximeter, uuids.PLX_SPOT_CHECK_MEASUREMENT, decode_plx_spot_check_measurement, PLX),
]
IDS = ["thermometer", "scale", "oximeter"]


def session_for(device: SimulatedIndicatingDevice, uuid: str, decode: Callable[[bytes], Any], **kwargs: Any) -> IndicationSession[Any]:
    return IndicationSession(device.address, uuid, decode, backend=simulated_backend(device), idle_timeout=1.0, **kwargs)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
@pytest.mark.parametrize(("kind", "uuid", "decode", "readings"), DEVICES, ids=IDS)
async def test_collect_replays_stored_readings(kind: type[SimulatedIndicatingDevice], uuid: str, decode: Callable[[bytes], Any], readings: list[Any]) -> None:
    device = kind(readings=readings)
    session = session_for(device, uuid, decode)
    assert await session.collect() == readings
    assert await session.collect() == readings  # memory replayed on every connection
    assert device.connections == 2


@pytest.mark.asyncio
@pytest.mark.timeout(5)
@pytest.mark.parametrize(("kind", "uuid", "decode", "readings"), DEVICES, ids=IDS)
async def test_drop_mid_transfer_is_device_disconnected(kind: type[SimulatedIndicatingDevice], uuid: str, decode: Callable[[bytes], Any], readings: list[Any]) -> None:
    with pytest.raises(DeviceDisconnectedError):
        await session_for(kind(readings=readings, drop_mid_transfer=True), uuid, decode).collect()


@pytest.mark.asyncio
@pytest.mark.timeout(5)
@pytest.mark.parametrize(("kind", "uuid", "decode", "readings"), DEVICES, ids=IDS)
async def test_garbage_is_logged_and_skipped(kind: type[SimulatedIndicatingDevice], uuid: str, decode: Callable[[bytes], Any], readings: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    device = kind(readings=readings, garbage=b"\xff")
    with caplog.at_level(logging.WARNING, logger="drivers.ble.measurement_session"):
        assert await session_for(device, uuid, decode).collect() == []
    [warning] = caplog.records
    assert "skipping undecodable value" in warning.getMessage() and "(bytes: ff)" in warning.getMessage()


@pytest.mark.asyncio
@pytest.mark.timeout(5)
@pytest.mark.parametrize(("kind", "uuid", "decode", "readings"), DEVICES, ids=IDS)
async def test_bonding(kind: type[SimulatedIndicatingDevice], uuid: str, decode: Callable[[bytes], Any], readings: list[Any]) -> None:
    device = kind(readings=readings, requires_bonding=True, forgets_bond=True)
    with pytest.raises(DeviceNotBondedError):
        await session_for(device, uuid, decode).collect()
    recovering = session_for(device, uuid, decode, forgets_bond=True)
    assert await recovering.collect() == readings
    assert await recovering.collect() == readings


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_default_reading_is_stamped_by_the_kiosk_clock_after_the_write() -> None:
    kiosk = datetime(2031, 5, 5, 10, 0, 0)
    scale = SimulatedScale(has_current_time=True)
    [reading] = await session_for(scale, uuids.WEIGHT_MEASUREMENT, decode_weight_measurement, now=lambda: kiosk).collect()
    assert reading.timestamp is not None and abs((reading.timestamp - kiosk).total_seconds()) < 2


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_silent_device_times_out() -> None:
    thermometer = SimulatedThermometer(readings=[])  # connects, sends nothing, lingers
    thermometer.disconnect_after = 30.0
    session = IndicationSession(
        thermometer.address, uuids.TEMPERATURE_MEASUREMENT, decode_temperature_measurement,
        backend=simulated_backend(thermometer), idle_timeout=0.2,
    )
    with pytest.raises(MeasurementTimeoutError):
        await session.collect()


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_an_untrusted_kiosk_clock_is_not_written_into_the_device() -> None:
    """now() is None while the kiosk's clock is unsynchronised: the scale keeps its own time."""
    scale = SimulatedScale(has_current_time=True)
    [reading] = await session_for(scale, uuids.WEIGHT_MEASUREMENT, decode_weight_measurement, now=lambda: None).collect()
    kiosk = datetime(2031, 5, 5, 10, 0, 0)
    [written] = await session_for(scale, uuids.WEIGHT_MEASUREMENT, decode_weight_measurement, now=lambda: kiosk).collect()
    assert reading.timestamp is not None and abs((reading.timestamp - kiosk).total_seconds()) > 3600
    assert written.timestamp is not None and abs((written.timestamp - kiosk).total_seconds()) < 2


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_the_device_clock_is_compared_before_it_is_set(caplog: pytest.LogCaptureFixture) -> None:
    scale = SimulatedScale(has_current_time=True)  # runs TYPICAL_DRIFT (7 min) ahead
    session = session_for(scale, uuids.WEIGHT_MEASUREMENT, decode_weight_measurement, now=datetime.now)
    await session.collect()
    assert session.clock_offset_s is not None and abs(session.clock_offset_s - 420) < 5
    assert "s off the kiosk" in caplog.text  # about +420 s: warned
    await session.collect()  # set last time: now it agrees
    assert abs(session.clock_offset_s) < 5
    untrusted = session_for(SimulatedScale(has_current_time=True), uuids.WEIGHT_MEASUREMENT, decode_weight_measurement,
                            now=lambda: None)
    await untrusted.collect()
    assert untrusted.clock_offset_s is None  # no trusted clock to compare with
