"""Golden and property tests for Weight Measurement 0x2A9D (GSS; WSS 1.0 3.2)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.errors import DecodeError
from drivers.ble.weight import (
    HeightUnit,
    WeightMeasurement,
    WeightUnit,
    decode_weight_measurement,
    encode_weight_measurement,
    to_json_dict,
)

KG = WeightUnit.KG
LB = WeightUnit.LB
W_70_005_KG = "b136"  # uint16 14001 (0x36B1) * 0.005 kg = 70.005 kg
W_154_32_LB = "483c"  # uint16 15432 (0x3C48) * 0.01 lb = 154.32 lb
STAMP = "e807" "03" "0f" "09" "1e" "2d"  # 2024-03-15 09:30:45
STAMP_DT = datetime(2024, 3, 15, 9, 30, 45)


def wm(hex_payload: str) -> WeightMeasurement:
    return decode_weight_measurement(bytes.fromhex(hex_payload))


def test_minimal_si() -> None:
    assert wm("00" + W_70_005_KG) == WeightMeasurement(
        weight=70.005,
        unit=KG,
        timestamp=None,
        user_id=None,
        bmi=None,
        height=None,
        height_unit=None,
        special_values={},
    )


def test_minimal_imperial() -> None:
    assert wm("01" + W_154_32_LB) == WeightMeasurement(weight=154.32, unit=LB)


def test_si_with_all_fields() -> None:
    # flags 0x0E: time stamp, user id, BMI+height; user 2; BMI 229 * 0.1 = 22.9;
    # height 1755 (0x06DB) * 0.001 m = 1.755 m.
    assert wm("0e" + W_70_005_KG + STAMP + "02" "e500" "db06") == WeightMeasurement(
        weight=70.005,
        unit=KG,
        timestamp=STAMP_DT,
        user_id=2,
        bmi=22.9,
        height=1.755,
        height_unit=HeightUnit.M,
        special_values={},
    )


def test_imperial_with_all_fields() -> None:
    # flags 0x0F; height 691 (0x02B3) * 0.1 in = 69.1 in.
    assert wm("0f" + W_154_32_LB + STAMP + "ff" "e500" "b302") == WeightMeasurement(
        weight=154.32,
        unit=LB,
        timestamp=STAMP_DT,
        user_id=255,  # SIG "unknown user", kept as 255
        bmi=22.9,
        height=69.1,
        height_unit=HeightUnit.IN,
    )


@pytest.mark.parametrize(
    ("flags", "raw", "expected"),
    [
        ("00", "0000", 0.0),
        ("00", "0100", 0.005),  # one step, SI
        ("00", "0300", 0.015),
        ("00", "feff", 327.67),  # 0xFFFE * 0.005: largest real SI weight
        ("01", "0100", 0.01),  # one step, imperial
        ("01", "feff", 655.34),  # 0xFFFE * 0.01: largest real imperial weight
    ],
)
def test_fixed_resolutions(flags: str, raw: str, expected: float) -> None:
    assert wm(flags + raw).weight == expected


def test_decoded_values_are_rounded_to_the_resolution() -> None:
    # 14001 * 0.005 in binary floating point is 70.00500000000001; we must say 70.005.
    assert repr(wm("00" + W_70_005_KG).weight) == "70.005"
    assert repr(wm("08" + W_70_005_KG + "e500" "db06").height) == "1.755"


@pytest.mark.parametrize("flags", ["00", "01"])
def test_measurement_unsuccessful(flags: str) -> None:
    m = wm(flags + "ffff")
    assert m == WeightMeasurement(
        weight=None,
        unit=LB if flags == "01" else KG,
        special_values={"weight": "measurement_unsuccessful"},
    )
    assert to_json_dict(m)["weight"] is None
    assert encode_weight_measurement(m) == bytes.fromhex(flags + "ffff")


def test_measurement_unsuccessful_keeps_time_stamp_and_user() -> None:
    # WSS: with 0xFFFF only Time Stamp and User ID may accompany the weight.
    assert wm("06" "ffff" + STAMP + "01") == WeightMeasurement(
        weight=None,
        unit=KG,
        timestamp=STAMP_DT,
        user_id=1,
        special_values={"weight": "measurement_unsuccessful"},
    )


def test_reserved_flag_bits_and_trailing_bytes_are_ignored() -> None:
    assert wm("f0" + W_70_005_KG + "deadbeef") == wm("00" + W_70_005_KG)


@pytest.mark.parametrize(
    ("flags", "present", "field"),
    [
        ("02", "", "time_stamp"),
        ("02", "e80703", "time_stamp"),
        ("04", "", "user_id"),
        ("06", STAMP, "user_id"),
        ("08", "", "bmi"),
        ("08", "e5", "bmi"),
        ("08", "e500", "height"),
        ("08", "e500" "db", "height"),
        ("0e", STAMP + "02" "e500", "height"),
    ],
)
def test_truncated_optional_field_names_it(flags: str, present: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        wm(flags + W_70_005_KG + present)
    assert (info.value.characteristic, info.value.field) == ("2a9d", field)
    assert "flags promise" in str(info.value)


@pytest.mark.parametrize(("payload", "field"), [("", "flags"), ("00", "weight"), ("00b1", "weight")])
def test_short_mandatory_fields(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        wm(payload)
    assert info.value.field == field


def test_json_dict_uses_sig_names() -> None:
    d = to_json_dict(wm("0f" + W_154_32_LB + STAMP + "03" "e500" "b302"))
    assert d == {
        "weight": 154.32,
        "unit": "lb",
        "timestamp": "2024-03-15T09:30:45",
        "user_id": 3,
        "bmi": 22.9,
        "height": 69.1,
        "height_unit": "in",
        "special_values": {},
    }
    json.dumps(d)


def test_encode_golden() -> None:
    m = WeightMeasurement(
        weight=70.005, unit=KG, timestamp=STAMP_DT, user_id=2, bmi=22.9, height=1.755, height_unit=HeightUnit.M
    )
    assert encode_weight_measurement(m).hex() == "0e" + W_70_005_KG + STAMP + "02" "e500" "db06"


@pytest.mark.parametrize(
    ("m", "match"),
    [
        (WeightMeasurement(weight=70.001, unit=KG), "resolution"),  # not a multiple of 0.005
        (WeightMeasurement(weight=70.005, unit=LB), "resolution"),  # not a multiple of 0.01
        (WeightMeasurement(weight=327.675, unit=KG), "range"),  # would be 0xFFFF, the special value
        (WeightMeasurement(weight=-1.0, unit=KG), "range"),
        (WeightMeasurement(weight=70.0, unit=KG, bmi=22.9), "both"),
        (WeightMeasurement(weight=70.0, unit=KG, bmi=22.9, height=69.1, height_unit=HeightUnit.IN), "match"),
    ],
)
def test_encode_refuses_invalid(m: WeightMeasurement, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_weight_measurement(m)


# -- properties ---------------------------------------------------------------

_timestamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def measurements(draw: st.DrawFn) -> WeightMeasurement:
    unit = draw(st.sampled_from(WeightUnit))
    imperial = unit is WeightUnit.LB
    raw_weight = draw(st.integers(min_value=0, max_value=0xFFFF))
    weight = None if raw_weight == 0xFFFF else round(raw_weight / (100 if imperial else 200), 3)
    with_bmi = draw(st.booleans())
    return WeightMeasurement(
        weight=weight,
        unit=unit,
        timestamp=draw(st.none() | _timestamps),
        user_id=draw(st.none() | st.integers(min_value=0, max_value=255)),
        bmi=draw(st.integers(min_value=0, max_value=0xFFFF)) / 10 if with_bmi else None,
        height=(draw(st.integers(min_value=0, max_value=0xFFFF)) / (10 if imperial else 1000)) if with_bmi else None,
        height_unit=(HeightUnit.IN if imperial else HeightUnit.M) if with_bmi else None,
        special_values={"weight": "measurement_unsuccessful"} if weight is None else {},
    )


@given(measurements())
def test_encode_decode_round_trip(m: WeightMeasurement) -> None:
    assert decode_weight_measurement(encode_weight_measurement(m)) == m


@given(st.binary(max_size=24))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        decode_weight_measurement(data)
    except DecodeError as exc:
        assert exc.characteristic == "2a9d"
        assert exc.field
