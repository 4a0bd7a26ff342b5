"""Weight Measurement (0x2A9D).

Pure codec: bytes in, typed reading (or :class:`DecodeError`) out.
Layout: Bluetooth SIG GATT Specification Supplement (GSS) "Weight Measurement" (3.252 in
the GSS revision cited by StanfordSpezi/SpeziBluetooth; section numbers shift between GSS
revisions), as used by the Weight Scale Service (WSS) 1.0 section 3.2. Unlike the other
health characteristics every number here is a plain uint16 with a FIXED resolution that
depends only on the units flag - no SFLOAT, no exponent on the wire.

Verified (search): flag bits 0-3, field order Weight, Time Stamp, User ID, BMI, Height,
and the default resolutions (weight 0.005 kg / 0.01 lb, BMI 0.1 kg/m2, height 0.001 m /
0.1 in) against StanfordSpezi/SpeziBluetooth WeightMeasurement.swift and
RonanB96/bluetooth-sig-python's weight_measurement docs; the 0xFFFF "Measurement
Unsuccessful" special value against a published TypeScript decoder quoting WSS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from drivers.ble.fields import FieldReader, encode_date_time

_WM = "2a9d"

# Flags field (GSS Weight Measurement / WSS 3.2); bits 4-7 are reserved for future use
# and ignored so that a future flag does not make today's decoder reject a reading.
_FLAG_IMPERIAL = 0x01  # bit 0: Measurement Units (0 = SI: kg and m, 1 = Imperial: lb and in)
_FLAG_TIME_STAMP = 0x02  # bit 1: Time Stamp present
_FLAG_USER_ID = 0x04  # bit 2: User ID present
_FLAG_BMI_AND_HEIGHT = 0x08  # bit 3: BMI and Height present

# Weight field (GSS Weight Measurement): uint16. WSS 3.2: the special value 0xFFFF means
# "Measurement Unsuccessful" (WSS also says the other optional fields except Time Stamp
# and User ID shall then be absent; we do not enforce that, we decode what the flags say).
_WEIGHT_UNSUCCESSFUL = 0xFFFF
_MEASUREMENT_UNSUCCESSFUL = "measurement_unsuccessful"
_UINT16_MAX = 0xFFFF

# Fixed resolutions as (units per raw step, decimals to round to). Computed through
# an integer divisor so 14001 * 0.005 decodes to 70.005, not 70.00500000000001.
_WEIGHT_KG = (200, 3)  # Weight, SI: resolution 0.005 kg
_WEIGHT_LB = (100, 2)  # Weight, Imperial: resolution 0.01 lb
_BMI = (10, 1)  # BMI: resolution 0.1 kg/m2 (same in both unit systems)
_HEIGHT_M = (1000, 3)  # Height, SI: resolution 0.001 m
_HEIGHT_IN = (10, 1)  # Height, Imperial: resolution 0.1 in

# User ID (GSS Weight Measurement): uint8; 0xFF is the SIG "unknown user", kept as 255.


class WeightUnit(StrEnum):
    # Matches contract/payloads.py WeightPayload.unit.
    KG = "kg"
    LB = "lb"


class HeightUnit(StrEnum):
    M = "m"
    IN = "in"


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    weight: float | None  # None for 0xFFFF "measurement unsuccessful"; see special_values
    unit: WeightUnit
    # Naive: the scale's own clock with no zone (GSS Date Time); None if the flag is
    # clear or the scale says year/month/day 0 = "not known".
    timestamp: datetime | None = None
    # None means the User ID field was absent; 255 is the SIG "unknown user".
    user_id: int | None = None
    bmi: float | None = None  # kg/m2
    height: float | None = None
    height_unit: HeightUnit | None = None  # None exactly when height is absent
    # field name -> special value name, e.g. {"weight": "measurement_unsuccessful"}.
    # hash=False: a mapping is not hashable, but equality still compares it.
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Freeze whatever mapping the caller passed so the dataclass stays immutable.
        object.__setattr__(self, "special_values", MappingProxyType(dict(self.special_values)))


def _scale(raw: int, resolution: tuple[int, int]) -> float:
    divisor, decimals = resolution
    return round(raw / divisor, decimals)


def decode_weight_measurement(data: bytes) -> WeightMeasurement:
    """Decode a Weight Measurement (0x2A9D) value (GSS Weight Measurement, WSS 3.2)."""
    reader = FieldReader(data, _WM)
    flags = reader.uint8("flags", mandatory=True)
    imperial = bool(flags & _FLAG_IMPERIAL)
    raw_weight = reader.uint16("weight", mandatory=True)
    if raw_weight == _WEIGHT_UNSUCCESSFUL:
        weight = None
        reader.special_values["weight"] = _MEASUREMENT_UNSUCCESSFUL
    else:
        weight = _scale(raw_weight, _WEIGHT_LB if imperial else _WEIGHT_KG)
    timestamp = reader.date_time("time_stamp") if flags & _FLAG_TIME_STAMP else None
    user_id = reader.uint8("user_id") if flags & _FLAG_USER_ID else None
    bmi: float | None = None
    height: float | None = None
    height_unit: HeightUnit | None = None
    if flags & _FLAG_BMI_AND_HEIGHT:
        bmi = _scale(reader.uint16("bmi"), _BMI)
        height = _scale(reader.uint16("height"), _HEIGHT_IN if imperial else _HEIGHT_M)
        height_unit = HeightUnit.IN if imperial else HeightUnit.M
    # Trailing bytes are accepted and ignored, for the same reason as blood_pressure.py:
    # later spec versions append fields and some devices pad notifications.
    return WeightMeasurement(
        weight=weight,
        unit=WeightUnit.LB if imperial else WeightUnit.KG,
        timestamp=timestamp,
        user_id=user_id,
        bmi=bmi,
        height=height,
        height_unit=height_unit,
        special_values=reader.special_values,
    )


def _raw(field_name: str, value: float, resolution: tuple[int, int], maximum: int) -> bytes:
    divisor, _ = resolution
    scaled = value * divisor
    raw = round(scaled)
    if abs(scaled - raw) > 1e-6 * max(1.0, abs(scaled)):
        raise ValueError(f"{field_name}={value} is not a multiple of the resolution 1/{divisor}")
    if not 0 <= raw <= maximum:
        raise ValueError(f"{field_name}={value} is outside the uint16 range of the field")
    return raw.to_bytes(2, "little")


def encode_weight_measurement(m: WeightMeasurement) -> bytes:
    """Encode ``m`` per GSS Weight Measurement (for the simulator and round-trip tests).

    A None weight is sent as 0xFFFF "measurement unsuccessful". BMI and height travel
    together (one flag), so giving only one of them is a ValueError, as is a height
    unit that does not match the weight's unit system.
    """
    imperial = m.unit is WeightUnit.LB
    flags = _FLAG_IMPERIAL if imperial else 0
    if m.weight is None:
        body = _WEIGHT_UNSUCCESSFUL.to_bytes(2, "little")
    else:
        # 0xFFFF is the special value, so the largest real weight is 0xFFFE steps.
        body = _raw("weight", m.weight, _WEIGHT_LB if imperial else _WEIGHT_KG, _UINT16_MAX - 1)
    if m.timestamp is not None:
        flags |= _FLAG_TIME_STAMP
        body += encode_date_time(m.timestamp)
    if m.user_id is not None:
        flags |= _FLAG_USER_ID
        body += bytes([m.user_id])
    if m.bmi is not None or m.height is not None:
        if m.bmi is None or m.height is None:
            raise ValueError("BMI and height share one flag: give both or neither")
        expected_unit = HeightUnit.IN if imperial else HeightUnit.M
        if m.height_unit is not None and m.height_unit is not expected_unit:
            raise ValueError(f"height_unit {m.height_unit} does not match weight unit {m.unit}")
        flags |= _FLAG_BMI_AND_HEIGHT
        body += _raw("bmi", m.bmi, _BMI, _UINT16_MAX)
        body += _raw("height", m.height, _HEIGHT_IN if imperial else _HEIGHT_M, _UINT16_MAX)
    return bytes([flags]) + body


def to_json_dict(m: WeightMeasurement) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case."""
    return {
        "weight": m.weight,
        "unit": m.unit.value,
        "timestamp": m.timestamp.isoformat() if m.timestamp is not None else None,
        "user_id": m.user_id,
        "bmi": m.bmi,
        "height": m.height,
        "height_unit": m.height_unit.value if m.height_unit is not None else None,
        "special_values": dict(m.special_values),
    }
