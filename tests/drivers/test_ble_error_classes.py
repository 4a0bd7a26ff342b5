"""Each way a Bluetooth session fails keeps its own class and machine code, from the
classification bleak-retry-connector makes of BlueZ's error texts to ours (issue 17).

Pure mapping first, then the real path: bleak's BleakClient and bleak-retry-connector's
establish_connection over the simulated backend, the backend failing as BlueZ does."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import datetime

import bleak_retry_connector
import pytest
from bleak.exc import BleakError
from bleak_retry_connector import (
    BleakAbortedError,
    BleakConnectionError,
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
)

import drivers.ble
from contract.device_errors import DeviceErrorCode
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.bonding import DeviceBondLostError, DeviceNotBondedError
from drivers.ble.connect import connect_error
from drivers.ble.cuff_session import BloodPressureCuffSession
from drivers.ble.errors import (
    BleDriverError,
    ConnectAbortedError,
    ConnectFailedError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceUnavailableError,
    MeasurementTimeoutError,
    MissingServiceError,
    OutOfConnectionSlotsError,
)
from drivers.ble.glucose_session import RacpProcedureError
from drivers.ble.simulated import SimulatedCuff, simulated_backend

READING = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG, systolic=121.0, diastolic=79.0, mean_arterial_pressure=93.0,
    timestamp=datetime(2025, 6, 1, 9, 0, 0),
)


@pytest.mark.parametrize(
    ("raised", "ours", "code"),
    [
        (BleakNotFoundError("gone"), DeviceNotFoundError, DeviceErrorCode.BLE_NOT_FOUND),
        (TimeoutError(), DeviceNotFoundError, DeviceErrorCode.BLE_NOT_FOUND),
        (BleakOutOfConnectionSlotsError("no slot"), OutOfConnectionSlotsError, DeviceErrorCode.BLE_OUT_OF_SLOTS),
        (BleakAbortedError("aborted"), ConnectAbortedError, DeviceErrorCode.BLE_ABORTED),
        (BleakConnectionError("failed"), ConnectFailedError, DeviceErrorCode.BLE_CONNECT_FAILED),
        (OSError("adapter down"), ConnectFailedError, DeviceErrorCode.BLE_CONNECT_FAILED),
    ],
)
def test_each_connection_failure_keeps_its_class(raised: BaseException, ours: type, code: DeviceErrorCode) -> None:
    error = connect_error("AA:BB:CC:DD:EE:FF", raised)
    assert type(error) is ours
    assert error.code is code
    assert isinstance(error, DeviceNotFoundError)  # all of them: the device was not reached


def test_every_error_of_the_ble_drivers_has_its_own_code() -> None:
    for module in pkgutil.walk_packages(drivers.ble.__path__, "drivers.ble."):
        importlib.import_module(module.name)  # every subclass defined, wherever it is

    def subclasses(root: type) -> list[type]:
        return [root, *(c for sub in root.__subclasses__() for c in subclasses(sub))]

    classes = subclasses(BleDriverError)[1:]
    assert {DeviceBondLostError, OutOfConnectionSlotsError, RacpProcedureError} <= set(classes)
    codes = [c.code for c in classes]  # an AttributeError names a class without one
    assert len(set(codes)) == len(codes), sorted(codes)
    assert set(codes) <= set(DeviceErrorCode)


def cuff_session(cuff: SimulatedCuff, backend: type | None = None, **kwargs: bool) -> BloodPressureCuffSession:
    return BloodPressureCuffSession(cuff.address, backend=backend or simulated_backend(cuff), idle_timeout=1.0,
                                    **kwargs)


def failing_backend(cuff: SimulatedCuff, text: str) -> type:
    base = simulated_backend(cuff)

    class Failing(base):  # type: ignore[valid-type,misc]
        async def connect(self, pair: bool, **kwargs: object) -> None:
            raise BleakError(text)

    return Failing


@pytest.mark.asyncio
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("bluez_says", "ours"),
    [
        # The texts bleak-retry-connector matches (OUT_OF_SLOTS_ERRORS, ABORT_ERRORS,
        # DEVICE_MISSING_ERRORS in bleak_retry_connector/__init__.py).
        ("org.bluez.Error.Failed: No available connection slot", OutOfConnectionSlotsError),
        ("org.bluez.Error.Failed: le-connection-abort-by-local", ConnectAbortedError),
        ("org.freedesktop.DBus.Error.UnknownObject: Method Connect", DeviceNotFoundError),
        ("org.bluez.Error.NotPermitted", ConnectFailedError),
    ],
)
async def test_bluez_failures_through_the_retry_connector(bluez_says: str, ours: type, monkeypatch: pytest.MonkeyPatch) -> None:
    # bleak-retry-connector backs off between its attempts by class (4 s for out of slots, 9
    # attempts for transient errors): the waiting is not what this tests.
    monkeypatch.setattr(bleak_retry_connector, "calculate_backoff_time", lambda exc: 0.0)
    cuff = SimulatedCuff(measurements=[READING])
    with pytest.raises(DeviceNotFoundError) as info:
        await cuff_session(cuff, failing_backend(cuff, bluez_says)).collect()
    assert type(info.value) is ours


def fast_cuff(**kwargs: bool) -> SimulatedCuff:
    return SimulatedCuff(measurements=[READING], inflate_steps=1, step_interval=0.01, disconnect_after=0.02, **kwargs)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_a_cuff_that_drops_its_keys_is_bond_lost_and_one_never_paired_is_not_bonded() -> None:
    never_paired = fast_cuff(requires_bonding=True)
    with pytest.raises(DeviceNotBondedError) as refused:
        await cuff_session(never_paired).collect()  # its profile does not say it needs bonding
    assert refused.value.code is DeviceErrorCode.BLE_NOT_BONDED
    assert not isinstance(refused.value, DeviceBondLostError)

    cuff = fast_cuff(requires_bonding=True)
    assert await cuff_session(cuff, needs_bonding=True).collect() == [READING]
    cuff.bonded = False  # batteries changed: the cuff forgot its keys, BlueZ kept its own
    with pytest.raises(DeviceBondLostError) as lost:
        await cuff_session(cuff, needs_bonding=True).collect()
    assert lost.value.code is DeviceErrorCode.BLE_BOND_LOST
    assert "lost its bond" in str(lost.value)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_dropped_mid_measurement_has_its_code() -> None:
    cuff = SimulatedCuff(measurements=[READING], inflate_steps=3, step_interval=0.01, drop_mid_measurement=True)
    with pytest.raises(DeviceDisconnectedError) as info:
        await cuff_session(cuff).collect()
    assert info.value.code is DeviceErrorCode.BLE_DROPPED
