"""Blood Pressure Feature (0x2A49).

Pure codec: bytes in, typed value (or :class:`DecodeError`) out.
Layout: Bluetooth SIG GATT Specification Supplement (GSS) "Blood Pressure Feature" (3.30
in the GSS revision cited by StanfordSpezi/SpeziBluetooth), as used by the Blood Pressure
Service (BLS) 1.1 section 3.3: a single uint16 bit field, little-endian.

Verified (search): bits 0-5 against StanfordSpezi/SpeziBluetooth (BloodPressureFeature.swift)
and RonanB96/bluetooth-sig-python (BloodPressureFeatures 0x01..0x20); bits 6-8 (added in
BLS 1.1) against SpeziBluetooth only: 6 E2E-CRC, 7 User Data Service, 8 User Facing Time.
Bits 9-15 are reserved for future use and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from drivers.ble.fields import FieldReader

_BPF = "2a49"


class BloodPressureFeatureSupport(StrEnum):
    BODY_MOVEMENT_DETECTION = "body_movement_detection"  # bit 0: Body Movement Detection Support
    CUFF_FIT_DETECTION = "cuff_fit_detection"  # bit 1: Cuff Fit Detection Support
    IRREGULAR_PULSE_DETECTION = "irregular_pulse_detection"  # bit 2: Irregular Pulse Detection Support
    PULSE_RATE_RANGE_DETECTION = "pulse_rate_range_detection"  # bit 3: Pulse Rate Range Detection Support
    MEASUREMENT_POSITION_DETECTION = "measurement_position_detection"  # bit 4: Measurement Position Detection Support
    MULTIPLE_BOND = "multiple_bond"  # bit 5: Multiple Bond Support
    E2E_CRC = "e2e_crc"  # bit 6: E2E-CRC Support (BLS 1.1)
    USER_DATA_SERVICE = "user_data_service"  # bit 7: User Data Service Supported (BLS 1.1)
    USER_FACING_TIME = "user_facing_time"  # bit 8: User Facing Time Supported (BLS 1.1)


# Bit -> member, in bit order (= canonical tuple order).
_FEATURE_BITS: tuple[tuple[int, BloodPressureFeatureSupport], ...] = tuple(
    (1 << i, member) for i, member in enumerate(BloodPressureFeatureSupport)
)


@dataclass(frozen=True, slots=True)
class BloodPressureFeature:
    supported: tuple[BloodPressureFeatureSupport, ...] = ()


def decode_blood_pressure_feature(data: bytes) -> BloodPressureFeature:
    """Decode a Blood Pressure Feature (0x2A49) value. Trailing bytes are ignored."""
    raw = FieldReader(data, _BPF).uint16("blood_pressure_feature", mandatory=True)
    return BloodPressureFeature(supported=tuple(member for bit, member in _FEATURE_BITS if raw & bit))


def encode_blood_pressure_feature(feature: BloodPressureFeature) -> bytes:
    """Encode ``feature`` as the uint16 bit field (for the simulator and round-trip tests)."""
    raw = 0
    for bit, member in _FEATURE_BITS:
        if member in feature.supported:
            raw |= bit
    return raw.to_bytes(2, "little")


def to_json_dict(feature: BloodPressureFeature) -> dict[str, Any]:
    """JSON-ready dict: ``supported`` lists the feature names in bit order."""
    return {"supported": [member.value for member in feature.supported]}
