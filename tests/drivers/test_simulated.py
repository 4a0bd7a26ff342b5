"""The simulated peripherals' GATT tables, clocks and state, through the real bleak.BleakClient."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError

from drivers.ble import uuids
from drivers.ble.clock import decode_current_time, encode_current_time
from drivers.ble.cuff_session import BloodPressureCuffSession
from drivers.ble.simulated import (
    TYPICAL_DRIFT,
    SimulatedCuff,
    SimulatedGlucoseMeter,
    simulated_backend,
)

KIOSK_TIME = datetime(2031, 5, 5, 10, 0, 0)


def drifting_cuff() -> SimulatedCuff:
    # measurements=None: one live reading stamped with the cuff's own clock.
    return SimulatedCuff(has_current_time=True, inflate_steps=1, step_interval=0.01, disconnect_after=0.02)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_cuff_with_current_time_drifts_by_default() -> None:
    cuff = drifting_cuff()
    assert cuff.clock_offset == TYPICAL_DRIFT
    cuff.start_delay = 30.0
    async with BleakClient(cuff.address, backend=simulated_backend(cuff)) as client:
        char = client.services.get_characteristic(uuids.CURRENT_TIME)
        assert char is not None and {"read", "write"} <= set(char.properties)
        shown = decode_current_time(bytes(await client.read_gatt_char(uuids.CURRENT_TIME))).time
    assert shown is not None
    assert abs(shown - (datetime.now() + TYPICAL_DRIFT)) < timedelta(seconds=2)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_session_writes_kiosk_time_and_measurement_follows_it() -> None:
    cuff = drifting_cuff()
    session = BloodPressureCuffSession(cuff.address, backend=simulated_backend(cuff), idle_timeout=1.0, now=lambda: KIOSK_TIME)

    [reading] = await session.collect()

    assert cuff.writes == [(uuids.CURRENT_TIME, encode_current_time(KIOSK_TIME))]
    assert abs(cuff.clock() - KIOSK_TIME) < timedelta(seconds=2)
    assert reading.timestamp is not None
    assert KIOSK_TIME - timedelta(seconds=1) <= reading.timestamp <= KIOSK_TIME + timedelta(seconds=2)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_failed_clock_write_is_logged_and_the_session_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    cuff = drifting_cuff()
    # Year 1000 cannot be a GSS Date Time: the write fails before reaching the cuff.
    session = BloodPressureCuffSession(
        cuff.address, backend=simulated_backend(cuff), idle_timeout=1.0, now=lambda: datetime(1000, 1, 1)
    )
    with caplog.at_level(logging.WARNING):
        [reading] = await session.collect()
    assert "setting the clock" in caplog.text
    assert cuff.writes == []
    assert reading.timestamp is not None
    assert reading.timestamp > datetime.now() + TYPICAL_DRIFT - timedelta(seconds=5)  # still drifted


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_cuff_without_current_time_is_not_written() -> None:
    cuff = SimulatedCuff(inflate_steps=1, step_interval=0.01, disconnect_after=0.02)
    session = BloodPressureCuffSession(cuff.address, backend=simulated_backend(cuff), now=lambda: KIOSK_TIME)
    [reading] = await session.collect()
    assert cuff.writes == [] and cuff.clock_offset == timedelta(0)
    assert reading.timestamp is not None and reading.timestamp.year == datetime.now().year


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_unusable_current_time_write_is_rejected_like_a_cts_server() -> None:
    meter = SimulatedGlucoseMeter(has_current_time=True)
    async with BleakClient(meter.address, backend=simulated_backend(meter)) as client:
        with pytest.raises(BleakGATTProtocolError):
            await client.write_gatt_char(uuids.CURRENT_TIME, bytes(10), response=True)  # date "not known"
        feature = await client.read_gatt_char(uuids.GLUCOSE_FEATURE)
        assert int.from_bytes(feature, "little") == meter.features
    assert meter.connections == 1
    assert meter.writes == [(uuids.CURRENT_TIME, bytes(10))]
