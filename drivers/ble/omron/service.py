"""Omron's vendor GATT service: its UUIDs per transport (omblepy omblepy.py bluetoothTxRxHandler,
commit 708c13e; hass-omron omron_ble/const.py, commit d6758ed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from drivers.ble import uuids

CLASSIC_SERVICE: Final = "ecbe3980-c9a2-11e1-b1bd-0002a5d5c51b"
SINGLE_CHANNEL_SERVICE: Final = uuids.full_uuid(0xFE4A)
# Cuff -> kiosk (notify), channels 0..3.
RX: Final = (
    "49123040-aee8-11e1-a74d-0002a5d5c51b",
    "4d0bf320-aee8-11e1-a0d9-0002a5d5c51b",
    "5128ce60-aee8-11e1-b84b-0002a5d5c51b",
    "560f1420-aee8-11e1-8184-0002a5d5c51b",
)
# Kiosk -> cuff (write), channels 0..3.
TX: Final = (
    "db5b55e0-aee7-11e1-965e-0002a5d5c51b",
    "e0b8a060-aee7-11e1-92f4-0002a5d5c51b",
    "0ae12b00-aee8-11e1-a192-0002a5d5c51b",
    "10e1ba60-aee8-11e1-89e5-0002a5d5c51b",
)
UNLOCK: Final = "b305b680-aee7-11e1-a730-0002a5d5c51b"  # write + notify


@dataclass(frozen=True, slots=True)
class Channels:
    service: str
    rx: tuple[str, ...]
    tx: tuple[str, ...]


def channels(transport: Literal["single_channel", "four_channels"]) -> Channels:
    if transport == "single_channel":
        return Channels(SINGLE_CHANNEL_SERVICE, RX[:1], TX[:1])
    return Channels(CLASSIC_SERVICE, RX, TX)
