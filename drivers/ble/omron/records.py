"""One stored Omron record <-> the reading model the SIG cuff produces (BloodPressureMeasurement).

Bit positions come from the model's layout (firmware_configs.omron_memory.OmronRecordLayout),
counted as omblepy counts them (sharedDriver.py ``_bytearrayBitsToInt``): the record read as one
integer in the model's byte order, bit 0 its most significant.
"""

from __future__ import annotations

from datetime import datetime

from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit, MeasurementStatus
from drivers.ble.errors import DecodeError
from firmware_configs.omron_memory import BitRange, OmronRecordLayout

CHARACTERISTIC = "omron-record"  # what DecodeError names in place of a SIG characteristic
EMPTY_BYTE = 0xFF  # a slot never written reads as all 0xFF (omblepy sharedDriver.py getRecords)
# "for some reason the second value can range up to 63" (omblepy deviceSpecific/*.py): kept as 59.
LAST_SECOND = 59


def _bits(value: int, size: int, bits: BitRange) -> int:
    first, last = bits
    return (value >> (size * 8 - last - 1)) & ((1 << (last - first + 1)) - 1)


def is_empty_slot(data: bytes) -> bool:
    return data == bytes([EMPTY_BYTE]) * len(data)


def decode_record(data: bytes, layout: OmronRecordLayout, *, user_id: int | None = None) -> BloodPressureMeasurement:
    """The reading in one record; DecodeError if it does not fit the layout or is an empty slot.

    Omron stores mmHg only. ``user_id`` is the user area the record came from (1-based).
    """
    if len(data) != layout.size:
        raise DecodeError(CHARACTERISTIC, "record", f"is {len(data)} bytes; this model's records are {layout.size}")
    if is_empty_slot(data):
        raise DecodeError(CHARACTERISTIC, "record", "is an empty slot (all 0xff)")
    value = int.from_bytes(data, layout.byte_order)

    def field(name: str) -> int:
        return _bits(value, layout.size, getattr(layout, name))

    try:
        timestamp = datetime(
            field("year") + layout.year_offset, field("month"), field("day"), field("hour"), field("minute"),
            min(field("second"), LAST_SECOND),
        )
    except ValueError as error:
        raise DecodeError(CHARACTERISTIC, "timestamp", f"is not a date: {error}") from None
    status = []
    if field("body_movement"):
        status.append(MeasurementStatus.BODY_MOVEMENT)
    if field("irregular_heartbeat"):
        status.append(MeasurementStatus.IRREGULAR_PULSE)
    return BloodPressureMeasurement(
        unit=BloodPressureUnit.MMHG,
        systolic=float(field("systolic") + layout.systolic_offset),
        diastolic=float(field("diastolic")),
        mean_arterial_pressure=None,  # Omron does not store it
        timestamp=timestamp,
        pulse_rate=float(field("pulse_rate")),
        user_id=user_id,
        status=tuple(status),
    )


def encode_record(m: BloodPressureMeasurement, layout: OmronRecordLayout) -> bytes:
    """What the cuff stores for ``m`` (the simulator's side; round-trip tests). Bits the layout
    does not name are 0. ValueError if a value does not fit its bits."""
    if m.timestamp is None or m.systolic is None or m.diastolic is None or m.pulse_rate is None:
        raise ValueError("an Omron record always has pressures, a pulse and a time")
    t = m.timestamp
    values = {
        "systolic": int(m.systolic) - layout.systolic_offset,
        "diastolic": int(m.diastolic),
        "pulse_rate": int(m.pulse_rate),
        "year": t.year - layout.year_offset,
        "month": t.month, "day": t.day, "hour": t.hour, "minute": t.minute, "second": t.second,
        "body_movement": int(MeasurementStatus.BODY_MOVEMENT in m.status),
        "irregular_heartbeat": int(MeasurementStatus.IRREGULAR_PULSE in m.status),
    }
    value = 0
    for name, bits in layout.fields().items():
        first, last = bits
        width = last - first + 1
        if not 0 <= values[name] < 1 << width:
            raise ValueError(f"{name} {values[name]} does not fit {width} bits")
        value |= values[name] << (layout.size * 8 - last - 1)
    return value.to_bytes(layout.size, layout.byte_order)
