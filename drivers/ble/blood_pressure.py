"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).

Pure codec: bytes in, typed reading (or :class:`DecodeError`) out.
Layout: Bluetooth SIG GATT Specification Supplement (GSS) 3.31 "Blood Pressure
Measurement" and 3.126 "Intermediate Cuff Pressure" (org.bluetooth.characteristic.
intermediate_cuff_pressure; same structure), as used by the Blood Pressure Service
(BLS) 1.1 sections 3.1 and 3.2. In 0x2A36 the GSS uses the Systolic sub-field for
the "Current Cuff Pressure" and leaves Diastolic and Mean Arterial Pressure
unused, so it decodes to its own type, IntermediateCuffPressure, whose value is
named `current_cuff_pressure`: a cuff's 4 mmHg while it starts to inflate is not
a finished measurement with a systolic of 4. Numbers are
IEEE 11073-20601 SFLOAT (Annex F.8), all multi-byte fields little-endian
as in the GSS field tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from drivers.ble.fields import ByteOrder, FieldReader, encode_date_time, encode_sfloat_field

_BPM = "2a35"
_ICP = "2a36"

# Flags field (GSS 3.31 / BLS 3.1); bits 5-7 are reserved for future use and
# ignored so that a future flag does not make today's decoder reject a reading.
_FLAG_KPA = 0x01  # bit 0: Blood Pressure Units Flag (0 = mmHg, 1 = kPa)
_FLAG_TIME_STAMP = 0x02  # bit 1: Time Stamp Flag
_FLAG_PULSE_RATE = 0x04  # bit 2: Pulse Rate Flag
_FLAG_USER_ID = 0x08  # bit 3: User ID Flag
_FLAG_STATUS = 0x10  # bit 4: Measurement Status Flag

# Measurement Status field (GSS 3.31 / BLS 3.1), uint16.
_STATUS_BODY_MOVEMENT = 0x0001  # bit 0: Body Movement Detection
_STATUS_CUFF_TOO_LOOSE = 0x0002  # bit 1: Cuff Fit Detection (1 = too loose)
_STATUS_IRREGULAR_PULSE = 0x0004  # bit 2: Irregular Pulse Detection
_STATUS_PULSE_RANGE_SHIFT = 3  # bits 3-4: Pulse Rate Range Detection
_STATUS_PULSE_RANGE_MASK = 0x0018
_STATUS_IMPROPER_POSITION = 0x0020  # bit 5: Measurement Position Detection

_COMPOUND_FIELDS = ("systolic", "diastolic", "mean_arterial_pressure")
# The same three SFLOATs in 0x2A36: the current cuff pressure, then two unused (sent as NaN).
_ICP_COMPOUND_FIELDS = ("current_cuff_pressure", "unused_diastolic", "unused_mean_arterial_pressure")


class BloodPressureUnit(StrEnum):
    MMHG = "mmHg"
    KPA = "kPa"


class MeasurementStatus(StrEnum):
    BODY_MOVEMENT = "body_movement"
    CUFF_TOO_LOOSE = "cuff_too_loose"
    IRREGULAR_PULSE = "irregular_pulse"
    PULSE_RATE_EXCEEDS_UPPER_LIMIT = "pulse_rate_exceeds_upper_limit"
    PULSE_RATE_BELOW_LOWER_LIMIT = "pulse_rate_below_lower_limit"
    IMPROPER_MEASUREMENT_POSITION = "improper_measurement_position"


# Bits 3-4 value -> status; 0 is "within range" (no status), 3 is reserved (ignored).
_PULSE_RANGE: dict[int, MeasurementStatus] = {
    1: MeasurementStatus.PULSE_RATE_EXCEEDS_UPPER_LIMIT,
    2: MeasurementStatus.PULSE_RATE_BELOW_LOWER_LIMIT,
}
_SINGLE_BIT_STATUS: tuple[tuple[int, MeasurementStatus], ...] = (
    (_STATUS_BODY_MOVEMENT, MeasurementStatus.BODY_MOVEMENT),
    (_STATUS_CUFF_TOO_LOOSE, MeasurementStatus.CUFF_TOO_LOOSE),
    (_STATUS_IRREGULAR_PULSE, MeasurementStatus.IRREGULAR_PULSE),
    (_STATUS_IMPROPER_POSITION, MeasurementStatus.IMPROPER_MEASUREMENT_POSITION),
)

# Canonical order = bit order, so decoded tuples compare equal whatever the input order.
_STATUS_ORDER: tuple[MeasurementStatus, ...] = tuple(MeasurementStatus)



@dataclass(frozen=True, slots=True)
class BloodPressureDialect:
    """How a non-compliant cuff departs from GSS 3.31, declared in its profile in
    firmware_configs/ble/ so that the workaround is configuration, not code."""

    pulse_rate_byte_order: ByteOrder = "little"
    measurement_status_byte_order: ByteOrder = "little"
    # Sends a User ID byte after the pulse rate without setting flag bit 3.
    user_id_without_flag: bool = False


SIG_COMPLIANT = BloodPressureDialect()


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    unit: BloodPressureUnit
    systolic: float | None  # None when a special value was sent; see special_values
    diastolic: float | None
    mean_arterial_pressure: float | None
    # Naive: the cuff's own clock with no zone (GSS 3.70 Date Time); None if the
    # flag is clear or the cuff says year/month/day 0 = "not known".
    timestamp: datetime | None = None
    pulse_rate: float | None = None
    # 0xFF is the SIG-defined "unknown user" and is kept as 255 (GSS 3.31 User ID field);
    # None means the User ID field was absent.
    user_id: int | None = None
    status: tuple[MeasurementStatus, ...] = ()
    # field name -> SpecialValue string, e.g. {"mean_arterial_pressure": "nan"}.
    # hash=False: a mapping is not hashable, but equality still compares it.
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Freeze whatever mapping the caller passed so the dataclass stays immutable.
        object.__setattr__(self, "special_values", MappingProxyType(dict(self.special_values)))


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure:
    """An Intermediate Cuff Pressure (0x2A36) value: the cuff's pressure while a measurement
    is in progress, for display only (GSS: "used to send intermediate Cuff Pressure values to
    a device for display purposes while a measurement is in progress")."""

    unit: BloodPressureUnit
    current_cuff_pressure: float | None  # None when a special value was sent; see special_values
    timestamp: datetime | None = None
    pulse_rate: float | None = None
    user_id: int | None = None
    status: tuple[MeasurementStatus, ...] = ()
    # Only for current_cuff_pressure and pulse_rate: the unused fields' NaN is what the GSS asks.
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "special_values", MappingProxyType(dict(self.special_values)))


def _decode(
    data: bytes, characteristic: str, dialect: BloodPressureDialect, compound: tuple[str, str, str] = _COMPOUND_FIELDS
) -> BloodPressureMeasurement:
    reader = FieldReader(data, characteristic)
    flags = reader.uint8("flags", mandatory=True)
    # Compound value: Systolic, Diastolic, MAP, always present (GSS 3.31); named as the
    # characteristic names them, so a short 0x2A36 says 'current_cuff_pressure' missing.
    systolic, diastolic, mean_arterial_pressure = (
        reader.sfloat(name, mandatory=True) for name in compound
    )
    timestamp = reader.date_time("time_stamp") if flags & _FLAG_TIME_STAMP else None
    pulse_rate = (  # GSS 3.31 Pulse Rate
        reader.sfloat("pulse_rate", byteorder=dialect.pulse_rate_byte_order) if flags & _FLAG_PULSE_RATE else None
    )
    has_user_id = bool(flags & _FLAG_USER_ID) or dialect.user_id_without_flag
    user_id = reader.uint8("user_id") if has_user_id else None  # GSS 3.31 User ID
    status = (
        _decode_status(reader.uint16("measurement_status", byteorder=dialect.measurement_status_byte_order))
        if flags & _FLAG_STATUS
        else ()
    )
    # Trailing bytes are accepted and ignored: later spec versions append fields
    # after the known ones and some cuffs pad notifications; rejecting them would
    # throw away readings whose every promised field decoded cleanly.
    return BloodPressureMeasurement(
        unit=BloodPressureUnit.KPA if flags & _FLAG_KPA else BloodPressureUnit.MMHG,
        systolic=systolic,
        diastolic=diastolic,
        mean_arterial_pressure=mean_arterial_pressure,
        timestamp=timestamp,
        pulse_rate=pulse_rate,
        user_id=user_id,
        status=status,
        special_values=reader.special_values,
    )


def _decode_status(raw: int) -> tuple[MeasurementStatus, ...]:
    found = [status for bit, status in _SINGLE_BIT_STATUS if raw & bit]
    pulse_range = _PULSE_RANGE.get((raw & _STATUS_PULSE_RANGE_MASK) >> _STATUS_PULSE_RANGE_SHIFT)
    if pulse_range is not None:
        found.append(pulse_range)
    return tuple(sorted(found, key=_STATUS_ORDER.index))



def decode_blood_pressure_measurement(
    data: bytes, dialect: BloodPressureDialect = SIG_COMPLIANT
) -> BloodPressureMeasurement:
    """Decode a Blood Pressure Measurement (0x2A35) value (GSS 3.31)."""
    return _decode(data, _BPM, dialect)


def decode_intermediate_cuff_pressure(
    data: bytes, dialect: BloodPressureDialect = SIG_COMPLIANT
) -> IntermediateCuffPressure:
    """Decode an Intermediate Cuff Pressure (0x2A36) value.

    Same layout as 0x2A35 (GSS 3.126); the Systolic sub-field is the Current Cuff Pressure,
    and Diastolic and Mean Arterial Pressure are unused (sent as NaN, BLS 3.2), so they are
    not kept.
    """
    m = _decode(data, _ICP, dialect, _ICP_COMPOUND_FIELDS)
    kept = ("current_cuff_pressure", "pulse_rate")
    return IntermediateCuffPressure(
        unit=m.unit,
        current_cuff_pressure=m.systolic,
        timestamp=m.timestamp,
        pulse_rate=m.pulse_rate,
        user_id=m.user_id,
        status=m.status,
        special_values={name: value for name, value in m.special_values.items() if name in kept},
    )


def intermediate_cuff_pressure_to_json_dict(m: IntermediateCuffPressure) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case (`doorstep decode 2a36`)."""
    return {"unit": m.unit.value, "current_cuff_pressure": m.current_cuff_pressure, **_shared_fields_json(m)}


def _shared_fields_json(m: BloodPressureMeasurement | IntermediateCuffPressure) -> dict[str, Any]:
    """The fields 0x2A35 and 0x2A36 share after their pressures, in the order `decode` prints them."""
    return {
        "pulse_rate": m.pulse_rate,
        "user_id": m.user_id,
        "timestamp": m.timestamp.isoformat() if m.timestamp is not None else None,
        "status": [s.value for s in m.status],
        "special_values": dict(m.special_values),
    }


def _encode_status(status: tuple[MeasurementStatus, ...]) -> int:
    raw = 0
    for bit, member in _SINGLE_BIT_STATUS:
        if member in status:
            raw |= bit
    for range_value, member in _PULSE_RANGE.items():
        if member in status:
            raw |= range_value << _STATUS_PULSE_RANGE_SHIFT
    return raw


def encode_blood_pressure_measurement(
    m: BloodPressureMeasurement, dialect: BloodPressureDialect = SIG_COMPLIANT
) -> bytes:
    """Encode ``m`` per GSS 3.31 (for the simulator and round-trip tests), or as a
    non-compliant cuff of that ``dialect`` would.

    A None numeric field is sent as its ``special_values`` entry, NaN by default.
    An absent timestamp is sent only if never set (flag clear); the "unknown
    date" form is not produced.
    """
    flags = 0
    if m.unit is BloodPressureUnit.KPA:
        flags |= _FLAG_KPA
    body = b"".join(encode_sfloat_field(getattr(m, name), name, m.special_values) for name in _COMPOUND_FIELDS)
    if m.timestamp is not None:
        flags |= _FLAG_TIME_STAMP
        body += encode_date_time(m.timestamp)
    if m.pulse_rate is not None or "pulse_rate" in m.special_values:
        flags |= _FLAG_PULSE_RATE
        body += _byte_order(encode_sfloat_field(m.pulse_rate, "pulse_rate", m.special_values), dialect.pulse_rate_byte_order)
    if m.user_id is not None:
        if not dialect.user_id_without_flag:
            flags |= _FLAG_USER_ID
        body += bytes([m.user_id])
    if m.status:
        flags |= _FLAG_STATUS
        body += _encode_status(m.status).to_bytes(2, dialect.measurement_status_byte_order)
    return bytes([flags]) + body


def _byte_order(little_endian: bytes, byteorder: ByteOrder) -> bytes:
    return little_endian if byteorder == "little" else little_endian[::-1]


def to_json_dict(m: BloodPressureMeasurement) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case."""
    return {
        "unit": m.unit.value,
        "systolic": m.systolic,
        "diastolic": m.diastolic,
        "mean_arterial_pressure": m.mean_arterial_pressure,
        **_shared_fields_json(m),
    }
