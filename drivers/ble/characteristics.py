"""Every characteristic Doorstep decodes, by its 16-bit UUID: the table behind `doorstep decode`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from drivers.ble import (
    battery,
    blood_pressure,
    blood_pressure_feature,
    clock,
    glucose,
    pulse_oximeter,
    racp,
    thermometer,
    weight,
)
from drivers.ble.uuids import short_form


class UnknownCharacteristicError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CharacteristicCodec:
    short_uuid: str  # "2a35"
    name: str  # the SIG's name
    decode: Callable[[bytes], Any]  # raises DecodeError
    to_json: Callable[[Any], dict[str, Any]]


def _decode_racp(data: bytes) -> racp.RacpRequest | racp.RacpResponse:
    """A value seen on the control point: the collector's request or the device's response."""
    response_op_codes = {racp.RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, racp.RacpOpCode.RESPONSE_CODE}
    if data and data[0] in response_op_codes:
        return racp.decode_racp_response(data)
    return racp.decode_racp_request(data)


def _date_time_json(value: datetime | None) -> dict[str, Any]:
    return {"date_time": value.isoformat() if value is not None else None}


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
        blood_pressure.intermediate_cuff_pressure_to_json_dict,
    ),
    CharacteristicCodec(
        "2a49",
        "Blood Pressure Feature",
        blood_pressure_feature.decode_blood_pressure_feature,
        blood_pressure_feature.to_json_dict,
    ),
    CharacteristicCodec("2a18", "Glucose Measurement", glucose.decode_glucose_measurement, glucose.to_json_dict),
    CharacteristicCodec(
        "2a34", "Glucose Measurement Context", glucose.decode_glucose_measurement_context, glucose.to_json_dict
    ),
    CharacteristicCodec("2a52", "Record Access Control Point", _decode_racp, racp.to_json_dict),
    CharacteristicCodec(
        "2a1c", "Temperature Measurement", thermometer.decode_temperature_measurement, thermometer.to_json_dict
    ),
    CharacteristicCodec("2a9d", "Weight Measurement", weight.decode_weight_measurement, weight.to_json_dict),
    CharacteristicCodec(
        "2a5e",
        "PLX Spot-check Measurement",
        pulse_oximeter.decode_plx_spot_check_measurement,
        pulse_oximeter.to_json_dict,
    ),
    CharacteristicCodec(
        "2a5f",
        "PLX Continuous Measurement",
        pulse_oximeter.decode_plx_continuous_measurement,
        pulse_oximeter.to_json_dict,
    ),
    CharacteristicCodec("2a08", "Date Time", clock.decode_date_time, _date_time_json),
    CharacteristicCodec("2a2b", "Current Time", clock.decode_current_time, clock.to_json_dict),
    CharacteristicCodec("2a19", "Battery Level", battery.decode_battery_level, battery.to_json_dict),
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
