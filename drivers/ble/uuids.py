"""Bluetooth SIG assigned numbers used by the drivers, as bleak-style 128-bit UUIDs.

16-bit SIG UUIDs expand onto the Bluetooth Base UUID
(Core Spec Vol 3, Part B, 2.5.1); bleak reports and compares the full
lowercase form, so that is what we keep.
"""

from __future__ import annotations

_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def full_uuid(short: int) -> str:
    """Expand a 16-bit SIG UUID to the 128-bit lowercase string bleak uses."""
    if not 0 <= short <= 0xFFFF:
        raise ValueError(f"not a 16-bit UUID: {short:#x}")
    return f"0000{short:04x}{_BASE_SUFFIX}"


def short_form(uuid: str) -> str | None:
    """``"00002a35-0000-..."`` -> ``"2a35"``; None for non-SIG (vendor) UUIDs."""
    lowered = uuid.lower()
    if len(lowered) == 36 and lowered.startswith("0000") and lowered.endswith(_BASE_SUFFIX):
        return lowered[4:8]
    return None


# Services (Assigned Numbers 3.4)
CURRENT_TIME_SERVICE = full_uuid(0x1805)
BATTERY_SERVICE = full_uuid(0x180F)
GLUCOSE_SERVICE = full_uuid(0x1808)
HEALTH_THERMOMETER_SERVICE = full_uuid(0x1809)
DEVICE_INFORMATION = full_uuid(0x180A)
BLOOD_PRESSURE_SERVICE = full_uuid(0x1810)
WEIGHT_SCALE_SERVICE = full_uuid(0x181D)
PULSE_OXIMETER_SERVICE = full_uuid(0x1822)

# Characteristics (Assigned Numbers 3.8)
BLOOD_PRESSURE_MEASUREMENT = full_uuid(0x2A35)
INTERMEDIATE_CUFF_PRESSURE = full_uuid(0x2A36)
BLOOD_PRESSURE_FEATURE = full_uuid(0x2A49)
DATE_TIME = full_uuid(0x2A08)
CURRENT_TIME = full_uuid(0x2A2B)
BATTERY_LEVEL = full_uuid(0x2A19)
GLUCOSE_MEASUREMENT = full_uuid(0x2A18)
GLUCOSE_MEASUREMENT_CONTEXT = full_uuid(0x2A34)
GLUCOSE_FEATURE = full_uuid(0x2A51)
RECORD_ACCESS_CONTROL_POINT = full_uuid(0x2A52)
TEMPERATURE_MEASUREMENT = full_uuid(0x2A1C)
WEIGHT_MEASUREMENT = full_uuid(0x2A9D)
WEIGHT_SCALE_FEATURE = full_uuid(0x2A9E)
PLX_SPOT_CHECK_MEASUREMENT = full_uuid(0x2A5E)
PLX_CONTINUOUS_MEASUREMENT = full_uuid(0x2A5F)
PLX_FEATURES = full_uuid(0x2A60)
MANUFACTURER_NAME_STRING = full_uuid(0x2A29)
MODEL_NUMBER_STRING = full_uuid(0x2A24)

# Descriptors
CLIENT_CHARACTERISTIC_CONFIGURATION = full_uuid(0x2902)
