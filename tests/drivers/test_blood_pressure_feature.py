"""Golden and property tests for Blood Pressure Feature 0x2A49 (GSS; BLS 1.1 3.3)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.blood_pressure_feature import (
    BloodPressureFeature,
    BloodPressureFeatureSupport,
    decode_blood_pressure_feature,
    encode_blood_pressure_feature,
    to_json_dict,
)
from drivers.ble.errors import DecodeError

F = BloodPressureFeatureSupport


def bpf(hex_payload: str) -> BloodPressureFeature:
    return decode_blood_pressure_feature(bytes.fromhex(hex_payload))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x0000, ()),
        (0x0001, (F.BODY_MOVEMENT_DETECTION,)),
        (0x0002, (F.CUFF_FIT_DETECTION,)),
        (0x0004, (F.IRREGULAR_PULSE_DETECTION,)),
        (0x0008, (F.PULSE_RATE_RANGE_DETECTION,)),
        (0x0010, (F.MEASUREMENT_POSITION_DETECTION,)),
        (0x0020, (F.MULTIPLE_BOND,)),
        (0x0040, (F.E2E_CRC,)),
        (0x0080, (F.USER_DATA_SERVICE,)),
        (0x0100, (F.USER_FACING_TIME,)),
        (0xFE00, ()),  # bits 9-15 reserved, ignored
        (0xFFFF, tuple(F)),
    ],
)
def test_each_bit(raw: int, expected: tuple[BloodPressureFeatureSupport, ...]) -> None:
    assert bpf(raw.to_bytes(2, "little").hex()) == BloodPressureFeature(supported=expected)


def test_typical_cuff() -> None:
    # 0x0027 little-endian: body movement, cuff fit, irregular pulse, multiple bond.
    assert bpf("2700") == BloodPressureFeature(
        supported=(F.BODY_MOVEMENT_DETECTION, F.CUFF_FIT_DETECTION, F.IRREGULAR_PULSE_DETECTION, F.MULTIPLE_BOND)
    )


def test_byte_order_is_little_endian() -> None:
    assert bpf("0001") == BloodPressureFeature(supported=(F.USER_FACING_TIME,))  # 0x0100


@pytest.mark.parametrize("payload", ["", "27"])
def test_truncated(payload: str) -> None:
    with pytest.raises(DecodeError) as info:
        bpf(payload)
    assert (info.value.characteristic, info.value.field) == ("2a49", "blood_pressure_feature")
    assert "the spec requires 2 bytes" in str(info.value)


def test_trailing_bytes_are_ignored() -> None:
    assert bpf("2700" "ff") == bpf("2700")


def test_encode_golden() -> None:
    feature = BloodPressureFeature(supported=(F.MULTIPLE_BOND, F.BODY_MOVEMENT_DETECTION, F.USER_FACING_TIME))
    assert encode_blood_pressure_feature(feature).hex() == "2101"


def test_json_dict() -> None:
    d = to_json_dict(bpf("2700"))
    assert d == {
        "supported": ["body_movement_detection", "cuff_fit_detection", "irregular_pulse_detection", "multiple_bond"]
    }
    json.dumps(d)


@given(st.lists(st.sampled_from(F), unique=True))
def test_round_trip(members: list[BloodPressureFeatureSupport]) -> None:
    canonical = tuple(f for f in F if f in members)
    feature = BloodPressureFeature(supported=canonical)
    assert decode_blood_pressure_feature(encode_blood_pressure_feature(feature)) == feature


@given(st.binary(max_size=6))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        decode_blood_pressure_feature(data)
    except DecodeError as exc:
        assert exc.characteristic == "2a49"
        assert exc.field == "blood_pressure_feature"
