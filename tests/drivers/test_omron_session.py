"""The Omron session read through the production bleak path against a simulated cuff that speaks
Omron's protocol and misbehaves on purpose: nothing lost, nothing read twice."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit, MeasurementStatus
from drivers.ble.errors import DecodeError, DeviceDisconnectedError
from drivers.ble.omron.memory import decode_clock
from contract.device_errors import DeviceErrorCode
from drivers.ble.bonding import DeviceBondLostError
from drivers.ble.omron.session import KeyNotProgrammedError, OmronMemorySession
from drivers.ble.simulated import simulated_backend
from drivers.ble.simulated.omron_cuff import SimulatedOmronCuff
from firmware_configs.omron_memory import OmronMemory
from firmware_configs.profiles import load_ble_profiles

pytestmark = pytest.mark.asyncio

PROFILES = load_ble_profiles()
KIOSK_NOW = datetime(2026, 12, 7, 9, 30, 0)
KIOSK_KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")  # this kiosk's unlock key


def reading(n: int, user: int | None = 1) -> BloodPressureMeasurement:
    return BloodPressureMeasurement(
        unit=BloodPressureUnit.MMHG, systolic=float(120 + n), diastolic=float(80 + n), mean_arterial_pressure=None,
        timestamp=datetime(2026, 12, 1, 8, 0, 0) + timedelta(hours=n), pulse_rate=float(60 + n), user_id=user,
        status=(MeasurementStatus.BODY_MOVEMENT,) if n % 3 == 0 else (),
    )


def memory_map(model: str) -> OmronMemory:
    found = PROFILES[model].omron_memory
    assert found is not None
    return found


def cuff(model: str = "hem-7142t2", misbehaviour: str | None = None) -> SimulatedOmronCuff:
    device = SimulatedOmronCuff(memory_map=memory_map(model), unlock_key=KIOSK_KEY)  # paired with this kiosk
    if misbehaviour is not None:
        setattr(device, misbehaviour, True)
    return device


class Outbox:
    """Stands for the agent's outbox: what save() was given, in order."""

    def __init__(self) -> None:
        self.saved: list[BloodPressureMeasurement] = []

    async def save(self, readings: list[BloodPressureMeasurement]) -> None:
        self.saved += readings


def session_with(device: SimulatedOmronCuff, model: str, key: bytes = KIOSK_KEY) -> OmronMemorySession:
    return OmronMemorySession(device.address, memory_map(model), backend=simulated_backend(device),
                              needs_bonding=True, unlock_key=key, now=lambda: KIOSK_NOW)


async def collect(device: SimulatedOmronCuff, outbox: Outbox, model: str = "hem-7142t2") -> list[BloodPressureMeasurement]:
    return await session_with(device, model).collect(outbox.save)


async def test_unread_records_are_saved_once_then_marked_read_and_the_clock_is_set() -> None:
    device = cuff()
    for n in range(3):
        device.measure(reading(n))
    outbox = Outbox()
    assert await collect(device, outbox) == [reading(0), reading(1), reading(2)]
    assert outbox.saved == [reading(0), reading(1), reading(2)]
    assert device.unread() == 0
    mem = memory_map("hem-7142t2")
    at = mem.settings_read + mem.clock.offset
    assert decode_clock(bytes(device.memory[at:at + mem.clock.size]), mem.clock) == KIOSK_NOW
    # The next connection finds nothing new: no record read twice.
    device.measure(reading(3))
    assert await collect(device, outbox) == [reading(3)]
    assert await collect(device, outbox) == []
    assert outbox.saved == [reading(n) for n in range(4)]


async def test_the_ring_wraps_and_only_the_unread_come() -> None:
    device = cuff()  # 14 slots
    outbox = Outbox()
    for n in range(10):
        device.measure(reading(n))
    await collect(device, outbox)
    for n in range(10, 20):  # slots 10..13 then 0..5
        device.measure(reading(n))
    assert await collect(device, outbox) == [reading(n) for n in range(10, 20)]
    assert outbox.saved == [reading(n) for n in range(20)]


@pytest.mark.parametrize(("misbehaviour", "error"), [
    ("drop_mid_transfer", DeviceDisconnectedError),
    ("short_block", DecodeError),
    ("bad_checksum", DecodeError),
])
async def test_a_broken_transfer_saves_nothing_and_the_next_one_reads_everything_once(
    misbehaviour: str, error: type[Exception]
) -> None:
    device = cuff(misbehaviour=misbehaviour)
    for n in range(5):
        device.measure(reading(n))
    outbox = Outbox()
    with pytest.raises(error):
        await collect(device, outbox)
    assert outbox.saved == []
    assert device.unread() == 5  # the pointer was not moved
    assert await collect(device, outbox) == [reading(n) for n in range(5)]
    assert outbox.saved == [reading(n) for n in range(5)]
    assert device.unread() == 0


async def test_when_saving_fails_the_cuff_keeps_its_records_unread() -> None:
    device = cuff()
    device.measure(reading(0))

    async def full_disk(_readings: list[BloodPressureMeasurement]) -> None:
        raise OSError("disk full")

    session = OmronMemorySession(device.address, memory_map("hem-7142t2"),
                                 backend=simulated_backend(device), needs_bonding=True, now=lambda: KIOSK_NOW)
    with pytest.raises(OSError, match="disk full"):
        await session.collect(full_disk)
    assert device.unread() == 1


async def test_a_two_user_four_channel_model_reads_each_users_area() -> None:
    device = cuff("hem-7361t")
    device.measure(reading(0, user=1), user=1)
    device.measure(reading(1, user=2), user=2)
    device.measure(reading(2, user=1), user=1)
    outbox = Outbox()
    # Oldest first whoever measured: the agent shows the newest as the measurement at hand.
    assert await collect(device, outbox, "hem-7361t") == [reading(0, 1), reading(1, 2), reading(2, 1)]
    assert (device.unread(1), device.unread(2)) == (0, 0)


async def test_a_cuff_holding_another_unlock_key_is_refused_as_a_lost_bond_and_keeps_its_records() -> None:
    device = cuff("hem-7361t")
    device.unlock_key = bytes.fromhex("deadbeaf12341234deadbeaf12341234")  # omblepy's, paired with omblepy -p
    device.measure(reading(0))
    with pytest.raises(DeviceBondLostError, match="not this kiosk's") as refused:
        await collect(device, Outbox(), "hem-7361t")
    # The code the technician screen offers "pair again" for (DeviceHealthBook.bond_trouble).
    assert refused.value.code is DeviceErrorCode.BLE_BOND_LOST
    assert device.unread() == 1


async def test_a_cuff_paired_at_the_kiosk_takes_its_key_then_opens_to_it_alone() -> None:
    device = SimulatedOmronCuff(memory_map=memory_map("hem-7361t"), name="HEM-7361T")  # fresh: no key
    device.measure(reading(0))
    device.pairing_mode = True  # "-P-" blinking
    await session_with(device, "hem-7361t").program_key()
    assert device.unlock_key == KIOSK_KEY
    device.pairing_mode = False  # back to normal use
    outbox = Outbox()
    assert await collect(device, outbox, "hem-7361t") == [reading(0)]
    # Another kiosk (or omblepy's default key) is refused by the cuff itself, not by us.
    device.measure(reading(1))
    with pytest.raises(DeviceBondLostError):
        await session_with(device, "hem-7361t", key=bytes(16)).collect(outbox.save)
    assert outbox.saved == [reading(0)]
    assert device.unread() == 1


async def test_a_cuff_out_of_pairing_mode_refuses_a_new_key_and_keeps_its_own() -> None:
    device = cuff("hem-7361t")
    with pytest.raises(KeyNotProgrammedError, match="not in pairing mode"):
        await session_with(device, "hem-7361t", key=bytes(16)).program_key()
    assert device.unlock_key == KIOSK_KEY
    assert await collect(device, Outbox(), "hem-7361t") == []


async def test_a_key_model_without_a_key_is_our_bug_said_at_once() -> None:
    with pytest.raises(ValueError, match="unlocks with a key"):
        OmronMemorySession("AA:BB:CC:DD:EE:FF", memory_map("hem-7361t"))
