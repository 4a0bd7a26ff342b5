"""Battery Level (0x2A19) of the Battery Service (0x180F).

Pure codec. Battery Service 1.1, 3.1: one uint8, the charge in percent, 0-100; the Bluetooth
SIG GATT Specification Supplement (Battery Level) reserves 101-255.
"""

from __future__ import annotations

from typing import Any

from drivers.ble.errors import DecodeError

CHARACTERISTIC = "2a19"
MAX_PERCENT = 100


def decode_battery_level(data: bytes) -> int:
    if len(data) != 1:
        raise DecodeError(CHARACTERISTIC, "battery_level", f"must be 1 byte, got {len(data)}")
    if data[0] > MAX_PERCENT:
        raise DecodeError(CHARACTERISTIC, "battery_level", f"{data[0]} is reserved (0-100 percent)")
    return data[0]


def to_json_dict(percent: int) -> dict[str, Any]:
    return {"battery_level_percent": percent}
