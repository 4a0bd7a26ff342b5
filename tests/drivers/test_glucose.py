"""Golden and property tests for 0x2A18 / 0x2A34 (GSS Glucose Measurement [Context]; GLS 3.1, 3.2)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.errors import DecodeError
from drivers.ble.glucose import (
    CarbohydrateId,
    GlucoseConcentrationUnit,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseType,
    Health,
    Meal,
    MedicationId,
    MedicationUnit,
    SampleLocation,
    SensorStatus,
    Tester,
    decode_glucose_measurement,
    decode_glucose_measurement_context,
    encode_glucose_measurement,
    encode_glucose_measurement_context,
    to_json_dict,
)

KG_L = GlucoseConcentrationUnit.KG_PER_L
MOL_L = GlucoseConcentrationUnit.MOL_PER_L
SEQ = "2a00"  # sequence number 42
BASE = "e807" "03" "0f" "09" "1e" "2d"  # Date Time 2024-03-15 09:30:45
BASE_DT = datetime(2024, 3, 15, 9, 30, 45)
UNKNOWN_BASE = "0000" "00" "00" "00" "00" "00"  # year/month/day 0 = "not known"
MG_120 = "78b0"  # SFLOAT 120e-5 kg/L = 0.0012 kg/L = 120 mg/dL
MMOL_65 = "41c0"  # SFLOAT 65e-4 mol/L = 0.0065 mol/L = 6.5 mmol/L
FINGER_CAPILLARY = "11"  # Sample Location finger (high nibble 1), Type capillary whole blood (low nibble 1)


def gm(hex_payload: str) -> GlucoseMeasurement:
    return decode_glucose_measurement(bytes.fromhex(hex_payload))


def gmc(hex_payload: str) -> GlucoseMeasurementContext:
    return decode_glucose_measurement_context(bytes.fromhex(hex_payload))


# -- Glucose Measurement -------------------------------------------------------


def test_minimal_measurement() -> None:
    # flags 0x00: only Sequence Number and Base Time.
    m = gm("00" + SEQ + BASE)
    assert m == GlucoseMeasurement(
        sequence_number=42,
        base_time=BASE_DT,
        time_offset=None,
        glucose_concentration=None,
        unit=None,
        type=None,
        sample_location=None,
        sensor_status=(),
        context_information_follows=False,
        special_values={},
    )
    assert m.timestamp == BASE_DT
    assert m.timestamp.tzinfo is None  # the meter's own clock: naive
    assert (m.glucose_mg_dl, m.glucose_mmol_l) == (None, None)


def test_kg_per_l_with_all_fields() -> None:
    payload = (
        "0b"  # flags: time offset | concentration+type/location | sensor status (kg/L, no context)
        + SEQ
        + BASE
        + "f1ff"  # Time Offset -15 min (sint16)
        + MG_120
        + FINGER_CAPILLARY
        + "0100"  # Sensor Status Annunciation: bit 0 device battery low
    )
    m = gm(payload)
    assert m == GlucoseMeasurement(
        sequence_number=42,
        base_time=BASE_DT,
        time_offset=-15,
        glucose_concentration=0.0012,
        unit=KG_L,
        type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
        sensor_status=(SensorStatus.DEVICE_BATTERY_LOW,),
        context_information_follows=False,
        special_values={},
    )
    assert m.timestamp == datetime(2024, 3, 15, 9, 15, 45)
    assert m.glucose_mg_dl == 120.0
    assert m.glucose_mmol_l == 6.66  # 120 / 18.0156 (glucose: 180.156 g/mol)


def test_mol_per_l_and_context_follows() -> None:
    # flags 0x16: concentration present | mol/L | context follows
    m = gm("16" + SEQ + BASE + MMOL_65 + "a2")  # location 0xA reserved, type 2 capillary plasma
    assert m == GlucoseMeasurement(
        sequence_number=42,
        base_time=BASE_DT,
        glucose_concentration=0.0065,
        unit=MOL_L,
        type=GlucoseType.CAPILLARY_PLASMA,
        sample_location=None,  # reserved nibble: None, no crash
        context_information_follows=True,
    )
    assert m.glucose_mmol_l == 6.5
    assert m.glucose_mg_dl == 117.1  # 6.5 x 18.0156


def test_units_bit_without_concentration_has_no_unit() -> None:
    # Bit 2 only qualifies the concentration field; with bit 1 clear there is none.
    assert gm("04" + SEQ + BASE).unit is None


def test_unknown_base_time_has_no_timestamp() -> None:
    m = gm("01" + SEQ + UNKNOWN_BASE + "0a00")
    assert (m.base_time, m.time_offset, m.timestamp) == (None, 10, None)


@pytest.mark.parametrize(
    ("nibble", "expected"),
    [
        (0x0, None),  # reserved
        (0x1, GlucoseType.CAPILLARY_WHOLE_BLOOD),
        (0x2, GlucoseType.CAPILLARY_PLASMA),
        (0x3, GlucoseType.VENOUS_WHOLE_BLOOD),
        (0x4, GlucoseType.VENOUS_PLASMA),
        (0x5, GlucoseType.ARTERIAL_WHOLE_BLOOD),
        (0x6, GlucoseType.ARTERIAL_PLASMA),
        (0x7, GlucoseType.UNDETERMINED_WHOLE_BLOOD),
        (0x8, GlucoseType.UNDETERMINED_PLASMA),
        (0x9, GlucoseType.INTERSTITIAL_FLUID),
        (0xA, GlucoseType.CONTROL_SOLUTION),
        (0xB, None),  # reserved 11-15
        (0xF, None),
    ],
)
def test_type_nibble(nibble: int, expected: GlucoseType | None) -> None:
    m = gm("02" + SEQ + BASE + MG_120 + f"{0x10 | nibble:02x}")
    assert (m.type, m.sample_location) == (expected, SampleLocation.FINGER)


@pytest.mark.parametrize(
    ("nibble", "expected"),
    [
        (0x0, None),  # reserved
        (0x1, SampleLocation.FINGER),
        (0x2, SampleLocation.ALTERNATE_SITE_TEST),
        (0x3, SampleLocation.EARLOBE),
        (0x4, SampleLocation.CONTROL_SOLUTION),
        (0x5, None),  # reserved 5-14
        (0xE, None),
        (0xF, SampleLocation.NOT_AVAILABLE),
    ],
)
def test_sample_location_nibble(nibble: int, expected: SampleLocation | None) -> None:
    m = gm("02" + SEQ + BASE + MG_120 + f"{(nibble << 4) | 0x1:02x}")
    assert (m.type, m.sample_location) == (GlucoseType.CAPILLARY_WHOLE_BLOOD, expected)


@pytest.mark.parametrize(("bit", "status"), [(i, s) for i, s in enumerate(SensorStatus)])
def test_each_sensor_status_bit(bit: int, status: SensorStatus) -> None:
    m = gm("08" + SEQ + BASE + (1 << bit).to_bytes(2, "little").hex())
    assert m == GlucoseMeasurement(sequence_number=42, base_time=BASE_DT, sensor_status=(status,))


def test_sensor_status_reserved_bits_ignored_and_order_canonical() -> None:
    m = gm("08" + SEQ + BASE + "01f8")  # bits 0, 11 and reserved 12-15
    assert m.sensor_status == (SensorStatus.DEVICE_BATTERY_LOW, SensorStatus.TIME_FAULT)
    assert gm("08" + SEQ + BASE + "0000").sensor_status == ()


@pytest.mark.parametrize(
    ("raw", "name"),
    [("ff07", "nan"), ("0008", "nres"), ("fe07", "+inf"), ("0208", "-inf"), ("0108", "reserved")],
)
def test_concentration_special_values(raw: str, name: str) -> None:
    m = gm("02" + SEQ + BASE + raw + FINGER_CAPILLARY)
    assert m == GlucoseMeasurement(
        sequence_number=42,
        base_time=BASE_DT,
        glucose_concentration=None,
        unit=KG_L,
        type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
        special_values={"glucose_concentration": name},
    )
    assert m.glucose_mg_dl is None
    assert to_json_dict(m)["special_values"] == {"glucose_concentration": name}
    assert decode_glucose_measurement(encode_glucose_measurement(m)) == m


def test_reserved_flag_bits_and_trailing_bytes_are_ignored() -> None:
    assert gm("e0" + SEQ + BASE + "deadbeef") == gm("00" + SEQ + BASE)


@pytest.mark.parametrize(
    ("flags", "present", "field"),
    [
        ("01", "", "time_offset"),
        ("01", "0a", "time_offset"),
        ("02", "", "glucose_concentration"),
        ("02", "78", "glucose_concentration"),
        ("02", MG_120, "type_sample_location"),
        ("08", "", "sensor_status_annunciation"),
        ("08", "01", "sensor_status_annunciation"),
        ("0b", "0a00" + MG_120 + FINGER_CAPILLARY, "sensor_status_annunciation"),
    ],
)
def test_truncated_optional_field_names_it(flags: str, present: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        gm(flags + SEQ + BASE + present)
    assert (info.value.characteristic, info.value.field) == ("2a18", field)
    assert "flags promise" in str(info.value)


@pytest.mark.parametrize(
    ("payload", "field"),
    [("", "flags"), ("00", "sequence_number"), ("002a", "sequence_number"), ("00" + SEQ + "e80703", "base_time")],
)
def test_short_mandatory_fields(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        gm(payload)
    assert info.value.field == field
    assert "the spec requires" in str(info.value)


def test_invalid_base_time_raises() -> None:
    with pytest.raises(DecodeError) as info:
        gm("00" + SEQ + "e807" "0d" "01" "00" "00" "00")  # month 13
    assert info.value.field == "base_time"


def test_time_offset_overflowing_the_calendar_raises() -> None:
    with pytest.raises(DecodeError) as info:
        gm("01" + SEQ + "0f27" "0c" "1f" "17" "3b" "3b" + "ff7f")  # 9999-12-31 23:59:59 + 32767 min
    assert info.value.field == "time_offset"


def test_measurement_json_dict_uses_sig_names() -> None:
    m = gm("0b" + SEQ + BASE + "f1ff" + MG_120 + FINGER_CAPILLARY + "0100")
    d = to_json_dict(m)
    assert d == {
        "sequence_number": 42,
        "base_time": "2024-03-15T09:30:45",
        "time_offset": -15,
        "timestamp": "2024-03-15T09:15:45",
        "glucose_concentration": 0.0012,
        "unit": "kg/L",
        "glucose_mg_dl": 120.0,
        "glucose_mmol_l": 6.66,
        "type": "capillary_whole_blood",
        "sample_location": "finger",
        "sensor_status": ["device_battery_low"],
        "context_information_follows": False,
        "special_values": {},
    }
    json.dumps(d)


def test_measurement_json_dict_absent_fields_are_none() -> None:
    d = to_json_dict(gm("00" + SEQ + UNKNOWN_BASE))
    assert d["base_time"] is None and d["timestamp"] is None and d["unit"] is None
    assert d["glucose_concentration"] is None and d["type"] is None and d["time_offset"] is None


def test_measurement_is_immutable_and_hashable() -> None:
    m = gm("02" + SEQ + BASE + "ff07" + FINGER_CAPILLARY)
    with pytest.raises(TypeError):
        m.special_values["glucose_concentration"] = "nres"  # type: ignore[index]
    assert hash(m) == hash(gm("02" + SEQ + BASE + "ff07" + FINGER_CAPILLARY))


# -- Glucose Measurement Context -------------------------------------------------


def test_minimal_context() -> None:
    assert gmc("00" + SEQ) == GlucoseMeasurementContext(
        sequence_number=42,
        extended_flags=None,
        carbohydrate_id=None,
        carbohydrate=None,
        meal=None,
        tester=None,
        health=None,
        exercise_duration=None,
        exercise_intensity=None,
        medication_id=None,
        medication=None,
        medication_unit=None,
        hba1c=None,
        special_values={},
    )


FULL_CONTEXT = (
    "df"  # flags: all but bit 5 (medication in kg): carbs, meal, tester-health, exercise, medication, HbA1c, ext
    + SEQ
    + "00"  # Extended Flags (all reserved)
    + "01" "32d0"  # Carbohydrate ID breakfast, Carbohydrate 50e-3 kg
    + "02"  # Meal postprandial
    + "51"  # Tester self (low nibble 1), Health no health issues (high nibble 5)
    + "1c02" "32"  # Exercise Duration 540 s, Exercise Intensity 50 %
    + "01" "0aa0"  # Medication ID rapid acting insulin, Medication 10e-6 kg
    + "41f0"  # HbA1c 65e-1 = 6.5 %
)


def test_full_context() -> None:
    assert gmc(FULL_CONTEXT) == GlucoseMeasurementContext(
        sequence_number=42,
        extended_flags=0,
        carbohydrate_id=CarbohydrateId.BREAKFAST,
        carbohydrate=0.05,
        meal=Meal.POSTPRANDIAL,
        tester=Tester.SELF,
        health=Health.NO_HEALTH_ISSUES,
        exercise_duration=540,
        exercise_intensity=50,
        medication_id=MedicationId.RAPID_ACTING_INSULIN,
        medication=0.00001,
        medication_unit=MedicationUnit.KILOGRAMS,
        hba1c=6.5,
        special_values={},
    )


def test_medication_in_liters() -> None:
    c = gmc("30" + SEQ + "05" "0ad0")  # bits 4+5: Pre-mixed insulin, 10e-3 L
    assert c == GlucoseMeasurementContext(
        sequence_number=42,
        medication_id=MedicationId.PRE_MIXED_INSULIN,
        medication=0.01,
        medication_unit=MedicationUnit.LITERS,
    )


def test_medication_unit_bit_alone_has_no_unit() -> None:
    assert gmc("20" + SEQ).medication_unit is None


@pytest.mark.parametrize(
    ("flags", "present", "field", "expected"),
    [
        ("01", "07" "0100", "carbohydrate_id", CarbohydrateId.BRUNCH),
        ("01", "00" "0100", "carbohydrate_id", None),  # reserved 0
        ("01", "08" "0100", "carbohydrate_id", None),  # reserved 8-255
        ("02", "01", "meal", Meal.PREPRANDIAL),
        ("02", "05", "meal", Meal.BEDTIME),
        ("02", "06", "meal", None),
        ("04", "f3", "tester", Tester.LAB_TEST),
        ("04", "0f", "tester", Tester.NOT_AVAILABLE),
        ("04", "04", "tester", None),  # reserved 4-14
        ("04", "10", "health", Health.MINOR_HEALTH_ISSUES),
        ("04", "40", "health", Health.UNDER_STRESS),
        ("04", "f0", "health", Health.NOT_AVAILABLE),
        ("04", "61", "health", None),  # reserved 6-14
        ("10", "04" "0100", "medication_id", MedicationId.LONG_ACTING_INSULIN),
        ("10", "06" "0100", "medication_id", None),
    ],
)
def test_context_enumerations(flags: str, present: str, field: str, expected: object) -> None:
    assert getattr(gmc(flags + SEQ + present), field) == expected


def test_tester_is_low_nibble_and_health_high_nibble() -> None:
    c = gmc("04" + SEQ + "23")  # Health 2 (major health issues), Tester 3 (lab test)
    assert (c.tester, c.health) == (Tester.LAB_TEST, Health.MAJOR_HEALTH_ISSUES)


def test_exercise_duration_overrun_is_a_special_value() -> None:
    c = gmc("08" + SEQ + "ffff" "64")
    assert c == GlucoseMeasurementContext(
        sequence_number=42,
        exercise_duration=None,
        exercise_intensity=100,
        special_values={"exercise_duration": "overrun"},
    )
    assert decode_glucose_measurement_context(encode_glucose_measurement_context(c)) == c


@pytest.mark.parametrize(("flags", "field"), [("01", "carbohydrate"), ("10", "medication"), ("40", "hba1c")])
def test_context_sfloat_special_values(flags: str, field: str) -> None:
    prefix = "" if flags == "40" else "01"
    c = gmc(flags + SEQ + prefix + "ff07")
    assert getattr(c, field) is None
    assert c.special_values == {field: "nan"}
    assert decode_glucose_measurement_context(encode_glucose_measurement_context(c)) == c


@pytest.mark.parametrize(
    ("flags", "present", "field"),
    [
        ("80", "", "extended_flags"),
        ("01", "", "carbohydrate_id"),
        ("01", "01", "carbohydrate"),
        ("01", "0132", "carbohydrate"),
        ("02", "", "meal"),
        ("04", "", "tester_health"),
        ("08", "", "exercise_duration"),
        ("08", "1c", "exercise_duration"),
        ("08", "1c02", "exercise_intensity"),
        ("10", "", "medication_id"),
        ("10", "01", "medication"),
        ("40", "", "hba1c"),
        ("40", "41", "hba1c"),
        ("df", FULL_CONTEXT[6:-4], "hba1c"),
    ],
)
def test_context_truncated_optional_field_names_it(flags: str, present: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        gmc(flags + SEQ + present)
    assert (info.value.characteristic, info.value.field) == ("2a34", field)
    assert "flags promise" in str(info.value)


@pytest.mark.parametrize(("payload", "field"), [("", "flags"), ("00", "sequence_number"), ("002a", "sequence_number")])
def test_context_short_mandatory_fields(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        gmc(payload)
    assert info.value.field == field


def test_context_trailing_bytes_are_ignored() -> None:
    assert gmc("00" + SEQ + "deadbeef") == gmc("00" + SEQ)


def test_context_json_dict_uses_sig_names() -> None:
    d = to_json_dict(gmc(FULL_CONTEXT))
    assert d == {
        "sequence_number": 42,
        "extended_flags": 0,
        "carbohydrate_id": "breakfast",
        "carbohydrate": 0.05,
        "meal": "postprandial",
        "tester": "self",
        "health": "no_health_issues",
        "exercise_duration": 540,
        "exercise_intensity": 50,
        "medication_id": "rapid_acting_insulin",
        "medication": 0.00001,
        "medication_unit": "kg",
        "hba1c": 6.5,
        "special_values": {},
    }
    json.dumps(d)


def test_to_json_dict_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        to_json_dict(object())  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------

_special = st.sampled_from(["nan", "nres", "+inf", "-inf", "reserved"])
# Values an SFLOAT carries exactly: mantissa 0..2045 at exponent 0..-8.
_sfloats = st.builds(
    lambda mantissa, exponent: float(round(mantissa * 10.0**exponent, -exponent)),
    st.integers(min_value=0, max_value=2045),
    st.integers(min_value=-8, max_value=0),
)
_datetimes = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9990, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


def _sfloat_or_special(draw: st.DrawFn, name: str, specials: dict[str, str]) -> float | None:
    if draw(st.booleans()) and draw(st.booleans()):
        specials[name] = draw(_special)
        return None
    return draw(_sfloats)


@st.composite
def measurements(draw: st.DrawFn) -> GlucoseMeasurement:
    specials: dict[str, str] = {}
    unit = draw(st.none() | st.sampled_from(GlucoseConcentrationUnit))
    concentration = _sfloat_or_special(draw, "glucose_concentration", specials) if unit is not None else None
    return GlucoseMeasurement(
        sequence_number=draw(st.integers(min_value=0, max_value=0xFFFF)),
        base_time=draw(st.none() | _datetimes),
        time_offset=draw(st.none() | st.integers(min_value=-0x8000, max_value=0x7FFF)),
        glucose_concentration=concentration,
        unit=unit,
        type=draw(st.none() | st.sampled_from(GlucoseType)) if unit is not None else None,
        sample_location=draw(st.none() | st.sampled_from(SampleLocation)) if unit is not None else None,
        sensor_status=tuple(s for s in SensorStatus if draw(st.booleans())),
        context_information_follows=draw(st.booleans()),
        special_values=specials,
    )


@st.composite
def contexts(draw: st.DrawFn) -> GlucoseMeasurementContext:
    specials: dict[str, str] = {}
    carbs = draw(st.booleans())
    exercise = draw(st.booleans())
    duration: int | None = None
    if exercise:
        duration = draw(st.none() | st.integers(min_value=0, max_value=0xFFFE))
        if duration is None:
            specials["exercise_duration"] = "overrun"
    medication_unit = draw(st.none() | st.sampled_from(MedicationUnit))
    tester_health = draw(st.booleans())
    return GlucoseMeasurementContext(
        sequence_number=draw(st.integers(min_value=0, max_value=0xFFFF)),
        extended_flags=draw(st.none() | st.integers(min_value=0, max_value=255)),
        carbohydrate_id=draw(st.none() | st.sampled_from(CarbohydrateId)) if carbs else None,
        carbohydrate=_sfloat_or_special(draw, "carbohydrate", specials) if carbs else None,
        meal=draw(st.none() | st.sampled_from(Meal)),
        tester=draw(st.sampled_from(Tester)) if tester_health else None,
        health=draw(st.none() | st.sampled_from(Health)) if tester_health else None,
        exercise_duration=duration,
        exercise_intensity=draw(st.integers(min_value=0, max_value=100)) if exercise else None,
        medication_id=draw(st.none() | st.sampled_from(MedicationId)) if medication_unit else None,
        medication=_sfloat_or_special(draw, "medication", specials) if medication_unit else None,
        medication_unit=medication_unit,
        hba1c=_sfloat_or_special(draw, "hba1c", specials) if draw(st.booleans()) else None,
        special_values=specials,
    )


@given(measurements())
def test_measurement_round_trip(m: GlucoseMeasurement) -> None:
    assert decode_glucose_measurement(encode_glucose_measurement(m)) == m


@given(contexts())
def test_context_round_trip(c: GlucoseMeasurementContext) -> None:
    assert decode_glucose_measurement_context(encode_glucose_measurement_context(c)) == c


@given(st.binary(max_size=40))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    for decode, characteristic in (
        (decode_glucose_measurement, "2a18"),
        (decode_glucose_measurement_context, "2a34"),
    ):
        try:
            reading = decode(data)
        except DecodeError as exc:
            assert exc.characteristic == characteristic
            assert exc.field
        else:
            json.dumps(to_json_dict(reading))


@given(st.binary(min_size=0, max_size=30).map(lambda tail: bytes([0x1F]) + tail))
def test_arbitrary_bytes_with_every_measurement_flag(data: bytes) -> None:
    # Flags forced to 0x1F so the fuzz reaches every optional field.
    try:
        decode_glucose_measurement(data)
    except DecodeError as exc:
        assert exc.characteristic == "2a18"
