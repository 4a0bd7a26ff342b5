"""Bonding with devices that encrypt their health data, and the error a missing bond raises.

Why: some cuffs (and glucose meters: the Glucose Profile has the collector bond
with the sensor) answer reads, writes and CCCD writes with ATT error 0x05
"Insufficient Authentication" (or 0x0F "Insufficient Encryption") until the
link is encrypted with a bond (Core Spec Vol 3, Part F, 3.4.1.1 error codes).

The kiosk pairs a cuff itself from its technician screen, with its own agent
(drivers/ble/pairing.py, docs/devices.md "Pairing a cuff"). By hand on a headless
Raspberry Pi (BlueZ), as root::

    $ bluetoothctl
    [bluetooth]# power on
    [bluetooth]# agent NoInputNoOutput      # a "Just Works" agent: nothing to type on a kiosk
    [bluetooth]# default-agent              # make it answer requests from every process (bleak too)
    [bluetooth]# scan on                    # now put the cuff in pairing mode (see its manual)
    [bluetooth]# pair AA:BB:CC:DD:EE:FF     # the cuff's MAC, shown by the scan
    [bluetooth]# trust AA:BB:CC:DD:EE:FF    # reconnect without asking again
    [bluetooth]# scan off
    [bluetooth]# quit

Why bleak's ``pair()`` alone is not enough on BlueZ: bleak 3.1.0's BlueZ backend
(bleak/backends/bluezdbus/client.py ``_pair``) only sets ``Trusted`` and calls
``org.bluez.Device1.Pair``; it never registers an ``org.bluez.Agent1`` with
``AgentManager1.RegisterAgent``. Any confirmation, passkey or authorization request
BlueZ raises during pairing then has nobody to answer it unless a default agent is
registered by some other process, so pairing fails or stalls (bleak issues #1380,
#1434 "pair() only works when bluetoothctl is running"). The bluetoothctl agent above
lives only while bluetoothctl runs: pair once with it and let the stored keys do the
rest. Also, ``pair()`` returns at once when BlueZ already lists the device as paired.

Cuffs that forget their bond (``forgets_bond`` quirk): the cuff drops its keys at every
disconnect, but BlueZ keeps its own, so the next encryption attempt fails with
"Insufficient Authentication" and ``pair()`` is a no-op ("already paired"). The
session therefore calls ``unpair()`` first (BlueZ ``RemoveDevice``, what
``bluetoothctl remove <MAC>`` does), then connects and pairs afresh. That needs a
Just Works pairing the cuff accepts at any time and a default agent that stays
registered (e.g. a systemd unit running an agent) - pairing again by hand with
``remove <MAC>`` followed by the steps above also works.
"""

from __future__ import annotations

import logging

from bleak import BleakClient
from bleak.exc import (
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from contract.device_errors import DeviceErrorCode
from drivers.ble.errors import DeviceUnavailableError

logger = logging.getLogger(__name__)

# ATT errors meaning "encrypt the link with a bond first" (Core Vol 3, Part F, 3.4.1.1).
_SECURITY_CODES = frozenset(
    {
        BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
        BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
        BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
    }
)
# Backends that cannot map to BleakGATTProtocolError still name the error in the text
# (BleakDBusError appends e.g. "ATT error: 0x05 (Insufficient Authentication)").
_SECURITY_PHRASES = ("insufficient authentication", "insufficient encryption")


class DeviceNotBondedError(DeviceUnavailableError):
    """The device refuses to talk until the kiosk and the device share a bond (never paired,
    or pairing refused)."""

    code = DeviceErrorCode.BLE_NOT_BONDED
    what = "the kiosk is not bonded with it"

    def __init__(self, address: str, detail: str) -> None:
        self.address = address
        self.detail = detail
        super().__init__(
            f"{address} refused access ({detail}): {self.what}. "
            f"Put the device in pairing mode and pair it again on the kiosk's technician screen "
            f"(配对新血压计; drivers/ble/pairing.py) or with bluetoothctl "
            f"(remove {address}, pair {address}, trust {address}), "
            f"or mark it needs_bonding / forgets_bond in its device profile."
        )

    def __reduce__(self) -> tuple[type[DeviceNotBondedError], tuple[str, str]]:
        # Keep it picklable despite the two-argument constructor (as DecodeError does).
        return (type(self), (self.address, self.detail))


class DeviceBondLostError(DeviceNotBondedError):
    """The kiosk bonded with the device, and the device no longer honours the bond: it dropped
    its keys (batteries out, a reset) while BlueZ kept its own, so encryption fails and
    pair() is a no-op ("already paired"). Only pairing afresh brings it back."""

    code = DeviceErrorCode.BLE_BOND_LOST
    what = "the device has lost its bond with the kiosk"


def is_security_failure(exc: BaseException) -> bool:
    """True if ``exc`` says the link needs a bond (ATT 0x05 / 0x0F / 0x0C)."""
    if isinstance(exc, BleakGATTProtocolError) and exc.code in _SECURITY_CODES:
        return True
    text = str(exc).lower()
    return any(phrase in text for phrase in _SECURITY_PHRASES)


async def forget_stale_bond(client: BleakClient, address: str) -> None:
    """Remove the kiosk's side of a bond the device may have dropped (call before connect).

    BlueZ's unpair also disconnects, so it belongs before ``connect()``. A device the
    adapter does not know (nothing to forget) is fine; other failures are logged and
    left to surface as DeviceNotBondedError on the first secured access.
    """
    try:
        await client.unpair()
    except BleakDeviceNotFoundError:
        logger.debug("%s: no stale bond to remove", address)
    except BleakError as exc:
        logger.warning("%s: removing the stale bond failed: %s", address, exc)


async def pair(client: BleakClient, address: str) -> None:
    """Pair (and bond) on the open connection; DeviceNotBondedError if the device refuses."""
    try:
        await client.pair()
    except BleakError as exc:
        raise DeviceNotBondedError(address, f"pairing failed: {exc}") from exc
