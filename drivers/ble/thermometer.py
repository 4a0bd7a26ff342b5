"""Temperature Measurement (0x2A1C).

Pure codec: bytes in, typed reading (or :class:`DecodeError`) out.
Layout: Bluetooth SIG GATT Specification Supplement (GSS) "Temperature Measurement"
(3.216 in the GSS revision cited by StanfordSpezi/SpeziBluetooth; section numbers shift
between GSS revisions) and "Temperature Type" (GSS 3.219), as used by the Health
Thermometer Service (HTS) 1.0 sections 3.1 and 3.2. The temperature is the 32-bit
IEEE 11073-20601 FLOAT (Annex F.8), *not* the 16-bit SFLOAT of blood pressure.

Verified (search, 2024 sources): flag bits 0-2, FLOAT value at offset 1, Date Time then
Temperature Type order, and type codes 1..9 against StanfordSpezi/SpeziBluetooth
(TemperatureMeasurement.swift, TemperatureType.swift), Nordic nRF5 SDK ``ble_hts_meas_t``
docs, Mbed OS HealthThermometerService.h and the BlueZ ThermometerWatcher API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from drivers.ble.fields import FieldReader, encode_date_time, encode_float_field

_TM = "2a1c"

# Flags field (GSS Temperature Measurement / HTS 3.1); bits 3-7 are reserved for future
# use and ignored so that a future flag does not make today's decoder reject a reading.
_FLAG_FAHRENHEIT = 0x01  # bit 0: Temperature Units Flag (0 = Celsius, 1 = Fahrenheit)
_FLAG_TIME_STAMP = 0x02  # bit 1: Time Stamp Flag
_FLAG_TEMPERATURE_TYPE = 0x04  # bit 2: Temperature Type Flag

class TemperatureUnit(StrEnum):
    # UCUM codes, matching contract/payloads.py TemperaturePayload.unit.
    CELSIUS = "Cel"
    FAHRENHEIT = "degF"


class TemperatureType(StrEnum):
    """GSS Temperature Type (3.219) / HTS 3.2: where on the body the reading was taken."""

    ARMPIT = "armpit"
    BODY = "body"  # "Body (general)"
    EAR = "ear"  # "Ear (usually earlobe)"
    FINGER = "finger"
    GASTRO_INTESTINAL_TRACT = "gastro_intestinal_tract"
    MOUTH = "mouth"
    RECTUM = "rectum"
    TOE = "toe"
    TYMPANUM = "tympanum"  # "Tympanum (ear drum)"


# Temperature Type uint8 (GSS 3.219): 0 and 10-255 are reserved for future use and
# decode to None (no claim about the site) rather than failing the whole reading.
_TYPE_BY_CODE: dict[int, TemperatureType] = {
    1: TemperatureType.ARMPIT,
    2: TemperatureType.BODY,
    3: TemperatureType.EAR,
    4: TemperatureType.FINGER,
    5: TemperatureType.GASTRO_INTESTINAL_TRACT,
    6: TemperatureType.MOUTH,
    7: TemperatureType.RECTUM,
    8: TemperatureType.TOE,
    9: TemperatureType.TYMPANUM,
}
_CODE_BY_TYPE: dict[TemperatureType, int] = {v: k for k, v in _TYPE_BY_CODE.items()}


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    temperature: float | None  # None when a special value was sent; see special_values
    unit: TemperatureUnit
    # Naive: the thermometer's own clock with no zone (GSS Date Time); None if the flag
    # is clear or the device says year/month/day 0 = "not known".
    timestamp: datetime | None = None
    # None if the field was absent or carried a reserved code.
    temperature_type: TemperatureType | None = None
    # field name -> SpecialValue string, e.g. {"temperature": "nan"}.
    # hash=False: a mapping is not hashable, but equality still compares it.
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Freeze whatever mapping the caller passed so the dataclass stays immutable.
        object.__setattr__(self, "special_values", MappingProxyType(dict(self.special_values)))


def decode_temperature_measurement(data: bytes) -> TemperatureMeasurement:
    """Decode a Temperature Measurement (0x2A1C) value (GSS Temperature Measurement, HTS 3.1)."""
    reader = FieldReader(data, _TM)
    flags = reader.uint8("flags", mandatory=True)
    # Temperature Measurement Value: FLOAT, always present (GSS / HTS 3.1).
    temperature = reader.float32("temperature", mandatory=True)
    timestamp = reader.date_time("time_stamp") if flags & _FLAG_TIME_STAMP else None
    temperature_type = (
        _TYPE_BY_CODE.get(reader.uint8("temperature_type")) if flags & _FLAG_TEMPERATURE_TYPE else None
    )
    # Trailing bytes are accepted and ignored, for the same reason as blood_pressure.py:
    # later spec versions append fields and some devices pad notifications.
    return TemperatureMeasurement(
        temperature=temperature,
        unit=TemperatureUnit.FAHRENHEIT if flags & _FLAG_FAHRENHEIT else TemperatureUnit.CELSIUS,
        timestamp=timestamp,
        temperature_type=temperature_type,
        special_values=reader.special_values,
    )


def encode_temperature_measurement(m: TemperatureMeasurement) -> bytes:
    """Encode ``m`` per GSS Temperature Measurement (for the simulator and round-trip tests).

    A None temperature is sent as its ``special_values`` entry, NaN by default.
    An absent timestamp or temperature type clears its flag.
    """
    flags = _FLAG_FAHRENHEIT if m.unit is TemperatureUnit.FAHRENHEIT else 0
    body = encode_float_field(m.temperature, "temperature", m.special_values)
    if m.timestamp is not None:
        flags |= _FLAG_TIME_STAMP
        body += encode_date_time(m.timestamp)
    if m.temperature_type is not None:
        flags |= _FLAG_TEMPERATURE_TYPE
        body += bytes([_CODE_BY_TYPE[m.temperature_type]])
    return bytes([flags]) + body


def to_json_dict(m: TemperatureMeasurement) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case."""
    return {
        "temperature": m.temperature,
        "unit": m.unit.value,
        "timestamp": m.timestamp.isoformat() if m.timestamp is not None else None,
        "temperature_type": m.temperature_type.value if m.temperature_type is not None else None,
        "special_values": dict(m.special_values),
    }
