"""Pairing a device from the kiosk itself: scan, pair, trust and bond over BlueZ's D-Bus API,
with the kiosk's own pairing agent registered for the duration.

Why not bleak's ``pair()``: it registers no ``org.bluez.Agent1`` (see bonding.py), so on a Pi
without a desktop nobody answers BlueZ's questions during pairing. Here the kiosk registers
one (BlueZ doc/org.bluez.AgentManager.rst, RegisterAgent) with the IO capability the model's
profile names, makes it the default agent while it pairs (so requests raised on connections
other than ours reach it too), and unregisters it afterwards whatever happened.

The conversation, all on the system bus (BlueZ doc/org.bluez.Adapter.rst, Device.rst)::

    scan:  Adapter1.SetDiscoveryFilter{Transport: le} -> StartDiscovery -> (wait)
           -> ObjectManager.GetManagedObjects: each Device1 seen (it has an RSSI) -> StopDiscovery
    pair:  [Paired already: Adapter1.RemoveDevice, wait until it is heard again]
           RegisterAgent(path, capability) -> RequestDefaultAgent -> Device1.Pair
           -> Device1.Trusted = true -> Paired (and Bonded, where BlueZ has it) read back
           -> UnregisterAgent

A failure comes back as a ``PairingError`` whose ``failure`` says, in a word the screen turns
into plain language, what the person can do about it (``FAILURES`` is the one table).
"""

# No `from __future__ import annotations`: dbus-fast reads the agent's annotations for its
# D-Bus signatures, and a deferred "-> None" would read as a signature of None.
import asyncio
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_method

from drivers.ble.discovery import DeviceProfileLike, DiscoveredDevice, match_profile
from drivers.ble.uuids import short_form

log = logging.getLogger(__name__)

BLUEZ: Final = "org.bluez"
AGENT_MANAGER_PATH: Final = "/org/bluez"
ADAPTER: Final = "org.bluez.Adapter1"
DEVICE: Final = "org.bluez.Device1"
AGENT_MANAGER: Final = "org.bluez.AgentManager1"
OBJECT_MANAGER: Final = "org.freedesktop.DBus.ObjectManager"
PROPERTIES: Final = "org.freedesktop.DBus.Properties"
# Our agent's object path; a counter makes each pairing's its own (an agent path BlueZ still
# holds from a pairing that ended badly is never reused).
AGENT_PATH: Final = "/org/doorstep/pairing_agent"
_agents = itertools.count(1)
# How often a device removed for a fresh bond is looked for again while it advertises.
LOOK_AGAIN_S: Final = 0.2


class PairingFailure(StrEnum):
    """What went wrong, as the person at the kiosk can act on it."""

    NOT_IN_PAIRING_MODE = "not_in_pairing_mode"  # the cuff refused: it pairs only in pairing mode
    BOND_REFUSED = "bond_refused"  # authentication failed, or it paired without keeping a bond
    OUT_OF_RANGE = "out_of_range"  # not heard, connection failed or timed out
    PASSKEY_ENTRY = "passkey_entry"  # it wants a code typed at the kiosk: not offered yet
    NO_ADAPTER = "no_adapter"  # no Bluetooth adapter, or BlueZ not running
    # Bonded, but the cuff did not take the kiosk's unlock key (an Omron key model,
    # drivers/ble/omron/session.py program_key): it left pairing mode, or the link dropped.
    KEY_NOT_PROGRAMMED = "key_not_programmed"
    FAILED = "failed"  # BlueZ failed for a reason not above (its words are kept)


# BlueZ's errors from Device1.Pair (doc/org.bluez.Device.rst, "Possible errors") and from the
# bus, by what they mean at the kiosk. AuthenticationRejected/Canceled is the device (or an
# agent) saying no: a cuff outside pairing mode answers an SMP Pairing Request with "Pairing
# Not Supported" (Core Vol 3, Part H, 3.5.5), which the kernel reports as rejected.
# ConnectionAttemptFailed and AuthenticationTimeout are the radio: not heard, or gone mid-way.
FAILURES: Final[Mapping[str, PairingFailure]] = MappingProxyType({
    "org.bluez.Error.AuthenticationRejected": PairingFailure.NOT_IN_PAIRING_MODE,
    "org.bluez.Error.AuthenticationCanceled": PairingFailure.NOT_IN_PAIRING_MODE,
    "org.bluez.Error.AuthenticationFailed": PairingFailure.BOND_REFUSED,
    "org.bluez.Error.ConnectionAttemptFailed": PairingFailure.OUT_OF_RANGE,
    "org.bluez.Error.AuthenticationTimeout": PairingFailure.OUT_OF_RANGE,
    "org.bluez.Error.DoesNotExist": PairingFailure.OUT_OF_RANGE,
    "org.freedesktop.DBus.Error.UnknownObject": PairingFailure.OUT_OF_RANGE,
    "org.freedesktop.DBus.Error.UnknownMethod": PairingFailure.OUT_OF_RANGE,  # the device object went away
    "org.freedesktop.DBus.Error.ServiceUnknown": PairingFailure.NO_ADAPTER,  # bluetoothd not running
    "org.bluez.Error.NotReady": PairingFailure.NO_ADAPTER,  # adapter powered off
})


class PairingError(Exception):
    """Pairing did not end in a bond; ``failure`` is what to tell the person."""

    def __init__(self, failure: PairingFailure, detail: str) -> None:
        super().__init__(f"{failure}: {detail}")
        self.failure = failure
        self.detail = detail

    def __reduce__(self) -> "tuple[type[PairingError], tuple[PairingFailure, str]]":
        return (type(self), (self.failure, self.detail))


def classify(error_name: str) -> PairingFailure:
    return FAILURES.get(error_name, PairingFailure.FAILED)


@dataclass
class AgentLog:
    """What the agent was asked, for the screen (a passkey to show) and for the log."""

    device: str  # the object path of the one device this agent answers for
    passkey: int | None = None  # shown by us (DisplayPasskey, RequestConfirmation): the cuff shows the same
    requests: list[str] = field(default_factory=list)


class PairingAgent(ServiceInterface):
    """org.bluez.Agent1 (BlueZ doc/org.bluez.Agent.rst) for one pairing: it confirms and
    authorizes only the device the technician tapped, shows any passkey, and refuses what it
    cannot do on a kiosk (typing a code the cuff shows: PASSKEY_ENTRY)."""

    def __init__(self, log_: AgentLog) -> None:
        super().__init__("org.bluez.Agent1")
        self.log = log_

    def _ours(self, device: str, request: str) -> None:
        self.log.requests.append(request)
        if device != self.log.device:
            raise DBusError("org.bluez.Error.Rejected", f"this agent pairs {self.log.device} only")

    @dbus_method()
    def Release(self) -> None:  # noqa: N802 - BlueZ's method names
        self.log.requests.append("Release")

    @dbus_method()
    def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:  # noqa: N802
        self._ours(device, "RequestPinCode")
        raise DBusError("org.bluez.Error.Rejected", "a PIN typed at the kiosk is not offered")

    @dbus_method()
    def DisplayPinCode(self, device: DBusObjectPath, pincode: DBusStr) -> None:  # noqa: N802
        self._ours(device, "DisplayPinCode")
        self.log.passkey = int(pincode) if pincode.isdigit() else None

    @dbus_method()
    def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:  # noqa: N802
        self._ours(device, "RequestPasskey")
        raise DBusError("org.bluez.Error.Rejected", "a passkey typed at the kiosk is not offered")

    @dbus_method()
    def DisplayPasskey(self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16) -> None:  # noqa: N802
        self._ours(device, "DisplayPasskey")
        self.log.passkey = passkey

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> None:  # noqa: N802
        # Numeric comparison: the technician tapped this very cuff a moment ago; the number is
        # shown on the screen beside the cuff's own, and the pairing goes on.
        self._ours(device, "RequestConfirmation")
        self.log.passkey = passkey

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> None:  # noqa: N802
        self._ours(device, "RequestAuthorization")

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> None:  # noqa: N802
        self._ours(device, "AuthorizeService")

    @dbus_method()
    def Cancel(self) -> None:  # noqa: N802
        self.log.requests.append("Cancel")


@dataclass(frozen=True, slots=True)
class Bonded:
    address: str
    name: str | None
    bonded: bool | None  # BlueZ's Bonded property; None where this BlueZ has none (before 5.69)


class BluezPairing:
    """One system-bus connection to BlueZ, for scanning and pairing from the kiosk."""

    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus

    @classmethod
    async def connect(cls) -> "BluezPairing":
        """On the system bus (DBUS_SYSTEM_BUS_ADDRESS, if set, says where: the tests' own
        dbus-daemon). PairingError(NO_ADAPTER) if there is none."""
        try:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        except (OSError, ValueError) as error:
            raise PairingError(PairingFailure.NO_ADAPTER, f"no system bus: {error}") from error
        return cls(bus)

    @property
    def unique_name(self) -> str:
        return str(self._bus.unique_name)

    def disconnect(self) -> None:
        self._bus.disconnect()

    async def scan(self, profiles: Sequence[DeviceProfileLike], seconds: float) -> list[DiscoveredDevice]:
        """Every Bluetooth LE device heard in `seconds`, strongest first, with its profile."""
        adapter = await self._adapter()
        await self._call(adapter, ADAPTER, "SetDiscoveryFilter", "a{sv}", [{"Transport": Variant("s", "le")}])
        await self._call(adapter, ADAPTER, "StartDiscovery")
        try:
            await asyncio.sleep(seconds)
            devices = await self._devices(adapter)
        finally:
            await self._call_quietly(adapter, ADAPTER, "StopDiscovery")
        found = []
        for props in devices.values():
            if "RSSI" not in props:
                continue  # known to BlueZ from before, not heard in this scan
            name = props["Name"].value if "Name" in props else None
            services = tuple(sorted({s for s in map(short_form, props["UUIDs"].value if "UUIDs" in props else [])
                                     if s is not None}))
            profile = match_profile(name, services, profiles)
            found.append(DiscoveredDevice(props["Address"].value, name, props["RSSI"].value, services,
                                          profile.model if profile else None))
        return sorted(found, key=lambda d: -(d.rssi if d.rssi is not None else -999))

    async def pair(self, address: str, capability: str, *, timeout_s: float, agent: AgentLog | None = None) -> Bonded:
        """Pair, trust and bond with `address`; a bond BlueZ holds already is removed first, so
        a device that lost its keys gets fresh ones. Raises PairingError."""
        adapter = await self._adapter()
        path = await self._device_path(adapter, address)
        if path is None:
            raise PairingError(PairingFailure.OUT_OF_RANGE, f"{address} is not heard: scan again")
        try:
            async with asyncio.timeout(timeout_s):
                if (await self._device_props(path)).get("Paired", Variant("b", False)).value:
                    path = await self._forget(adapter, path, address)
                return await self._pair(path, address, capability, agent or AgentLog(path))
        except TimeoutError:
            await self._call_quietly(path, DEVICE, "CancelPairing")
            raise PairingError(PairingFailure.OUT_OF_RANGE, f"{address} did not finish pairing within "
                               f"{timeout_s:g} s") from None

    async def _pair(self, path: str, address: str, capability: str, agent_log: AgentLog) -> Bonded:
        agent_log.device = path
        agent_path = f"{AGENT_PATH}{next(_agents)}"
        self._bus.export(agent_path, PairingAgent(agent_log))
        try:
            await self._call(AGENT_MANAGER_PATH, AGENT_MANAGER, "RegisterAgent", "os", [agent_path, capability])
            try:
                await self._call(AGENT_MANAGER_PATH, AGENT_MANAGER, "RequestDefaultAgent", "o", [agent_path])
                try:
                    await self._call(path, DEVICE, "Pair")
                except PairingError as error:
                    if {"RequestPasskey", "RequestPinCode"} & set(agent_log.requests):
                        # Our agent refused to type a code, and BlueZ reports the pairing
                        # rejected: the reason is ours, not the cuff's pairing mode.
                        raise PairingError(PairingFailure.PASSKEY_ENTRY, error.detail) from error
                    raise
                # Trusted: BlueZ reconnects and re-encrypts without asking anybody (Device.rst).
                await self._call(path, PROPERTIES, "Set", "ssv", [DEVICE, "Trusted", Variant("b", True)])
                props = await self._device_props(path)
            finally:
                await self._call_quietly(AGENT_MANAGER_PATH, AGENT_MANAGER, "UnregisterAgent", "o", [agent_path])
        finally:
            self._bus.unexport(agent_path)
        if not props.get("Paired", Variant("b", False)).value:
            raise PairingError(PairingFailure.BOND_REFUSED, f"{address}: BlueZ does not list it as paired")
        bonded = props["Bonded"].value if "Bonded" in props else None
        if bonded is False:
            # Paired for this connection only: the cuff kept no keys, so it would refuse the next one.
            raise PairingError(PairingFailure.BOND_REFUSED, f"{address} paired but did not bond")
        name = props["Name"].value if "Name" in props else None
        log.info("paired and trusted %s (%s) with a %s agent; BlueZ asked it: %s", address, name, capability,
                 ", ".join(agent_log.requests) or "nothing")
        return Bonded(address, name, bonded)

    async def _forget(self, adapter: str, path: str, address: str) -> str:
        """Remove BlueZ's side of an old bond (what `bluetoothctl remove` does), then wait until
        the device, in pairing mode, is heard again: BlueZ drops the object with the keys."""
        await self._call(adapter, ADAPTER, "RemoveDevice", "o", [path])
        await self._call_quietly(adapter, ADAPTER, "StartDiscovery")
        try:
            while (found := await self._device_path(adapter, address)) is None:
                await asyncio.sleep(LOOK_AGAIN_S)
        finally:
            await self._call_quietly(adapter, ADAPTER, "StopDiscovery")
        return found

    # -- D-Bus -------------------------------------------------------------------------------

    async def _adapter(self) -> str:
        objects = await self._managed_objects()
        adapters = sorted(path for path, interfaces in objects.items() if ADAPTER in interfaces)
        if not adapters:
            raise PairingError(PairingFailure.NO_ADAPTER, "BlueZ has no Bluetooth adapter")
        return adapters[0]

    async def _devices(self, adapter: str) -> dict[str, dict[str, Variant]]:
        objects = await self._managed_objects()
        return {path: interfaces[DEVICE] for path, interfaces in objects.items()
                if DEVICE in interfaces and path.startswith(adapter + "/")}

    async def _device_path(self, adapter: str, address: str) -> str | None:
        for path, props in (await self._devices(adapter)).items():
            if str(props["Address"].value).upper() == address.upper():
                return path
        return None

    async def _device_props(self, path: str) -> dict[str, Variant]:
        [props] = await self._call(path, PROPERTIES, "GetAll", "s", [DEVICE])
        return dict(props)

    async def _managed_objects(self) -> dict[str, dict[str, dict[str, Variant]]]:
        [objects] = await self._call("/", OBJECT_MANAGER, "GetManagedObjects")
        return dict(objects)

    async def _call(self, path: str, interface: str, member: str, signature: str = "",
                    body: list[Any] | None = None) -> list[Any]:
        reply = await self._bus.call(Message(destination=BLUEZ, path=path, interface=interface, member=member,
                                             signature=signature, body=body or []))
        assert reply is not None  # a method call always has a reply
        if reply.message_type == MessageType.ERROR:
            detail = reply.body[0] if reply.body else reply.error_name
            raise PairingError(classify(str(reply.error_name)), f"{member}: {reply.error_name}: {detail}")
        return list(reply.body)

    async def _call_quietly(self, path: str, interface: str, member: str, signature: str = "",
                            body: list[Any] | None = None) -> None:
        """A call whose failure changes nothing (stopping a discovery nobody started)."""
        try:
            await self._call(path, interface, member, signature, body)
        except PairingError as error:
            log.debug("%s on %s: %s", member, path, error)
