"""Golden and property tests for 0x2A35 / 0x2A36 (GSS 3.31, 3.126; BLS 3.1, 3.2)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.blood_pressure import (
    BloodPressureDialect,
    BloodPressureMeasurement,
    BloodPressureUnit,
    IntermediateCuffPressure,
    MeasurementStatus,
    decode_blood_pressure_measurement,
    decode_intermediate_cuff_pressure,
    encode_blood_pressure_measurement,
    to_json_dict,
)
from drivers.ble.errors import DecodeError

MMHG = BloodPressureUnit.MMHG
KPA = BloodPressureUnit.KPA
# systolic 120, diastolic 80, MAP 93 (exponent 0)
COMPOUND_MMHG = "7800" "5000" "5d00"
STAMP = "e807" "03" "0f" "09" "1e" "2d"  # 2024-03-15 09:30:45
STAMP_DT = datetime(2024, 3, 15, 9, 30, 45)


def bpm(hex_payload: str) -> BloodPressureMeasurement:
    return decode_blood_pressure_measurement(bytes.fromhex(hex_payload))


def test_minimal_mmhg() -> None:
    assert bpm("00" + COMPOUND_MMHG) == BloodPressureMeasurement(
        unit=MMHG,
        systolic=120.0,
        diastolic=80.0,
        mean_arterial_pressure=93.0,
        timestamp=None,
        pulse_rate=None,
        user_id=None,
        status=(),
        special_values={},
    )


def test_kpa_with_all_fields() -> None:
    # flags 0x1F; 16.0 / 10.7 / 12.4 kPa at exponent -1; pulse 72; user 3; irregular pulse.
    payload = "1f" "a0f0" "6bf0" "7cf0" + STAMP + "4800" "03" "0400"
    assert bpm(payload) == BloodPressureMeasurement(
        unit=KPA,
        systolic=16.0,
        diastolic=10.7,
        mean_arterial_pressure=12.4,
        timestamp=STAMP_DT,
        pulse_rate=72.0,
        user_id=3,
        status=(MeasurementStatus.IRREGULAR_PULSE,),
        special_values={},
    )


def test_timestamp() -> None:
    m = bpm("02" + COMPOUND_MMHG + STAMP)
    assert m.timestamp == STAMP_DT
    assert m.timestamp.tzinfo is None  # the cuff's own clock: naive


def test_unknown_date_is_none() -> None:
    assert bpm("02" + COMPOUND_MMHG + "0000" "00" "00" "0c" "00" "00").timestamp is None


@pytest.mark.parametrize("stamp", ["e807" "0d" "01" "00" "00" "00", "e807" "02" "1e" "00" "00" "00", "e807" "01" "01" "18" "00" "00", "0100" "01" "01" "00" "00" "00"])
def test_out_of_range_date_raises(stamp: str) -> None:
    with pytest.raises(DecodeError) as info:
        bpm("02" + COMPOUND_MMHG + stamp)
    assert (info.value.characteristic, info.value.field) == ("2a35", "time_stamp")


def test_unknown_user_is_kept_as_255() -> None:
    assert bpm("08" + COMPOUND_MMHG + "ff") == BloodPressureMeasurement(
        unit=MMHG,
        systolic=120.0,
        diastolic=80.0,
        mean_arterial_pressure=93.0,
        user_id=255,
    )


@pytest.mark.parametrize(
    ("raw_status", "expected"),
    [
        (0x0000, ()),
        (0x0001, (MeasurementStatus.BODY_MOVEMENT,)),
        (0x0002, (MeasurementStatus.CUFF_TOO_LOOSE,)),
        (0x0004, (MeasurementStatus.IRREGULAR_PULSE,)),
        (0x0008, (MeasurementStatus.PULSE_RATE_EXCEEDS_UPPER_LIMIT,)),
        (0x0010, (MeasurementStatus.PULSE_RATE_BELOW_LOWER_LIMIT,)),
        (0x0018, ()),  # pulse range 3 is reserved: no claim either way
        (0x0020, (MeasurementStatus.IMPROPER_MEASUREMENT_POSITION,)),
        (0xFFC0, ()),  # reserved bits 6-15 are ignored
        (
            0x002F,
            (
                MeasurementStatus.BODY_MOVEMENT,
                MeasurementStatus.CUFF_TOO_LOOSE,
                MeasurementStatus.IRREGULAR_PULSE,
                MeasurementStatus.PULSE_RATE_EXCEEDS_UPPER_LIMIT,
                MeasurementStatus.IMPROPER_MEASUREMENT_POSITION,
            ),
        ),
    ],
)
def test_status_bits(raw_status: int, expected: tuple[MeasurementStatus, ...]) -> None:
    payload = "10" + COMPOUND_MMHG + raw_status.to_bytes(2, "little").hex()
    assert bpm(payload) == BloodPressureMeasurement(
        unit=MMHG, systolic=120.0, diastolic=80.0, mean_arterial_pressure=93.0, status=expected
    )


def test_map_nan_is_a_special_value_not_a_number() -> None:
    m = bpm("00" "7800" "5000" "ff07")
    assert m == BloodPressureMeasurement(
        unit=MMHG,
        systolic=120.0,
        diastolic=80.0,
        mean_arterial_pressure=None,
        special_values={"mean_arterial_pressure": "nan"},
    )
    assert to_json_dict(m)["special_values"] == {"mean_arterial_pressure": "nan"}


def test_intermediate_cuff_pressure() -> None:
    # GSS 3.126: the Systolic sub-field is the Current Cuff Pressure; Diastolic and MAP are
    # unused (NaN), so they are not part of the decoded value.
    m = decode_intermediate_cuff_pressure(bytes.fromhex("00" "9600" "ff07" "ff07"))
    assert m == IntermediateCuffPressure(unit=MMHG, current_cuff_pressure=150.0)


def test_an_intermediate_cuff_pressure_sent_as_a_special_value_is_named_as_the_cuff_pressure() -> None:
    m = decode_intermediate_cuff_pressure(bytes.fromhex("00" "ff07" "ff07" "ff07"))
    assert m == IntermediateCuffPressure(unit=MMHG, current_cuff_pressure=None,
                                         special_values={"current_cuff_pressure": "nan"})


def test_reserved_flag_bits_and_trailing_bytes_are_ignored() -> None:
    assert bpm("e0" + COMPOUND_MMHG + "deadbeef") == bpm("00" + COMPOUND_MMHG)


@pytest.mark.parametrize(
    ("flags", "present", "field"),
    [
        ("02", "", "time_stamp"),
        ("02", "e80703", "time_stamp"),
        ("04", "", "pulse_rate"),
        ("04", "48", "pulse_rate"),
        ("08", "", "user_id"),
        ("10", "", "measurement_status"),
        ("10", "01", "measurement_status"),
        ("1e", STAMP + "4800" "03", "measurement_status"),
    ],
)
def test_truncated_optional_field_names_it(flags: str, present: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        bpm(flags + COMPOUND_MMHG + present)
    assert info.value.field == field
    assert info.value.characteristic == "2a35"
    assert "flags promise" in str(info.value)


def test_truncation_message() -> None:
    with pytest.raises(DecodeError) as info:
        bpm("02" + COMPOUND_MMHG + "e807")
    assert str(info.value) == "2a35: field 'time_stamp' missing: flags promise 7 bytes at offset 7, 2 remain"


@pytest.mark.parametrize(("payload", "field"), [("", "flags"), ("00", "systolic"), ("007800", "diastolic"), ("00" "7800" "5000" "5d", "mean_arterial_pressure")])
def test_empty_or_short_mandatory_fields(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        bpm(payload)
    assert info.value.field == field


def test_json_dict_uses_sig_names() -> None:
    m = bpm("1f" "a0f0" "6bf0" "7cf0" + STAMP + "4800" "ff" "0900")
    d = to_json_dict(m)
    assert d == {
        "unit": "kPa",
        "systolic": 16.0,
        "diastolic": 10.7,
        "mean_arterial_pressure": 12.4,
        "pulse_rate": 72.0,
        "user_id": 255,
        "timestamp": "2024-03-15T09:30:45",
        "status": ["body_movement", "pulse_rate_exceeds_upper_limit"],
        "special_values": {},
    }
    json.dumps(d)


def test_measurement_is_immutable_and_hashable() -> None:
    m = bpm("00" "7800" "5000" "ff07")
    with pytest.raises(TypeError):
        m.special_values["systolic"] = "nan"  # type: ignore[index]
    assert hash(m) == hash(bpm("00" "7800" "5000" "ff07"))


# -- properties ---------------------------------------------------------------

_pressures = st.one_of(
    st.integers(min_value=0, max_value=300).map(float),
    st.integers(min_value=0, max_value=2045).map(lambda m: m / 10),
)
_special = st.sampled_from(["nan", "nres", "+inf", "-inf", "reserved"])


@st.composite
def measurements(draw: st.DrawFn) -> BloodPressureMeasurement:
    specials: dict[str, str] = {}
    values: dict[str, float | None] = {}
    for name in ("systolic", "diastolic", "mean_arterial_pressure"):
        if draw(st.booleans()) and draw(st.booleans()):
            specials[name] = draw(_special)
            values[name] = None
        else:
            values[name] = draw(_pressures)
    pulse_rate = draw(st.none() | _pressures)
    return BloodPressureMeasurement(
        unit=draw(st.sampled_from(BloodPressureUnit)),
        systolic=values["systolic"],
        diastolic=values["diastolic"],
        mean_arterial_pressure=values["mean_arterial_pressure"],
        timestamp=draw(
            st.none()
            | st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
                lambda d: d.replace(microsecond=0)
            )
        ),
        pulse_rate=pulse_rate,
        user_id=draw(st.none() | st.integers(min_value=0, max_value=255)),
        status=tuple(
            s
            for s in MeasurementStatus
            if s is not MeasurementStatus.PULSE_RATE_BELOW_LOWER_LIMIT and draw(st.booleans())
        ),
        special_values=specials,
    )


@given(measurements())
def test_encode_decode_round_trip(m: BloodPressureMeasurement) -> None:
    assert decode_blood_pressure_measurement(encode_blood_pressure_measurement(m)) == m


@given(st.binary(max_size=40))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        decode_blood_pressure_measurement(data)
        decode_intermediate_cuff_pressure(data)
    except DecodeError as exc:
        assert exc.characteristic in {"2a35", "2a36"}
        assert exc.field


dialects = st.builds(
    BloodPressureDialect,
    pulse_rate_byte_order=st.sampled_from(["little", "big"]),
    measurement_status_byte_order=st.sampled_from(["little", "big"]),
    user_id_without_flag=st.booleans(),
)


@settings(max_examples=300)
@given(dialects, st.binary(max_size=64))
def test_arbitrary_bytes_in_any_dialect_only_raise_decode_error(dialect: BloodPressureDialect, data: bytes) -> None:
    """A profile's dialect changes where fields are read from; it must not open a way around the
    typed error. Both characteristics are tried on every input."""
    for decode, characteristic in ((decode_blood_pressure_measurement, "2a35"), (decode_intermediate_cuff_pressure, "2a36")):
        try:
            decode(data, dialect)
        except DecodeError as exc:
            assert exc.characteristic == characteristic and exc.field


# --- A non-compliant cuff, fixed by configuration -------------------------------------------

QUIRKY = BloodPressureDialect(
    pulse_rate_byte_order="big", measurement_status_byte_order="big", user_id_without_flag=True
)


def test_a_non_compliant_cuff_misreads_without_its_dialect_and_reads_right_with_it() -> None:
    # flags 0x14: pulse rate + status (user-id flag NOT set, though the byte is sent);
    # 128/82/97 mmHg; pulse 71 as SFLOAT big-endian (00 47); user id 2; status body
    # movement + irregular pulse (0x0005) big-endian (00 05).
    data = bytes.fromhex("14" "8000" "5200" "6100" "0047" "02" "0005")
    with_dialect = decode_blood_pressure_measurement(data, QUIRKY)
    assert with_dialect == BloodPressureMeasurement(
        unit=BloodPressureUnit.MMHG,
        systolic=128.0,
        diastolic=82.0,
        mean_arterial_pressure=97.0,
        pulse_rate=71.0,
        user_id=2,
        status=(MeasurementStatus.BODY_MOVEMENT, MeasurementStatus.IRREGULAR_PULSE),
    )
    as_if_compliant = decode_blood_pressure_measurement(data)
    assert as_if_compliant.pulse_rate != 71.0
    assert as_if_compliant.user_id is None


@given(measurements())
def test_round_trip_through_a_quirky_dialect(m: BloodPressureMeasurement) -> None:
    # Such a cuff always sends its user-id byte: that is the quirk.
    m = dataclasses.replace(m, user_id=0 if m.user_id is None else m.user_id)
    assert decode_blood_pressure_measurement(encode_blood_pressure_measurement(m, QUIRKY), QUIRKY) == m
