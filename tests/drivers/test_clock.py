"""Golden and property tests for Date Time 0x2A08 and Current Time 0x2A2B (GSS; CTS 1.1 3.1)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.clock import (
    AdjustReason,
    CurrentTime,
    decode_current_time,
    decode_date_time,
    encode_current_time,
    encode_date_time,
    to_json_dict,
)
from drivers.ble.errors import DecodeError

STAMP = "e807" "03" "0f" "09" "1e" "2d"  # uint16 year 2024, month 3, day 15, 09:30:45
STAMP_DT = datetime(2024, 3, 15, 9, 30, 45)  # a Friday


def ct(hex_payload: str) -> CurrentTime:
    return decode_current_time(bytes.fromhex(hex_payload))


# -- Date Time ----------------------------------------------------------------


def test_date_time_golden() -> None:
    assert decode_date_time(bytes.fromhex(STAMP)) == STAMP_DT
    assert encode_date_time(STAMP_DT).hex() == STAMP


def test_date_time_unknown_is_none() -> None:
    assert decode_date_time(bytes.fromhex("0000" "00" "00" "00" "00" "00")) is None


@pytest.mark.parametrize("payload", ["", "e807", "e807030f091e"])
def test_date_time_truncated(payload: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_date_time(bytes.fromhex(payload))
    assert (info.value.characteristic, info.value.field) == ("2a08", "date_time")
    assert "the spec requires 7 bytes" in str(info.value)


def test_date_time_out_of_range() -> None:
    with pytest.raises(DecodeError) as info:
        decode_date_time(bytes.fromhex("e807" "02" "1e" "00" "00" "00"))  # 30 February
    assert info.value.field == "date_time"


# -- Current Time -------------------------------------------------------------


def test_current_time_golden() -> None:
    # Date Time, Day of Week 5 (Friday), Fractions256 0x80 (= 0.5 s), Adjust Reason 0x01 (manual).
    assert ct(STAMP + "05" "80" "01") == CurrentTime(
        time=STAMP_DT,
        day_of_week=5,
        fractions256=128,
        adjust_reasons=(AdjustReason.MANUAL_TIME_UPDATE,),
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x00, ()),
        (0x01, (AdjustReason.MANUAL_TIME_UPDATE,)),
        (0x02, (AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE,)),
        (0x04, (AdjustReason.CHANGE_OF_TIME_ZONE,)),
        (0x08, (AdjustReason.CHANGE_OF_DST,)),
        (0xF0, ()),  # bits 4-7 reserved, ignored
        (0xFF, tuple(AdjustReason)),
    ],
)
def test_adjust_reason_bits(raw: int, expected: tuple[AdjustReason, ...]) -> None:
    assert ct(STAMP + "05" "00" + f"{raw:02x}").adjust_reasons == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0, None), (1, 1), (5, 5), (7, 7), (8, None), (255, None)],  # 0 unknown; 8-255 reserved
)
def test_day_of_week(raw: int, expected: int | None) -> None:
    assert ct(STAMP + f"{raw:02x}" "00" "00").day_of_week == expected


def test_unknown_date() -> None:
    assert ct("0000" "00" "00" "00" "00" "00" "00" "00" "00") == CurrentTime(
        time=None, day_of_week=None, fractions256=0, adjust_reasons=()
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("", "date_time"),
        ("e80703", "date_time"),
        (STAMP, "day_of_week"),
        (STAMP + "05", "fractions256"),
        (STAMP + "0580", "adjust_reason"),
    ],
)
def test_current_time_truncated_names_field(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        ct(payload)
    assert (info.value.characteristic, info.value.field) == ("2a2b", field)


def test_trailing_bytes_are_ignored() -> None:
    assert ct(STAMP + "05" "80" "01" "deadbeef") == ct(STAMP + "05" "80" "01")


def test_encode_current_time_golden() -> None:
    # What the kiosk writes to a cuff: day of week and fractions derived from the datetime.
    when = datetime(2024, 3, 17, 23, 59, 58, 500_000)  # a Sunday, half a second
    assert encode_current_time(when).hex() == "e807" "03" "11" "17" "3b" "3a" "07" "80" "01"


def test_encode_current_time_reasons() -> None:
    payload = encode_current_time(
        STAMP_DT, adjust_reasons=(AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE, AdjustReason.CHANGE_OF_DST)
    )
    assert payload.hex() == STAMP + "05" "00" "0a"
    assert encode_current_time(STAMP_DT, adjust_reasons=()).hex() == STAMP + "05" "00" "00"


def test_encode_current_time_writes_wall_clock_of_aware_datetime() -> None:
    aware = datetime(2024, 3, 15, 9, 30, 45, tzinfo=timezone.utc)
    assert encode_current_time(aware) == encode_current_time(STAMP_DT)


def test_encode_current_time_refuses_pre_gregorian_year() -> None:
    with pytest.raises(ValueError, match="1582"):
        encode_current_time(datetime(1000, 1, 1))


def test_json_dict() -> None:
    d = to_json_dict(ct(STAMP + "05" "80" "03"))
    assert d == {
        "time": "2024-03-15T09:30:45",
        "day_of_week": 5,
        "fractions256": 128,
        "adjust_reasons": ["manual_time_update", "external_reference_time_update"],
    }
    json.dumps(d)
    assert to_json_dict(ct("0000" "0000" "000000" "00" "00" "00"))["time"] is None


def test_current_time_is_hashable() -> None:
    assert hash(ct(STAMP + "05" "80" "01")) == hash(ct(STAMP + "05" "80" "01"))


# -- properties ---------------------------------------------------------------

_datetimes = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31))
_reasons = st.lists(st.sampled_from(AdjustReason), unique=True).map(tuple)


@given(_datetimes, _reasons)
def test_current_time_round_trip(when: datetime, reasons: tuple[AdjustReason, ...]) -> None:
    decoded = decode_current_time(encode_current_time(when, adjust_reasons=reasons))
    assert decoded == CurrentTime(
        time=when.replace(microsecond=0),
        day_of_week=when.isoweekday(),
        fractions256=when.microsecond * 256 // 1_000_000,
        adjust_reasons=tuple(r for r in AdjustReason if r in reasons),  # canonical bit order
    )
    # Fractions256 is within one 1/256 s step of the true sub-second part.
    assert 0 <= when.microsecond / 1_000_000 - decoded.fractions256 / 256 < 1 / 256


@given(_datetimes.map(lambda d: d.replace(microsecond=0)))
def test_date_time_round_trip(when: datetime) -> None:
    assert decode_date_time(encode_date_time(when)) == when


@given(st.binary(max_size=16))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    for decode, characteristic in ((decode_date_time, "2a08"), (decode_current_time, "2a2b")):
        try:
            decode(data)
        except DecodeError as exc:
            assert exc.characteristic == characteristic
            assert exc.field
