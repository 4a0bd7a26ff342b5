"""Battery Level (0x2A19): the codec, and sessions reading it from a simulated Battery Service."""

from __future__ import annotations

import logging

import pytest

from drivers.ble import uuids
from drivers.ble.battery import decode_battery_level
from drivers.ble.errors import DecodeError
from drivers.ble.measurement_session import IndicationSession
from drivers.ble.simulated import SimulatedScale, simulated_backend
from drivers.ble.weight import decode_weight_measurement


@pytest.mark.parametrize(("data", "percent"), [(b"\x00", 0), (b"\x39", 57), (b"\x64", 100)])
def test_spec_values(data: bytes, percent: int) -> None:
    assert decode_battery_level(data) == percent


@pytest.mark.parametrize(("data", "reason"), [(b"", "1 byte"), (b"\x64\x00", "1 byte"), (b"\x65", "reserved")])
def test_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_battery_level(data)


def session(scale: SimulatedScale) -> IndicationSession[object]:
    return IndicationSession(
        scale.address, uuids.WEIGHT_MEASUREMENT, decode_weight_measurement, backend=simulated_backend(scale),
        idle_timeout=0.5,
    )


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_a_session_reads_the_battery_and_goes_on_without_one(caplog: pytest.LogCaptureFixture) -> None:
    with_battery = session(SimulatedScale(battery_percent=42))
    assert with_battery.battery_percent is None
    assert len(await with_battery.collect()) == 1 and with_battery.battery_percent == 42
    without = session(SimulatedScale())
    await without.collect()
    assert without.battery_percent is None
    with caplog.at_level(logging.WARNING):
        broken = session(SimulatedScale(battery_percent=150))
        assert len(await broken.collect()) == 1  # the reading still arrives
    assert broken.battery_percent is None and "reading the battery" in caplog.text
