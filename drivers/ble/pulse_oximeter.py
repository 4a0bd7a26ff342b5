"""PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F).

Pure codec: bytes in, typed reading (or :class:`DecodeError`) out.
Layout: Bluetooth SIG GATT Specification Supplement (GSS) "PLX Spot-check Measurement"
and "PLX Continuous Measurement", as used by the Pulse Oximeter Service (PLXS) 1.0
sections 3.1 and 3.2. SpO2 (%), pulse rate (bpm) and the pulse amplitude index (%) are
IEEE 11073-20601 SFLOAT (Annex F.8); all multi-byte fields are little-endian.

Verified (search): both flag layouts, field orders, the Measurement Status bits 5-15 and
the Device and Sensor Status bits 0-15 against StanfordSpezi/SpeziBluetooth
(PLXSpotCheckMeasurement.swift, PLXContinuousMeasurement.swift) and, independently, a
vendor PLXS header (Renesas/Dialog-style ``PLXS_MEAS_STATUS_*`` / ``PLXS_DEV_SEN_STATUS_*``
defines); RivieraWaves plxp_common.h agrees that only bits 5-15 of Measurement Status are
defined (``PLXP_MEAS_STATUS_VALID_MASK 0xFFE0``). Note: RonanB96/bluetooth-sig-python
gives spot-check flag bit 0 as "SpO2PR-Fast"; that is the *continuous* layout and disagrees
with both other sources, so it was not followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from drivers.ble.fields import FieldReader, encode_date_time, encode_sfloat_field

_T = TypeVar("_T", bound=StrEnum)

_SPOT = "2a5e"
_CONTINUOUS = "2a5f"

# PLX Spot-check Measurement Flags (GSS / PLXS 3.1), uint8; bits 5-7 reserved, ignored.
_SPOT_FLAG_TIMESTAMP = 0x01  # bit 0: Timestamp field is present
_SPOT_FLAG_MEASUREMENT_STATUS = 0x02  # bit 1: Measurement Status field is present
_SPOT_FLAG_DEVICE_AND_SENSOR_STATUS = 0x04  # bit 2: Device and Sensor Status field is present
_SPOT_FLAG_PULSE_AMPLITUDE_INDEX = 0x08  # bit 3: Pulse Amplitude Index field is present
_SPOT_FLAG_DEVICE_CLOCK_NOT_SET = 0x10  # bit 4: Device Clock is Not Set

# PLX Continuous Measurement Flags (GSS / PLXS 3.2), uint8; bits 5-7 reserved, ignored.
_CONT_FLAG_FAST = 0x01  # bit 0: SpO2PR-Fast field is present
_CONT_FLAG_SLOW = 0x02  # bit 1: SpO2PR-Slow field is present
_CONT_FLAG_MEASUREMENT_STATUS = 0x04  # bit 2: Measurement Status field is present
_CONT_FLAG_DEVICE_AND_SENSOR_STATUS = 0x08  # bit 3: Device and Sensor Status field is present
_CONT_FLAG_PULSE_AMPLITUDE_INDEX = 0x10  # bit 4: Pulse Amplitude Index field is present


class PlxMeasurementStatus(StrEnum):
    """Measurement Status field (GSS PLX Spot-check / Continuous Measurement; PLXS 3.1, 3.2), uint16; bits 0-4 reserved, ignored."""

    MEASUREMENT_ONGOING = "measurement_ongoing"  # bit 5
    EARLY_ESTIMATED_DATA = "early_estimated_data"  # bit 6
    VALIDATED_DATA = "validated_data"  # bit 7
    FULLY_QUALIFIED_DATA = "fully_qualified_data"  # bit 8
    DATA_FROM_MEASUREMENT_STORAGE = "data_from_measurement_storage"  # bit 9
    DATA_FOR_DEMONSTRATION = "data_for_demonstration"  # bit 10
    DATA_FOR_TESTING = "data_for_testing"  # bit 11
    CALIBRATION_ONGOING = "calibration_ongoing"  # bit 12
    MEASUREMENT_UNAVAILABLE = "measurement_unavailable"  # bit 13
    QUESTIONABLE_MEASUREMENT_DETECTED = "questionable_measurement_detected"  # bit 14
    INVALID_MEASUREMENT_DETECTED = "invalid_measurement_detected"  # bit 15


class PlxDeviceAndSensorStatus(StrEnum):
    """Device and Sensor Status field (GSS PLX Spot-check / Continuous Measurement; PLXS 3.1, 3.2).

    uint24; bits 16-23 are reserved for future use and ignored.
    """

    EXTENDED_DISPLAY_UPDATE_ONGOING = "extended_display_update_ongoing"  # bit 0
    EQUIPMENT_MALFUNCTION_DETECTED = "equipment_malfunction_detected"  # bit 1
    SIGNAL_PROCESSING_IRREGULARITY_DETECTED = "signal_processing_irregularity_detected"  # bit 2
    INADEQUATE_SIGNAL_DETECTED = "inadequate_signal_detected"  # bit 3
    POOR_SIGNAL_DETECTED = "poor_signal_detected"  # bit 4
    LOW_PERFUSION_DETECTED = "low_perfusion_detected"  # bit 5
    ERRATIC_SIGNAL_DETECTED = "erratic_signal_detected"  # bit 6
    NON_PULSATILE_SIGNAL_DETECTED = "non_pulsatile_signal_detected"  # bit 7
    QUESTIONABLE_PULSE_DETECTED = "questionable_pulse_detected"  # bit 8
    SIGNAL_ANALYSIS_ONGOING = "signal_analysis_ongoing"  # bit 9
    SENSOR_INTERFERENCE_DETECTED = "sensor_interference_detected"  # bit 10
    SENSOR_UNCONNECTED_TO_USER = "sensor_unconnected_to_user"  # bit 11
    UNKNOWN_SENSOR_CONNECTED = "unknown_sensor_connected"  # bit 12
    SENSOR_DISPLACED = "sensor_displaced"  # bit 13
    SENSOR_MALFUNCTIONING = "sensor_malfunctioning"  # bit 14
    SENSOR_DISCONNECTED = "sensor_disconnected"  # bit 15


_MEASUREMENT_STATUS_FIRST_BIT = 5
# Bit -> member, in bit order (= canonical tuple order).
_MEASUREMENT_STATUS_BITS: tuple[tuple[int, PlxMeasurementStatus], ...] = tuple(
    (1 << (_MEASUREMENT_STATUS_FIRST_BIT + i), member) for i, member in enumerate(PlxMeasurementStatus)
)
_DEVICE_STATUS_BITS: tuple[tuple[int, PlxDeviceAndSensorStatus], ...] = tuple(
    (1 << i, member) for i, member in enumerate(PlxDeviceAndSensorStatus)
)


def _bits_to_members(raw: int, table: tuple[tuple[int, _T], ...]) -> tuple[_T, ...]:
    return tuple(member for bit, member in table if raw & bit)


def _members_to_bits(members: tuple[_T, ...], table: tuple[tuple[int, _T], ...]) -> int:
    raw = 0
    for bit, member in table:
        if member in members:
            raw |= bit
    return raw


def _freeze(specials: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(specials))


@dataclass(frozen=True, slots=True)
class PlxSpotCheckMeasurement:
    spo2: float | None  # %; None when a special value was sent; see special_values
    pulse_rate: float | None  # beats per minute
    # Naive: the oximeter's own clock with no zone (GSS Date Time); None if the flag is
    # clear or the device says year/month/day 0 = "not known".
    timestamp: datetime | None = None
    # () if the field was absent or no defined bit was set.
    measurement_status: tuple[PlxMeasurementStatus, ...] = ()
    device_and_sensor_status: tuple[PlxDeviceAndSensorStatus, ...] = ()
    pulse_amplitude_index: float | None = None  # %
    # Flags bit 4: the timestamp comes from a clock nobody set, so treat it with suspicion.
    device_clock_not_set: bool = False
    # field name -> SpecialValue string, e.g. {"spo2": "nan"}.
    # hash=False: a mapping is not hashable, but equality still compares it.
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Freeze whatever mapping the caller passed so the dataclass stays immutable.
        object.__setattr__(self, "special_values", _freeze(self.special_values))


@dataclass(frozen=True, slots=True)
class PlxContinuousMeasurement:
    # SpO2PR-Normal, always present.
    spo2: float | None
    pulse_rate: float | None
    # SpO2PR-Fast / SpO2PR-Slow: None when the pair is absent (or a special value was sent).
    spo2_fast: float | None = None
    pulse_rate_fast: float | None = None
    spo2_slow: float | None = None
    pulse_rate_slow: float | None = None
    measurement_status: tuple[PlxMeasurementStatus, ...] = ()
    device_and_sensor_status: tuple[PlxDeviceAndSensorStatus, ...] = ()
    pulse_amplitude_index: float | None = None
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "special_values", _freeze(self.special_values))


def _read_statuses(
    reader: FieldReader, flags: int, status_flag: int, device_flag: int
) -> tuple[tuple[PlxMeasurementStatus, ...], tuple[PlxDeviceAndSensorStatus, ...]]:
    measurement_status = (
        _bits_to_members(reader.uint16("measurement_status"), _MEASUREMENT_STATUS_BITS)
        if flags & status_flag
        else ()
    )
    device_and_sensor_status = (
        _bits_to_members(reader.uint24("device_and_sensor_status"), _DEVICE_STATUS_BITS)
        if flags & device_flag
        else ()
    )
    return measurement_status, device_and_sensor_status


def decode_plx_spot_check_measurement(data: bytes) -> PlxSpotCheckMeasurement:
    """Decode a PLX Spot-check Measurement (0x2A5E) value (GSS, PLXS 3.1)."""
    reader = FieldReader(data, _SPOT)
    flags = reader.uint8("flags", mandatory=True)
    # SpO2PR-Spot-Check: SpO2 then PR, both SFLOAT, always present.
    spo2 = reader.sfloat("spo2", mandatory=True)
    pulse_rate = reader.sfloat("pulse_rate", mandatory=True)
    timestamp = reader.date_time("timestamp") if flags & _SPOT_FLAG_TIMESTAMP else None
    measurement_status, device_and_sensor_status = _read_statuses(
        reader, flags, _SPOT_FLAG_MEASUREMENT_STATUS, _SPOT_FLAG_DEVICE_AND_SENSOR_STATUS
    )
    pulse_amplitude_index = (
        reader.sfloat("pulse_amplitude_index") if flags & _SPOT_FLAG_PULSE_AMPLITUDE_INDEX else None
    )
    # Trailing bytes are accepted and ignored, for the same reason as blood_pressure.py.
    return PlxSpotCheckMeasurement(
        spo2=spo2,
        pulse_rate=pulse_rate,
        timestamp=timestamp,
        measurement_status=measurement_status,
        device_and_sensor_status=device_and_sensor_status,
        pulse_amplitude_index=pulse_amplitude_index,
        device_clock_not_set=bool(flags & _SPOT_FLAG_DEVICE_CLOCK_NOT_SET),
        special_values=reader.special_values,
    )


def decode_plx_continuous_measurement(data: bytes) -> PlxContinuousMeasurement:
    """Decode a PLX Continuous Measurement (0x2A5F) value (GSS, PLXS 3.2)."""
    reader = FieldReader(data, _CONTINUOUS)
    flags = reader.uint8("flags", mandatory=True)
    # SpO2PR-Normal: SpO2 then PR, both SFLOAT, always present.
    spo2 = reader.sfloat("spo2", mandatory=True)
    pulse_rate = reader.sfloat("pulse_rate", mandatory=True)
    spo2_fast = pulse_rate_fast = spo2_slow = pulse_rate_slow = None
    if flags & _CONT_FLAG_FAST:  # SpO2PR-Fast: SpO2 then PR
        spo2_fast = reader.sfloat("spo2_fast")
        pulse_rate_fast = reader.sfloat("pulse_rate_fast")
    if flags & _CONT_FLAG_SLOW:  # SpO2PR-Slow: SpO2 then PR
        spo2_slow = reader.sfloat("spo2_slow")
        pulse_rate_slow = reader.sfloat("pulse_rate_slow")
    measurement_status, device_and_sensor_status = _read_statuses(
        reader, flags, _CONT_FLAG_MEASUREMENT_STATUS, _CONT_FLAG_DEVICE_AND_SENSOR_STATUS
    )
    pulse_amplitude_index = (
        reader.sfloat("pulse_amplitude_index") if flags & _CONT_FLAG_PULSE_AMPLITUDE_INDEX else None
    )
    return PlxContinuousMeasurement(
        spo2=spo2,
        pulse_rate=pulse_rate,
        spo2_fast=spo2_fast,
        pulse_rate_fast=pulse_rate_fast,
        spo2_slow=spo2_slow,
        pulse_rate_slow=pulse_rate_slow,
        measurement_status=measurement_status,
        device_and_sensor_status=device_and_sensor_status,
        pulse_amplitude_index=pulse_amplitude_index,
        special_values=reader.special_values,
    )


def _present(specials: Mapping[str, str], *pairs: tuple[str, float | None]) -> bool:
    return any(value is not None or name in specials for name, value in pairs)


def _encode_tail(
    specials: Mapping[str, str],
    measurement_status: tuple[PlxMeasurementStatus, ...],
    device_and_sensor_status: tuple[PlxDeviceAndSensorStatus, ...],
    pulse_amplitude_index: float | None,
    flag_bits: tuple[int, int, int],
) -> tuple[int, bytes]:
    status_flag, device_flag, pai_flag = flag_bits
    flags, body = 0, b""
    if measurement_status:
        flags |= status_flag
        body += _members_to_bits(measurement_status, _MEASUREMENT_STATUS_BITS).to_bytes(2, "little")
    if device_and_sensor_status:
        flags |= device_flag
        body += _members_to_bits(device_and_sensor_status, _DEVICE_STATUS_BITS).to_bytes(3, "little")
    if _present(specials, ("pulse_amplitude_index", pulse_amplitude_index)):
        flags |= pai_flag
        body += encode_sfloat_field(pulse_amplitude_index, "pulse_amplitude_index", specials)
    return flags, body


def encode_plx_spot_check_measurement(m: PlxSpotCheckMeasurement) -> bytes:
    """Encode ``m`` per GSS PLX Spot-check Measurement (for the simulator and round trips).

    A None SFLOAT field is sent as its ``special_values`` entry, NaN by default; an
    optional one is sent only if it has a value or a special value. Empty status
    tuples clear their flags.
    """
    s = m.special_values
    flags = _SPOT_FLAG_DEVICE_CLOCK_NOT_SET if m.device_clock_not_set else 0
    body = encode_sfloat_field(m.spo2, "spo2", s) + encode_sfloat_field(m.pulse_rate, "pulse_rate", s)
    if m.timestamp is not None:
        flags |= _SPOT_FLAG_TIMESTAMP
        body += encode_date_time(m.timestamp)
    tail_flags, tail = _encode_tail(
        s,
        m.measurement_status,
        m.device_and_sensor_status,
        m.pulse_amplitude_index,
        (_SPOT_FLAG_MEASUREMENT_STATUS, _SPOT_FLAG_DEVICE_AND_SENSOR_STATUS, _SPOT_FLAG_PULSE_AMPLITUDE_INDEX),
    )
    return bytes([flags | tail_flags]) + body + tail


def encode_plx_continuous_measurement(m: PlxContinuousMeasurement) -> bytes:
    """Encode ``m`` per GSS PLX Continuous Measurement (for the simulator and round trips).

    A Fast or Slow pair is sent if either of its two values (or special values) is set;
    the other half is then sent as its special value, NaN by default.
    """
    s = m.special_values
    flags = 0
    body = encode_sfloat_field(m.spo2, "spo2", s) + encode_sfloat_field(m.pulse_rate, "pulse_rate", s)
    if _present(s, ("spo2_fast", m.spo2_fast), ("pulse_rate_fast", m.pulse_rate_fast)):
        flags |= _CONT_FLAG_FAST
        body += encode_sfloat_field(m.spo2_fast, "spo2_fast", s) + encode_sfloat_field(m.pulse_rate_fast, "pulse_rate_fast", s)
    if _present(s, ("spo2_slow", m.spo2_slow), ("pulse_rate_slow", m.pulse_rate_slow)):
        flags |= _CONT_FLAG_SLOW
        body += encode_sfloat_field(m.spo2_slow, "spo2_slow", s) + encode_sfloat_field(m.pulse_rate_slow, "pulse_rate_slow", s)
    tail_flags, tail = _encode_tail(
        s,
        m.measurement_status,
        m.device_and_sensor_status,
        m.pulse_amplitude_index,
        (_CONT_FLAG_MEASUREMENT_STATUS, _CONT_FLAG_DEVICE_AND_SENSOR_STATUS, _CONT_FLAG_PULSE_AMPLITUDE_INDEX),
    )
    return bytes([flags | tail_flags]) + body + tail


def to_json_dict(m: PlxSpotCheckMeasurement | PlxContinuousMeasurement) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case."""
    if isinstance(m, PlxSpotCheckMeasurement):
        return {
            "spo2": m.spo2,
            "pulse_rate": m.pulse_rate,
            "timestamp": m.timestamp.isoformat() if m.timestamp is not None else None,
            "measurement_status": [s.value for s in m.measurement_status],
            "device_and_sensor_status": [s.value for s in m.device_and_sensor_status],
            "pulse_amplitude_index": m.pulse_amplitude_index,
            "device_clock_not_set": m.device_clock_not_set,
            "special_values": dict(m.special_values),
        }
    return {
        "spo2": m.spo2,
        "pulse_rate": m.pulse_rate,
        "spo2_fast": m.spo2_fast,
        "pulse_rate_fast": m.pulse_rate_fast,
        "spo2_slow": m.spo2_slow,
        "pulse_rate_slow": m.pulse_rate_slow,
        "measurement_status": [s.value for s in m.measurement_status],
        "device_and_sensor_status": [s.value for s in m.device_and_sensor_status],
        "pulse_amplitude_index": m.pulse_amplitude_index,
        "special_values": dict(m.special_values),
    }
