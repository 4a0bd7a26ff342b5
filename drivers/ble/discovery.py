"""Find health devices nearby and say which model profile each one is.

Matching is pure (name and advertised services against the profiles in firmware_configs/ble/);
the scan itself goes through bleak's BleakScanner, whose backend can be injected so tests and
the demo run the production path over simulated advertisements.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bleak import BleakScanner
from bleak.backends.scanner import BaseBleakScanner
from bleak.exc import BleakError

from contract.device_errors import DeviceErrorCode
from drivers.ble.errors import DeviceUnavailableError
from drivers.ble.uuids import short_form


class DeviceProfileLike(Protocol):
    """What discovery needs of a profile (firmware_configs.profiles.BleDeviceProfile has it)."""

    @property
    def model(self) -> str: ...
    @property
    def name_patterns(self) -> Sequence[str]: ...
    @property
    def services(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    address: str
    name: str | None
    rssi: int | None
    services: tuple[str, ...]  # 16-bit short forms of the SIG services it advertises
    model: str | None  # the matching profile's model; None = not a device we know


class ScanFailedError(DeviceUnavailableError):
    """No scan was possible: no adapter, BlueZ not running, no permission."""

    code = DeviceErrorCode.BLE_ADAPTER_UNAVAILABLE


def match_profile(
    name: str | None, services: Iterable[str], profiles: Iterable[DeviceProfileLike]
) -> DeviceProfileLike | None:
    """The profile for an advertisement: a model whose name pattern matches wins over a
    profile matched by service alone, so a known quirky cuff never falls back to generic."""
    advertised = {s.lower() for s in services}
    by_service: DeviceProfileLike | None = None
    for profile in sorted(profiles, key=lambda p: p.model):
        serves = bool(advertised & set(profile.services))
        if profile.name_patterns:
            named = name is not None and any(re.search(p, name) for p in profile.name_patterns)
            # Some cuffs advertise only their name, not their service: the name suffices.
            if named and (serves or not advertised):
                return profile
        elif serves and by_service is None:
            by_service = profile
    return by_service


async def discover(
    profiles: Sequence[DeviceProfileLike],
    *,
    timeout: float = 5.0,
    backend: type[BaseBleakScanner] | None = None,
) -> list[DiscoveredDevice]:
    """Scan for `timeout` seconds; every device seen, strongest signal first, with its profile."""
    try:
        if backend is None:  # the platform's scanner (BlueZ on a Pi)
            seen = await BleakScanner.discover(timeout, return_adv=True)
        else:
            seen = await BleakScanner.discover(timeout, return_adv=True, backend=backend)
    except (BleakError, OSError) as error:
        raise ScanFailedError(f"cannot scan for Bluetooth devices: {error}") from error
    found = []
    for device, advertisement in seen.values():
        services = tuple(sorted({s for s in map(short_form, advertisement.service_uuids) if s is not None}))
        name = advertisement.local_name or device.name
        profile = match_profile(name, services, profiles)
        found.append(
            DiscoveredDevice(device.address, name, advertisement.rssi, services, profile.model if profile else None)
        )
    return sorted(found, key=lambda d: -(d.rssi if d.rssi is not None else -999))
