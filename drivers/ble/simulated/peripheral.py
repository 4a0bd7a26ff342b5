"""The simulated peripheral: a GATT table and a per-connection script, with the misbehaviours
every simulated device supports."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.exc import (
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from drivers.ble import uuids
from drivers.ble.blood_pressure import (
    BloodPressureMeasurement,
)
from drivers.ble.clock import decode_current_time, encode_current_time
from drivers.ble.errors import DecodeError

ATT_DEFAULT_MTU = 23  # the LE default ATT_MTU before any MTU exchange

# Blood Pressure Feature (BLS 3.3), uint16: bits 0-4 = body movement,
# cuff fit, irregular pulse, pulse rate range and measurement position detection.
DEFAULT_BP_FEATURES = 0x001F

# What a cheap device clock typically drifts by between battery changes: several minutes.
TYPICAL_DRIFT = timedelta(minutes=7)

MeasurementSource = Callable[[], Iterable[BloodPressureMeasurement]] | Iterable[BloodPressureMeasurement]



# -- GATT table -----------------------------------------------------------------


@dataclass(frozen=True)
class SimCharacteristic:
    """One characteristic of the simulated GATT table; handlers run on the peripheral side."""

    uuid: str
    properties: tuple[CharacteristicPropertyName, ...]
    read: Callable[[], bytes] | None = None
    write: Callable[[bytes, Link], None] | None = None  # may raise BleakGATTProtocolError


@dataclass(frozen=True)
class SimService:
    uuid: str
    characteristics: tuple[SimCharacteristic, ...]


class Link(Protocol):
    """What a peripheral's script can do on one connection."""

    def send(self, uuid: str, payload: bytes) -> None:
        """Notify/indicate ``payload`` on ``uuid``; lost if the central has not subscribed."""

    def disconnect(self) -> None:
        """Peripheral-initiated disconnect (bleak reports it via disconnected_callback)."""

    def run_soon(self, script: Coroutine[Any, Any, None]) -> None:
        """Run ``script`` for as long as the connection lasts (cancelled at disconnect)."""

    async def wait_subscribed(self, uuid: str) -> None:
        """Wait until the central enabled notifications/indications on ``uuid``."""


# -- Peripherals ----------------------------------------------------------------


@dataclass(kw_only=True)
class SimulatedPeripheral:
    """A device: GATT table + per-connection script + misbehaviour switches + observable state."""

    address: str = "SIM:00:00:00:00:01"
    name: str = "SIM"
    # False: switched off, not found by a scan. A real cuff advertises only once its start
    # button is pressed; tests of the kiosk screen press it when the screen says so.
    advertising: bool = True
    # Misbehaviour switches (meaning per device in each subclass's docstring).
    drop_mid_transfer: bool = False  # disconnect part-way through delivering data
    garbage: bytes | None = None  # sent instead of a valid measurement value
    requires_bonding: bool = False  # ATT 0x05 on every access until the link is bonded
    forgets_bond: bool = False  # drops its side of the bond at every disconnect
    has_current_time: bool = False  # exposes CTS 0x1805 / Current Time 0x2A2B
    battery_percent: int | None = None  # exposes the Battery Service 0x180F / Battery Level 0x2A19
    clock_offset: timedelta | None = None  # device clock - real clock; None: TYPICAL_DRIFT with CTS, else 0
    # Observable state for tests.
    connections: int = field(default=0, init=False)
    bonded: bool = field(default=False, init=False)  # the peripheral's side of the bond
    # The kiosk's (BlueZ's) side: lives with the device because one simulated adapter serves it.
    central_bonded: bool = field(default=False, init=False)
    writes: list[tuple[str, bytes]] = field(default_factory=list, init=False)  # (uuid, value), all chars

    def __post_init__(self) -> None:
        if self.clock_offset is None:
            self.clock_offset = TYPICAL_DRIFT if self.has_current_time else timedelta(0)

    def is_advertising(self) -> bool:
        """Whether a scan hears it now."""
        return self.advertising

    def clock(self) -> datetime:
        """The device's wall clock (naive, like the Date Time fields it sends)."""
        assert self.clock_offset is not None
        return datetime.now() + self.clock_offset

    def services(self) -> list[SimService]:
        table = self.gatt()
        if self.has_current_time:
            table.append(self._current_time_service())
        if self.battery_percent is not None:
            table.append(self._battery_service())
        return table

    def gatt(self) -> list[SimService]:
        raise NotImplementedError

    async def run(self, link: Link) -> None:
        """What the device does on each connection; the default is to wait for the central."""

    def _current_time_service(self) -> SimService:
        # CTS 1.1 section 3.1: Current Time is read + notify, write optional (we support it).
        return SimService(
            uuids.CURRENT_TIME_SERVICE,
            (
                SimCharacteristic(
                    uuids.CURRENT_TIME,
                    ("read", "write", "notify"),
                    read=lambda: encode_current_time(self.clock()),
                    write=self._set_clock,
                ),
            ),
        )

    def _battery_service(self) -> SimService:
        # BAS 1.1 section 3.1: Battery Level is read (+ optional notify), one uint8 percent.
        return SimService(
            uuids.BATTERY_SERVICE,
            (SimCharacteristic(uuids.BATTERY_LEVEL, ("read",), read=lambda: bytes([self.battery_percent or 0])),),
        )

    def _set_clock(self, data: bytes, _link: Link) -> None:
        try:
            written = decode_current_time(data).time
        except DecodeError:
            written = None
        if written is None:
            # What a real CTS server answers for a value it cannot use (CTS 1.1 section 3.1.2.1).
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.VALUE_NOT_ALLOWED)
        self.clock_offset = written - datetime.now()


