"""BloodPressureCuffSession through the real bleak.BleakClient over the simulated backend."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from drivers.ble import uuids
from drivers.ble.blood_pressure import (
    BloodPressureMeasurement,
    BloodPressureUnit,
    IntermediateCuffPressure,
    MeasurementStatus,
)
from drivers.ble.connect import CONNECT_ATTEMPTS
from drivers.ble.cuff_session import BloodPressureCuffSession
from drivers.ble.errors import (
    DeviceDisconnectedError,
    DeviceNotFoundError,
    MeasurementTimeoutError,
)
from drivers.ble.simulated import SimulatedCuff, simulated_backend

READING = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG,
    systolic=128.0,
    diastolic=84.0,
    mean_arterial_pressure=98.7,
    timestamp=datetime(2025, 6, 1, 8, 15, 0),
    pulse_rate=66.0,
    user_id=1,
    status=(MeasurementStatus.BODY_MOVEMENT,),
)


def session_for(cuff: SimulatedCuff, idle_timeout: float = 1.0) -> BloodPressureCuffSession:
    return BloodPressureCuffSession(cuff.address, backend=simulated_backend(cuff), idle_timeout=idle_timeout)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_normal_measurement() -> None:
    cuff = SimulatedCuff(measurements=[READING], inflate_steps=4)
    pressures: list[IntermediateCuffPressure] = []

    result = await session_for(cuff).collect(pressures.append)

    assert result == [READING]
    assert len(pressures) == 4
    rising = [p.current_cuff_pressure or 0.0 for p in pressures]
    assert rising == sorted(rising) and 0.0 not in rising  # inflating, every value a number
    # Diastolic and MAP are unused in 0x2A36 (NaN on the air, GSS 3.126): not part of the value.
    assert all(p.unit is BloodPressureUnit.MMHG and p.special_values == {} for p in pressures)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_default_cuff_sends_one_plausible_reading() -> None:
    [reading] = await session_for(SimulatedCuff()).collect()
    assert reading.systolic is not None and reading.diastolic is not None
    assert reading.systolic > reading.diastolic
    assert reading.timestamp is not None and reading.pulse_rate is not None


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_garbage_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    cuff = SimulatedCuff(garbage=b"\x02\x78\x00")
    with caplog.at_level(logging.WARNING, logger="drivers.ble.cuff_session"):
        result = await session_for(cuff).collect()
    assert result == []
    [record] = caplog.records
    assert "2a35: field 'diastolic' missing" in record.getMessage()
    assert "027800" in record.getMessage()


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_drop_mid_measurement() -> None:
    cuff = SimulatedCuff(drop_mid_measurement=True)
    with pytest.raises(DeviceDisconnectedError):
        await session_for(cuff).collect()


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_cuff_without_intermediate_pressure() -> None:
    cuff = SimulatedCuff(measurements=[READING], has_intermediate_cuff_pressure=False)
    seen: list[IntermediateCuffPressure] = []
    assert await session_for(cuff).collect(seen.append) == [READING]
    assert seen == []


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_idle_timeout_after_last_measurement_disconnects_cleanly() -> None:
    cuff = SimulatedCuff(measurements=[READING], disconnect_after=30.0)
    assert await session_for(cuff, idle_timeout=0.2).collect() == [READING]


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_silent_cuff_times_out() -> None:
    cuff = SimulatedCuff(start_delay=30.0)
    with pytest.raises(MeasurementTimeoutError):
        await session_for(cuff, idle_timeout=0.2).collect()


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_wrong_address_is_device_not_found() -> None:
    session = BloodPressureCuffSession("AA:BB:CC:DD:EE:FF", backend=simulated_backend(SimulatedCuff()))
    # Nothing advertises at that address: found missing before any connection attempt, the
    # message saying what a technician should check.
    with pytest.raises(DeviceNotFoundError, match="AA:BB:CC:DD:EE:FF is not advertising"):
        await session.collect()


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_backend_plain_bleak_surface() -> None:
    cuff = SimulatedCuff(start_delay=30.0)
    client = BleakClient(cuff.address, backend=simulated_backend(cuff))
    async with client:
        assert client.is_connected
        assert client.name == "SIM-BP"
        assert client.mtu_size == 23
        assert client.services.get_service(uuids.BLOOD_PRESSURE_SERVICE) is not None
        feature = await client.read_gatt_char(uuids.BLOOD_PRESSURE_FEATURE)
        assert int.from_bytes(feature, "little") == cuff.features
        with pytest.raises(NotImplementedError):
            await client.write_gatt_char(uuids.BLOOD_PRESSURE_FEATURE, b"\x00", response=True)
    assert not client.is_connected


@pytest.mark.asyncio
async def test_a_refused_connection_is_retried_then_reported_with_its_cause() -> None:
    cuff = SimulatedCuff()
    backend = simulated_backend(cuff)
    attempts: list[int] = []

    class Refusing(backend):  # type: ignore[valid-type,misc]
        async def connect(self, pair: bool, **kwargs: object) -> None:
            attempts.append(1)
            raise BleakError("Operation not permitted")  # not one of the library's transient errors

    session = BloodPressureCuffSession(cuff.address, backend=Refusing)
    with pytest.raises(DeviceNotFoundError) as info:
        await session.collect()
    assert isinstance(info.value.__cause__, BleakError)
    # bleak-retry-connector's retries with backoff (transient errors such as an aborted
    # connection get more attempts; this one is not transient).
    assert len(attempts) == CONNECT_ATTEMPTS
