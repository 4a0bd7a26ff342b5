"""Discovery through bleak's real BleakScanner over simulated advertisements."""

from __future__ import annotations

import pytest

from drivers.ble.discovery import DiscoveredDevice, discover, match_profile
from drivers.ble.simulated_scanner import SimulatedAdvertisement, simulated_scanner_backend
from firmware_configs.profiles import load_ble_profiles

PROFILES = list(load_ble_profiles().values())


@pytest.mark.parametrize(
    ("name", "services", "model"),
    [
        ("BLEsmart_00000116", ["1810"], "omron"),
        ("X4 Smart", [], "omron"),  # advertises its name only
        ("HEM-7142T2", ["fe4a"], "hem-7142t2"),  # its memory map, not the SIG profile (issue 22)
        ("HEM-7361T", ["1810"], "hem-7361t"),
        ("A&D_UA-651_1234", ["1810"], "and-medical"),
        ("BP-OEM-77", ["1810"], "noncompliant-example"),
        ("Some Cuff", ["1810"], "generic"),  # any SIG cuff
        (None, ["1810"], "generic"),
        ("BLEsmart_00000116", ["180d"], None),  # an Omron heart-rate strap is not a cuff
        ("Headphones", ["110b"], None),
    ],
)
def test_a_profile_is_chosen_by_name_before_service(name: str | None, services: list[str], model: str | None) -> None:
    profile = match_profile(name, services, PROFILES)
    assert (profile.model if profile else None) == model


@pytest.mark.asyncio
async def test_discover_lists_what_it_hears_strongest_first_with_its_profile() -> None:
    backend = simulated_scanner_backend(
        [
            SimulatedAdvertisement("AA:00:00:00:00:01", "A&D_UA-651_1234", (0x1810,), rssi=-80),
            SimulatedAdvertisement("AA:00:00:00:00:02", "X4 Smart", (), rssi=-50),
            SimulatedAdvertisement("AA:00:00:00:00:03", "Speaker", (0x110B,), rssi=-40),
        ]
    )
    found = await discover(PROFILES, timeout=0.05, backend=backend)
    assert found == [
        DiscoveredDevice("AA:00:00:00:00:03", "Speaker", -40, ("110b",), None),
        DiscoveredDevice("AA:00:00:00:00:02", "X4 Smart", -50, (), "omron"),
        DiscoveredDevice("AA:00:00:00:00:01", "A&D_UA-651_1234", -80, ("1810",), "and-medical"),
    ]
