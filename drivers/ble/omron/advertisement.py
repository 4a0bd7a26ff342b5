"""Omron's manufacturer-specific advertisement data (company id 0x020E, OMRON HEALTHCARE's
Bluetooth SIG company identifier), for discovery.

Input: the bytes after the company id, as bleak's ``AdvertisementData.manufacturer_data[0x020E]``
and bluetoothctl's "ManufacturerData Value" give them. Layout from eigger/hass-omron
omron_ble/parser.py ``_decode_omron_msd_fields`` (commit d6758ed): byte 0 is the format, byte 1
the status bits (the same bits in every format but 0x03, which has its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from drivers.ble.errors import DecodeError

CHARACTERISTIC = "omron-adv"

_USERS_MASK: Final = 0x03
_INVALID_TIME: Final = 0x04
_PAIRING_MODE: Final = 0x08
_DATA_WAITING: Final = 0x40  # hass-omron "forced_transfer", shown as "Data Pending"; not in 0x03
_PER_USER_STRIDE: Final = 3  # formats 0x01/0x02/0x06: three bytes per user from byte 2

# Format -> how long the data must be for a given registered-user count (parser.py's contracts).
_EXACT_LENGTH: Final = {0x08: {0: 10, 1: 13}, 0x09: {0: 9, 1: 11, 2: 13, 3: 15}}
_PER_USER_FORMATS: Final = (0x01, 0x02, 0x06)
_OLD_FORMAT: Final = 0x03


@dataclass(frozen=True, slots=True)
class OmronAdvertisement:
    format: int
    registered_users: int
    pairing_mode: bool  # "-P-" blinking: the cuff accepts a new bond now
    clock_not_set: bool  # the cuff asks for its time to be set
    data_waiting: bool  # records the cuff wants to hand over
    # Formats 0x01/0x02/0x06: three bytes per registered user, as hex. Public sources place them
    # (hass-omron: "per-user sequence numbers") but do not say how to read them, so we don't.
    per_user: tuple[str, ...] = ()


def decode_omron_advertisement(data: bytes) -> OmronAdvertisement:
    if len(data) < 2:
        raise DecodeError(CHARACTERISTIC, "format", f"{len(data)} bytes: at least a format and a status byte")
    fmt, status = data[0], data[1]
    users = status & _USERS_MASK
    if fmt == _OLD_FORMAT:
        if len(data) < 3:
            raise DecodeError(CHARACTERISTIC, "result_identifier", "format 0x03 carries 3 bytes at least")
        return OmronAdvertisement(fmt, users, bool(status & _PAIRING_MODE), bool(status & _INVALID_TIME), False)
    if fmt in _PER_USER_FORMATS:
        needed = 4 + users * _PER_USER_STRIDE
        if len(data) < needed:
            raise DecodeError(CHARACTERISTIC, "per_user", f"{users} users need {needed} bytes, {len(data)} sent")
        per_user = tuple(data[2 + i * _PER_USER_STRIDE:2 + (i + 1) * _PER_USER_STRIDE].hex() for i in range(users))
    elif fmt in _EXACT_LENGTH:
        expected = _EXACT_LENGTH[fmt].get(users)
        if expected != len(data):
            raise DecodeError(CHARACTERISTIC, "length",
                              f"format {fmt:#04x} with {users} users is {expected} bytes, {len(data)} sent")
        per_user = ()
    else:
        raise DecodeError(CHARACTERISTIC, "format", f"{fmt:#04x} is not a format we know")
    return OmronAdvertisement(fmt, users, bool(status & _PAIRING_MODE), bool(status & _INVALID_TIME),
                              bool(status & _DATA_WAITING), per_user)


def to_json_dict(adv: OmronAdvertisement) -> dict[str, Any]:
    return {
        "format": adv.format,
        "registered_users": adv.registered_users,
        "pairing_mode": adv.pairing_mode,
        "clock_not_set": adv.clock_not_set,
        "data_waiting": adv.data_waiting,
        "per_user": list(adv.per_user),
    }
