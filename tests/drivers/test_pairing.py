"""Pairing from the kiosk against a real D-Bus daemon with python-dbusmock's BlueZ: the agent is
registered with the profile's capability for the pairing and gone after it, the device ends
trusted and paired, a passkey the cuff's pairing shows reaches us, each BlueZ failure becomes
what the person can act on, and a bond BlueZ still holds is replaced by a fresh one."""

from __future__ import annotations

import asyncio

import pytest

from drivers.ble.pairing import AgentLog, BluezPairing, Bonded, PairingError, PairingFailure
from firmware_configs.profiles import load_ble_profiles
from tests.bluez_mock import ADAPTER, bluez

OMRON = "28:FF:B2:00:00:01"
STRANGER = "11:22:33:44:55:66"


@pytest.mark.asyncio
async def test_a_scan_shows_each_device_heard_with_the_profile_it_matches(system_bus: str) -> None:
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        await mock.add_device(STRANGER, "Someone's phone")
        kiosk = await BluezPairing.connect()
        try:
            found = await kiosk.scan(list(load_ble_profiles().values()), seconds=0.1)
        finally:
            kiosk.disconnect()
    assert {(d.address, d.name, d.model, d.services) for d in found} == {
        (OMRON, "BLEsmart_00000116", "omron", ("1810",)),
        (STRANGER, "Someone's phone", None, ()),
    }


@pytest.mark.asyncio
async def test_just_works_pairing_registers_its_agent_for_the_pairing_only_and_trusts_the_cuff(system_bus: str) -> None:
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        device = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        # BlueZ asks the default agent during Pair: this Pair fails unless ours is registered
        # and default with the capability the profile names.
        await mock.replace_pair(device, (
            "bluez = objects['/org/bluez']\n"
            "capability = bluez.capabilities.get(bluez.default_agent)\n"
            "if capability != 'NoInputNoOutput':\n"
            "    raise dbus.exceptions.DBusException(str(capability), name='org.bluez.Error.AuthenticationFailed')\n"
            f"self.PairDevice('{ADAPTER}', '{OMRON}', 0)\n"
        ))
        kiosk = await BluezPairing.connect()
        try:
            bonded = await kiosk.pair(OMRON, "NoInputNoOutput", timeout_s=5)
        finally:
            kiosk.disconnect()
        assert bonded == Bonded(OMRON, "BLEsmart_00000116", None)
        assert await mock.get(device, "Paired") is True
        assert await mock.get(device, "Trusted") is True
        assert await mock.agents() == []


@pytest.mark.asyncio
async def test_a_passkey_the_pairing_shows_reaches_the_kiosk_and_no_other_device_is_confirmed(system_bus: str) -> None:
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        device = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        stranger = await mock.add_device(STRANGER, "Someone's phone")
        kiosk = await BluezPairing.connect()
        # As bluetoothd does: ask the default agent, here to show a passkey, then to confirm
        # another device (which it must refuse), then pair.
        await mock.replace_pair(device, (
            "bluez = objects['/org/bluez']\n"
            "if bluez.capabilities.get(bluez.default_agent) != 'KeyboardDisplay':\n"
            "    raise dbus.exceptions.DBusException('no agent', name='org.bluez.Error.AuthenticationFailed')\n"
            f"agent = self.connection.get_object('{kiosk.unique_name}', bluez.default_agent, introspect=False)\n"
            "agent.DisplayPasskey(dbus.ObjectPath(self.__dbus_object_path__), dbus.UInt32(402913), dbus.UInt16(0),"
            " dbus_interface='org.bluez.Agent1')\n"
            "try:\n"
            f"    agent.RequestConfirmation(dbus.ObjectPath('{stranger}'), dbus.UInt32(1), dbus_interface='org.bluez.Agent1')\n"
            "except dbus.exceptions.DBusException as refused:\n"
            "    assert refused.get_dbus_name() == 'org.bluez.Error.Rejected'\n"
            "else:\n"
            "    raise dbus.exceptions.DBusException('confirmed a stranger', name='org.bluez.Error.Failed')\n"
            f"self.PairDevice('{ADAPTER}', '{OMRON}', 0)\n"
        ))
        shown = AgentLog(device="")
        try:
            await kiosk.pair(OMRON, "KeyboardDisplay", timeout_s=5, agent=shown)
        finally:
            kiosk.disconnect()
        assert shown.passkey == 402913
        assert shown.requests == ["DisplayPasskey", "RequestConfirmation"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("bluez_error", "failure"), [
    ("org.bluez.Error.AuthenticationRejected", PairingFailure.NOT_IN_PAIRING_MODE),
    ("org.bluez.Error.AuthenticationFailed", PairingFailure.BOND_REFUSED),
    ("org.bluez.Error.ConnectionAttemptFailed", PairingFailure.OUT_OF_RANGE),
    ("org.bluez.Error.InProgress", PairingFailure.FAILED),
])
async def test_each_bluez_failure_says_what_to_do_and_leaves_no_agent_behind(
    system_bus: str, bluez_error: str, failure: PairingFailure
) -> None:
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        device = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        await mock.fail_pair(device, bluez_error, "as bluetoothd says it")
        kiosk = await BluezPairing.connect()
        try:
            with pytest.raises(PairingError) as raised:
                await kiosk.pair(OMRON, "NoInputNoOutput", timeout_s=5)
        finally:
            kiosk.disconnect()
        assert raised.value.failure is failure
        assert bluez_error in raised.value.detail
        assert await mock.agents() == []
        assert await mock.get(device, "Trusted") is False


@pytest.mark.asyncio
async def test_a_cuff_that_never_answers_times_out_as_out_of_range(system_bus: str) -> None:
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        device = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        await mock.replace_pair(device, "import time; time.sleep(1.5)")
        kiosk = await BluezPairing.connect()
        try:
            with pytest.raises(PairingError) as raised:
                await kiosk.pair(OMRON, "NoInputNoOutput", timeout_s=0.5)
        finally:
            kiosk.disconnect()
        assert raised.value.failure is PairingFailure.OUT_OF_RANGE


@pytest.mark.asyncio
async def test_a_bond_bluez_still_holds_is_removed_and_made_afresh_once_the_cuff_is_heard_again(
    system_bus: str,
) -> None:
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        old = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        await mock.mark_paired(OMRON)  # the kiosk's keys from before; the cuff has lost its own
        kiosk = await BluezPairing.connect()
        try:
            pairing = asyncio.create_task(kiosk.pair(OMRON, "NoInputNoOutput", timeout_s=5))
            await asyncio.sleep(0.5)
            # RemoveDevice took the old object away; the cuff in pairing mode is heard again.
            with pytest.raises(RuntimeError, match="UnknownMethod|UnknownObject"):
                await mock.get(old, "Paired")
            fresh = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
            await pairing
        finally:
            kiosk.disconnect()
        assert await mock.get(fresh, "Paired") is True
        assert await mock.get(fresh, "Trusted") is True


@pytest.mark.asyncio
async def test_a_device_not_heard_and_a_kiosk_without_an_adapter_are_said_so(system_bus: str) -> None:
    kiosk = await BluezPairing.connect()
    try:
        with pytest.raises(PairingError) as no_adapter:
            await kiosk.pair(OMRON, "NoInputNoOutput", timeout_s=1)
        async with bluez(system_bus) as mock:
            await mock.add_adapter()
            with pytest.raises(PairingError) as not_heard:
                await kiosk.pair(OMRON, "NoInputNoOutput", timeout_s=1)
    finally:
        kiosk.disconnect()
    assert no_adapter.value.failure is PairingFailure.NO_ADAPTER
    assert not_heard.value.failure is PairingFailure.OUT_OF_RANGE


@pytest.mark.asyncio
async def test_a_cuff_that_wants_a_code_typed_at_the_kiosk_is_said_so_not_blamed_on_pairing_mode(
    system_bus: str,
) -> None:
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        device = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        kiosk = await BluezPairing.connect()
        await mock.replace_pair(device, (
            "bluez = objects['/org/bluez']\n"
            f"agent = self.connection.get_object('{kiosk.unique_name}', bluez.default_agent, introspect=False)\n"
            "try:\n"
            "    agent.RequestPasskey(dbus.ObjectPath(self.__dbus_object_path__), dbus_interface='org.bluez.Agent1')\n"
            "except dbus.exceptions.DBusException:\n"
            "    raise dbus.exceptions.DBusException('Authentication Rejected', name='org.bluez.Error.AuthenticationRejected')\n"
        ))
        try:
            with pytest.raises(PairingError) as raised:
                await kiosk.pair(OMRON, "KeyboardDisplay", timeout_s=5)
        finally:
            kiosk.disconnect()
        assert raised.value.failure is PairingFailure.PASSKEY_ENTRY
