"""Date Time (0x2A08) and Current Time (0x2A2B).

Pure codec: bytes in, typed value (or :class:`DecodeError`) out.
Layout: Bluetooth SIG GATT Specification Supplement (GSS) "Date Time" (3.70), "Day of
Week" (3.73), "Day Date Time" (3.72), "Exact Time 256" (3.90) and "Current Time" (3.62)
(numbers as cited by published implementations of GSS v8; they shift between GSS
revisions), as used by the Current Time Service (CTS) 1.1 section 3.1.

Current Time = Exact Time 256 + Adjust Reason (10 bytes):
    Exact Time 256 = Day Date Time (Date Time 7 bytes + Day of Week uint8) + Fractions256 uint8

Verified (search): the 10-byte layout, Day of Week 1=Monday..7=Sunday with 0 unknown,
and Adjust Reason bits 0-3 against StanfordSpezi/SpeziBluetooth (CurrentTime.swift),
a C++ "bvp" implementation quoting GSS v8 3.72/3.73/3.90, and RonanB96/bluetooth-sig-python
(current_time docs: Date Time + Day of Week + Fractions256 + Adjust Reason).

Writing Current Time is how the kiosk corrects the drifting clocks of cuffs and scales:
:func:`encode_current_time` derives Day of Week and Fractions256 from the datetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from drivers.ble import fields
from drivers.ble.fields import FieldReader

_DATE_TIME = "2a08"
_CURRENT_TIME = "2a2b"

# Day of Week (GSS 3.73), uint8: 0 = unknown, 1 = Monday .. 7 = Sunday, 8-255 reserved.
# Both 0 and reserved values decode to None (no claim about the weekday).
_DAY_OF_WEEK_UNKNOWN = 0
_DAY_OF_WEEK_MIN, _DAY_OF_WEEK_MAX = 1, 7
# Fractions256 (GSS 3.90 Exact Time 256), uint8: the number of 1/256 fractions of a second.
_FRACTIONS_PER_SECOND = 256
_MICROSECONDS_PER_SECOND = 1_000_000
# GSS 3.70 Date Time: Year 1582..9999; encode refuses what decode would reject.
_FIRST_GREGORIAN_YEAR = 1582


class AdjustReason(StrEnum):
    """Adjust Reason field of Current Time (GSS 3.62 / CTS 3.1), uint8; bits 4-7 reserved, ignored."""

    MANUAL_TIME_UPDATE = "manual_time_update"  # bit 0
    EXTERNAL_REFERENCE_TIME_UPDATE = "external_reference_time_update"  # bit 1
    CHANGE_OF_TIME_ZONE = "change_of_time_zone"  # bit 2
    CHANGE_OF_DST = "change_of_dst"  # bit 3


# Bit -> member, in bit order (= canonical tuple order).
_ADJUST_REASON_BITS: tuple[tuple[int, AdjustReason], ...] = tuple(
    (1 << i, member) for i, member in enumerate(AdjustReason)
)


@dataclass(frozen=True, slots=True)
class CurrentTime:
    # Naive: the device's own wall clock with no zone; None if year/month/day 0 = "not known".
    time: datetime | None
    day_of_week: int | None  # 1 = Monday .. 7 = Sunday; None for 0 "unknown" or reserved
    fractions256: int  # 0..255, in 1/256 s
    adjust_reasons: tuple[AdjustReason, ...] = ()


def decode_date_time(data: bytes) -> datetime | None:
    """Decode a Date Time (0x2A08) value (GSS 3.70); None if the date is "not known"."""
    return FieldReader(data, _DATE_TIME).date_time("date_time", mandatory=True)


def encode_date_time(value: datetime) -> bytes:
    """Encode a Date Time (0x2A08) value (GSS 3.70); wall-clock fields as given."""
    return fields.encode_date_time(value)


def decode_current_time(data: bytes) -> CurrentTime:
    """Decode a Current Time (0x2A2B) value (GSS 3.62, CTS 3.1). Trailing bytes are ignored."""
    reader = FieldReader(data, _CURRENT_TIME)
    time = reader.date_time("date_time", mandatory=True)
    raw_day = reader.uint8("day_of_week", mandatory=True)
    fractions256 = reader.uint8("fractions256", mandatory=True)
    raw_reasons = reader.uint8("adjust_reason", mandatory=True)
    return CurrentTime(
        time=time,
        day_of_week=raw_day if _DAY_OF_WEEK_MIN <= raw_day <= _DAY_OF_WEEK_MAX else None,
        fractions256=fractions256,
        adjust_reasons=tuple(member for bit, member in _ADJUST_REASON_BITS if raw_reasons & bit),
    )


def encode_current_time(
    when: datetime,
    adjust_reasons: tuple[AdjustReason, ...] = (AdjustReason.MANUAL_TIME_UPDATE,),
) -> bytes:
    """Encode ``when`` as a Current Time (0x2A2B) value, to WRITE to a device's clock.

    Day of Week comes from the date (ISO: Monday 1 .. Sunday 7) and Fractions256 from the
    microseconds (truncated). Devices keep zoneless wall time, so the wall-clock fields
    of ``when`` are written as given: pass the time in the zone the device should show;
    an aware datetime's tzinfo is not converted, only dropped.
    """
    if when.year < _FIRST_GREGORIAN_YEAR:
        raise ValueError(f"year {when.year} < {_FIRST_GREGORIAN_YEAR} is not a valid GSS Date Time")
    fractions256 = when.microsecond * _FRACTIONS_PER_SECOND // _MICROSECONDS_PER_SECOND
    raw_reasons = 0
    for bit, member in _ADJUST_REASON_BITS:
        if member in adjust_reasons:
            raw_reasons |= bit
    return fields.encode_date_time(when) + bytes([when.isoweekday(), fractions256, raw_reasons])


def to_json_dict(m: CurrentTime) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case."""
    return {
        "time": m.time.isoformat() if m.time is not None else None,
        "day_of_week": m.day_of_week,
        "fractions256": m.fractions256,
        "adjust_reasons": [r.value for r in m.adjust_reasons],
    }
