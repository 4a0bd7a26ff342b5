"""Bonding through the real bleak.BleakClient over the simulated backend (no mocks)."""

from __future__ import annotations

import pickle
from datetime import datetime

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from drivers.ble import uuids
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.bonding import DeviceNotBondedError, is_security_failure
from drivers.ble.cuff_session import BloodPressureCuffSession
from drivers.ble.errors import DeviceUnavailableError
from drivers.ble.simulated import SimulatedCuff, simulated_backend

READING = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG,
    systolic=121.0,
    diastolic=79.0,
    mean_arterial_pressure=93.0,
    timestamp=datetime(2025, 6, 1, 9, 0, 0),
)


def fast_cuff(*, requires_bonding: bool = False, forgets_bond: bool = False) -> SimulatedCuff:
    return SimulatedCuff(
        measurements=[READING],
        inflate_steps=1,
        step_interval=0.01,
        disconnect_after=0.02,
        requires_bonding=requires_bonding,
        forgets_bond=forgets_bond,
    )


def session(cuff: SimulatedCuff, *, needs_bonding: bool = False, forgets_bond: bool = False) -> BloodPressureCuffSession:
    return BloodPressureCuffSession(
        cuff.address,
        backend=simulated_backend(cuff),
        idle_timeout=1.0,
        needs_bonding=needs_bonding,
        forgets_bond=forgets_bond,
    )


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_refused_without_pairing() -> None:
    cuff = fast_cuff(requires_bonding=True)
    with pytest.raises(DeviceNotBondedError) as info:
        await session(cuff).collect()
    assert isinstance(info.value, DeviceUnavailableError)
    assert "Insufficient Authentication" in str(info.value)
    assert "bluetoothctl" in str(info.value)  # tells the technician what to do
    assert not cuff.bonded


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_plain_bleak_client_sees_insufficient_authentication_until_pair() -> None:
    cuff = fast_cuff(requires_bonding=True)
    cuff.start_delay = 30.0
    async with BleakClient(cuff.address, backend=simulated_backend(cuff)) as client:
        with pytest.raises(BleakError, match="Insufficient Authentication") as info:
            await client.read_gatt_char(uuids.BLOOD_PRESSURE_FEATURE)
        assert is_security_failure(info.value)
        await client.pair()
        assert cuff.bonded
        assert await client.read_gatt_char(uuids.BLOOD_PRESSURE_FEATURE)
    # The bond outlives the connection: the next link is encrypted without pairing.
    async with BleakClient(cuff.address, backend=simulated_backend(cuff)) as client:
        assert await client.read_gatt_char(uuids.BLOOD_PRESSURE_FEATURE)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_needs_bonding_pairs_and_measures() -> None:
    cuff = fast_cuff(requires_bonding=True)
    assert await session(cuff, needs_bonding=True).collect() == [READING]
    assert cuff.bonded and cuff.central_bonded
    # Already bonded: pairing again is a no-op and the session still works.
    assert await session(cuff, needs_bonding=True).collect() == [READING]


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_forgets_bond_fails_with_stale_bond_and_recovers_with_quirk() -> None:
    cuff = fast_cuff(requires_bonding=True, forgets_bond=True)
    assert await session(cuff, needs_bonding=True).collect() == [READING]
    assert not cuff.bonded and cuff.central_bonded  # the cuff forgot at disconnect; the kiosk did not

    # pair() is a no-op while the kiosk believes it is bonded (as on BlueZ): refused.
    with pytest.raises(DeviceNotBondedError):
        await session(cuff, needs_bonding=True).collect()

    # With the forgets_bond quirk the session unpairs first, then pairs afresh - every time.
    recovering = session(cuff, forgets_bond=True)
    assert await recovering.collect() == [READING]
    assert await recovering.collect() == [READING]
    assert cuff.connections == 4


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_forgets_bond_on_a_never_bonded_cuff_ignores_the_unpair_failure() -> None:
    cuff = fast_cuff(requires_bonding=True, forgets_bond=True)
    assert await session(cuff, forgets_bond=True).collect() == [READING]


def test_not_bonded_error_pickles() -> None:
    error = DeviceNotBondedError("AA:BB:CC:DD:EE:FF", "subscribing: Insufficient Authentication")
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
