"""Every characteristic Doorstep decodes, by its 16-bit UUID: the table behind `doorstep decode`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from drivers.ble import blood_pressure
from drivers.ble.uuids import short_form


class UnknownCharacteristicError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CharacteristicCodec:
    short_uuid: str  # "2a35"
    name: str  # the SIG's name
    decode: Callable[[bytes], Any]  # raises DecodeError
    to_json: Callable[[Any], dict[str, Any]]


def _codecs(*codecs: CharacteristicCodec) -> Mapping[str, CharacteristicCodec]:
    return MappingProxyType({codec.short_uuid: codec for codec in codecs})


CODECS: Mapping[str, CharacteristicCodec] = _codecs(
    CharacteristicCodec(
        "2a35",
        "Blood Pressure Measurement",
        blood_pressure.decode_blood_pressure_measurement,
        blood_pressure.to_json_dict,
    ),
    CharacteristicCodec(
        "2a36",
        "Intermediate Cuff Pressure",
        blood_pressure.decode_intermediate_cuff_pressure,
        blood_pressure.to_json_dict,
    ),
)

_SHORT = re.compile(r"^(?:0x)?([0-9a-f]{4})$")
_HEX_SEPARATORS = re.compile(r"[\s:_-]")


def codec_for(characteristic: str) -> CharacteristicCodec:
    """Accepts the 16-bit short form ("2a35", "0x2A35") or the full 128-bit UUID."""
    text = characteristic.strip().lower()
    match = _SHORT.match(text)
    short = match.group(1) if match else short_form(text)
    if short is None or short not in CODECS:
        known = ", ".join(f"{c.short_uuid} ({c.name})" for c in CODECS.values())
        raise UnknownCharacteristicError(f"unknown characteristic {characteristic!r}; known: {known}")
    return CODECS[short]


def parse_hex(text: str) -> bytes:
    """Hex bytes as a technician pastes them: '1e7800', '1E 78 00', '1e:78:00'."""
    cleaned = _HEX_SEPARATORS.sub("", text).removeprefix("0x")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"not hex bytes: {text!r}") from None
