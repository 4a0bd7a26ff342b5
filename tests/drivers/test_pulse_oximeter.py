"""Golden and property tests for PLX Spot-check 0x2A5E / Continuous 0x2A5F (GSS; PLXS 1.0 3.1, 3.2)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.errors import DecodeError
from drivers.ble.pulse_oximeter import (
    PlxContinuousMeasurement,
    PlxDeviceAndSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    decode_plx_continuous_measurement,
    decode_plx_spot_check_measurement,
    encode_plx_continuous_measurement,
    encode_plx_spot_check_measurement,
    to_json_dict,
)

MS = PlxMeasurementStatus
DS = PlxDeviceAndSensorStatus
# SFLOAT little-endian: SpO2 98 %, PR 72 bpm (exponent 0)
SPO2PR = "6200" "4800"
STAMP = "e807" "03" "0f" "09" "1e" "2d"  # 2024-03-15 09:30:45
STAMP_DT = datetime(2024, 3, 15, 9, 30, 45)
PAI_2_5 = "19f0"  # SFLOAT mantissa 25, exponent -1 = 2.5 %


def spot(hex_payload: str) -> PlxSpotCheckMeasurement:
    return decode_plx_spot_check_measurement(bytes.fromhex(hex_payload))


def cont(hex_payload: str) -> PlxContinuousMeasurement:
    return decode_plx_continuous_measurement(bytes.fromhex(hex_payload))


# -- spot-check ---------------------------------------------------------------


def test_spot_minimal() -> None:
    assert spot("00" + SPO2PR) == PlxSpotCheckMeasurement(
        spo2=98.0,
        pulse_rate=72.0,
        timestamp=None,
        measurement_status=(),
        device_and_sensor_status=(),
        pulse_amplitude_index=None,
        device_clock_not_set=False,
        special_values={},
    )


def test_spot_all_fields() -> None:
    # flags 0x1F: timestamp, measurement status, device and sensor status, PAI, clock not set.
    # status 0x0080 = validated data; device status 0x000020 = low perfusion.
    assert spot("1f" + SPO2PR + STAMP + "8000" + "200000" + PAI_2_5) == PlxSpotCheckMeasurement(
        spo2=98.0,
        pulse_rate=72.0,
        timestamp=STAMP_DT,
        measurement_status=(MS.VALIDATED_DATA,),
        device_and_sensor_status=(DS.LOW_PERFUSION_DETECTED,),
        pulse_amplitude_index=2.5,
        device_clock_not_set=True,
        special_values={},
    )


@pytest.mark.parametrize(
    ("flags", "extra", "expected"),
    [
        ("01", STAMP, PlxSpotCheckMeasurement(spo2=98.0, pulse_rate=72.0, timestamp=STAMP_DT)),
        ("02", "2000", PlxSpotCheckMeasurement(spo2=98.0, pulse_rate=72.0, measurement_status=(MS.MEASUREMENT_ONGOING,))),
        ("04", "008000", PlxSpotCheckMeasurement(spo2=98.0, pulse_rate=72.0, device_and_sensor_status=(DS.SENSOR_DISCONNECTED,))),
        ("08", PAI_2_5, PlxSpotCheckMeasurement(spo2=98.0, pulse_rate=72.0, pulse_amplitude_index=2.5)),
        ("10", "", PlxSpotCheckMeasurement(spo2=98.0, pulse_rate=72.0, device_clock_not_set=True)),
    ],
)
def test_spot_each_flag(flags: str, extra: str, expected: PlxSpotCheckMeasurement) -> None:
    assert spot(flags + SPO2PR + extra) == expected


_MEASUREMENT_STATUS_VECTORS = [
    (0x0000, ()),
    (0x001F, ()),  # bits 0-4 reserved, ignored
    (0x0020, (MS.MEASUREMENT_ONGOING,)),
    (0x0040, (MS.EARLY_ESTIMATED_DATA,)),
    (0x0080, (MS.VALIDATED_DATA,)),
    (0x0100, (MS.FULLY_QUALIFIED_DATA,)),
    (0x0200, (MS.DATA_FROM_MEASUREMENT_STORAGE,)),
    (0x0400, (MS.DATA_FOR_DEMONSTRATION,)),
    (0x0800, (MS.DATA_FOR_TESTING,)),
    (0x1000, (MS.CALIBRATION_ONGOING,)),
    (0x2000, (MS.MEASUREMENT_UNAVAILABLE,)),
    (0x4000, (MS.QUESTIONABLE_MEASUREMENT_DETECTED,)),
    (0x8000, (MS.INVALID_MEASUREMENT_DETECTED,)),
    (0xFFFF, tuple(MS)),
]


@pytest.mark.parametrize(("raw", "expected"), _MEASUREMENT_STATUS_VECTORS)
def test_measurement_status_bits(raw: int, expected: tuple[PlxMeasurementStatus, ...]) -> None:
    payload = SPO2PR + raw.to_bytes(2, "little").hex()
    assert spot("02" + payload).measurement_status == expected
    assert cont("04" + payload).measurement_status == expected


_DEVICE_NAMES_IN_BIT_ORDER = [
    "extended_display_update_ongoing",
    "equipment_malfunction_detected",
    "signal_processing_irregularity_detected",
    "inadequate_signal_detected",
    "poor_signal_detected",
    "low_perfusion_detected",
    "erratic_signal_detected",
    "non_pulsatile_signal_detected",
    "questionable_pulse_detected",
    "signal_analysis_ongoing",
    "sensor_interference_detected",
    "sensor_unconnected_to_user",
    "unknown_sensor_connected",
    "sensor_displaced",
    "sensor_malfunctioning",
    "sensor_disconnected",
]


@pytest.mark.parametrize(("bit", "name"), list(enumerate(_DEVICE_NAMES_IN_BIT_ORDER)))
def test_device_and_sensor_status_bits(bit: int, name: str) -> None:
    payload = SPO2PR + (1 << bit).to_bytes(3, "little").hex()  # uint24, little-endian
    assert spot("04" + payload).device_and_sensor_status == (DS(name),)
    assert cont("08" + payload).device_and_sensor_status == (DS(name),)


def test_device_status_reserved_bits_16_to_23_are_ignored() -> None:
    assert spot("04" + SPO2PR + "0000ff").device_and_sensor_status == ()
    assert spot("04" + SPO2PR + "ffffff").device_and_sensor_status == tuple(DS)


@pytest.mark.parametrize(
    ("raw", "name"),
    [("ff07", "nan"), ("0008", "nres"), ("fe07", "+inf"), ("0208", "-inf"), ("0108", "reserved")],
)
def test_spot_special_values(raw: str, name: str) -> None:
    m = spot("08" + raw + raw + raw)  # SpO2, PR and PAI all special
    assert m == PlxSpotCheckMeasurement(
        spo2=None,
        pulse_rate=None,
        pulse_amplitude_index=None,
        special_values={"spo2": name, "pulse_rate": name, "pulse_amplitude_index": name},
    )
    assert encode_plx_spot_check_measurement(m) == bytes.fromhex("08" + raw + raw + raw)


def test_spot_reserved_flag_bits_and_trailing_bytes_are_ignored() -> None:
    assert spot("e0" + SPO2PR + "deadbeef") == spot("00" + SPO2PR)


@pytest.mark.parametrize(
    ("flags", "present", "field"),
    [
        ("01", "", "timestamp"),
        ("01", "e80703", "timestamp"),
        ("02", "", "measurement_status"),
        ("02", "80", "measurement_status"),
        ("04", "", "device_and_sensor_status"),
        ("04", "2000", "device_and_sensor_status"),
        ("08", "", "pulse_amplitude_index"),
        ("08", "19", "pulse_amplitude_index"),
        ("0f", STAMP + "8000" "200000", "pulse_amplitude_index"),
    ],
)
def test_spot_truncated_optional_field_names_it(flags: str, present: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        spot(flags + SPO2PR + present)
    assert (info.value.characteristic, info.value.field) == ("2a5e", field)
    assert "flags promise" in str(info.value)


@pytest.mark.parametrize(("payload", "field"), [("", "flags"), ("00", "spo2"), ("0062", "spo2"), ("006200", "pulse_rate")])
def test_spot_short_mandatory_fields(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        spot(payload)
    assert info.value.field == field


def test_spot_json_dict() -> None:
    d = to_json_dict(spot("1f" + SPO2PR + STAMP + "8101" + "200000" + PAI_2_5))
    assert d == {
        "spo2": 98.0,
        "pulse_rate": 72.0,
        "timestamp": "2024-03-15T09:30:45",
        "measurement_status": ["validated_data", "fully_qualified_data"],  # 0x0181: bits 7, 8 (bit 0 reserved)
        "device_and_sensor_status": ["low_perfusion_detected"],
        "pulse_amplitude_index": 2.5,
        "device_clock_not_set": True,
        "special_values": {},
    }
    json.dumps(d)


# -- continuous ---------------------------------------------------------------

FAST = "6100" "4a00"  # SpO2 97, PR 74
SLOW = "6300" "4600"  # SpO2 99, PR 70


def test_continuous_minimal() -> None:
    assert cont("00" + SPO2PR) == PlxContinuousMeasurement(
        spo2=98.0,
        pulse_rate=72.0,
        spo2_fast=None,
        pulse_rate_fast=None,
        spo2_slow=None,
        pulse_rate_slow=None,
        measurement_status=(),
        device_and_sensor_status=(),
        pulse_amplitude_index=None,
        special_values={},
    )


def test_continuous_all_fields() -> None:
    # flags 0x1F: fast, slow, measurement status, device and sensor status, PAI.
    assert cont("1f" + SPO2PR + FAST + SLOW + "0001" + "010000" + PAI_2_5) == PlxContinuousMeasurement(
        spo2=98.0,
        pulse_rate=72.0,
        spo2_fast=97.0,
        pulse_rate_fast=74.0,
        spo2_slow=99.0,
        pulse_rate_slow=70.0,
        measurement_status=(MS.FULLY_QUALIFIED_DATA,),
        device_and_sensor_status=(DS.EXTENDED_DISPLAY_UPDATE_ONGOING,),
        pulse_amplitude_index=2.5,
        special_values={},
    )


@pytest.mark.parametrize(
    ("flags", "extra", "expected"),
    [
        ("01", FAST, PlxContinuousMeasurement(spo2=98.0, pulse_rate=72.0, spo2_fast=97.0, pulse_rate_fast=74.0)),
        ("02", SLOW, PlxContinuousMeasurement(spo2=98.0, pulse_rate=72.0, spo2_slow=99.0, pulse_rate_slow=70.0)),
        ("04", "0040", PlxContinuousMeasurement(spo2=98.0, pulse_rate=72.0, measurement_status=(MS.QUESTIONABLE_MEASUREMENT_DETECTED,))),
        ("08", "080000", PlxContinuousMeasurement(spo2=98.0, pulse_rate=72.0, device_and_sensor_status=(DS.INADEQUATE_SIGNAL_DETECTED,))),
        ("10", PAI_2_5, PlxContinuousMeasurement(spo2=98.0, pulse_rate=72.0, pulse_amplitude_index=2.5)),
    ],
)
def test_continuous_each_flag(flags: str, extra: str, expected: PlxContinuousMeasurement) -> None:
    assert cont(flags + SPO2PR + extra) == expected


def test_continuous_special_values() -> None:
    # SpO2PR-Normal SpO2 NaN; SpO2PR-Fast PR NRes.
    assert cont("01" "ff07" "4800" "6100" "0008") == PlxContinuousMeasurement(
        spo2=None,
        pulse_rate=72.0,
        spo2_fast=97.0,
        pulse_rate_fast=None,
        special_values={"spo2": "nan", "pulse_rate_fast": "nres"},
    )


def test_continuous_reserved_flag_bits_and_trailing_bytes_are_ignored() -> None:
    assert cont("e0" + SPO2PR + "deadbeef") == cont("00" + SPO2PR)


@pytest.mark.parametrize(
    ("flags", "present", "field"),
    [
        ("01", "", "spo2_fast"),
        ("01", "6100", "pulse_rate_fast"),
        ("02", "", "spo2_slow"),
        ("02", "630046", "pulse_rate_slow"),
        ("03", FAST, "spo2_slow"),
        ("04", "", "measurement_status"),
        ("08", "", "device_and_sensor_status"),
        ("08", "0800", "device_and_sensor_status"),
        ("10", "", "pulse_amplitude_index"),
        ("1f", FAST + SLOW + "0001" "010000", "pulse_amplitude_index"),
    ],
)
def test_continuous_truncated_optional_field_names_it(flags: str, present: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        cont(flags + SPO2PR + present)
    assert (info.value.characteristic, info.value.field) == ("2a5f", field)
    assert "flags promise" in str(info.value)


def test_continuous_json_dict() -> None:
    d = to_json_dict(cont("03" + SPO2PR + FAST + SLOW))
    assert d == {
        "spo2": 98.0,
        "pulse_rate": 72.0,
        "spo2_fast": 97.0,
        "pulse_rate_fast": 74.0,
        "spo2_slow": 99.0,
        "pulse_rate_slow": 70.0,
        "measurement_status": [],
        "device_and_sensor_status": [],
        "pulse_amplitude_index": None,
        "special_values": {},
    }
    json.dumps(d)


def test_encode_golden() -> None:
    m = PlxContinuousMeasurement(spo2=98.0, pulse_rate=72.0, spo2_slow=99.0, pulse_rate_slow=70.0, pulse_amplitude_index=2.5)
    assert encode_plx_continuous_measurement(m).hex() == "12" + SPO2PR + SLOW + PAI_2_5


def test_encode_half_pair_sends_other_half_as_nan() -> None:
    m = PlxContinuousMeasurement(spo2=98.0, pulse_rate=72.0, spo2_fast=97.0)
    assert encode_plx_continuous_measurement(m).hex() == "01" + SPO2PR + "6100" "ff07"


def test_measurements_are_immutable_and_hashable() -> None:
    m = spot("00" "ff07" "4800")
    with pytest.raises(TypeError):
        m.special_values["spo2"] = "nres"  # type: ignore[index]
    assert hash(m) == hash(spot("00" "ff07" "4800"))


# -- properties ---------------------------------------------------------------

_values = st.one_of(
    st.integers(min_value=0, max_value=300).map(float),
    st.integers(min_value=0, max_value=2045).map(lambda m: m / 10),
)
_special = st.sampled_from(["nan", "nres", "+inf", "-inf", "reserved"])
_timestamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


def _sfloat_field(draw: st.DrawFn, name: str, specials: dict[str, str]) -> float | None:
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        specials[name] = draw(_special)
        return None
    return draw(_values)


@st.composite
def spot_measurements(draw: st.DrawFn) -> PlxSpotCheckMeasurement:
    specials: dict[str, str] = {}
    spo2 = _sfloat_field(draw, "spo2", specials)
    pulse_rate = _sfloat_field(draw, "pulse_rate", specials)
    pai = _sfloat_field(draw, "pulse_amplitude_index", specials) if draw(st.booleans()) else None
    return PlxSpotCheckMeasurement(
        spo2=spo2,
        pulse_rate=pulse_rate,
        timestamp=draw(st.none() | _timestamps),
        measurement_status=tuple(m for m in MS if draw(st.booleans())),
        device_and_sensor_status=tuple(m for m in DS if draw(st.booleans())),
        pulse_amplitude_index=pai,
        device_clock_not_set=draw(st.booleans()),
        special_values=specials,
    )


@st.composite
def continuous_measurements(draw: st.DrawFn) -> PlxContinuousMeasurement:
    specials: dict[str, str] = {}
    values: dict[str, float | None] = {
        "spo2": _sfloat_field(draw, "spo2", specials),
        "pulse_rate": _sfloat_field(draw, "pulse_rate", specials),
    }
    for pair in (("spo2_fast", "pulse_rate_fast"), ("spo2_slow", "pulse_rate_slow")):
        present = draw(st.booleans())
        for name in pair:
            values[name] = _sfloat_field(draw, name, specials) if present else None
    values["pulse_amplitude_index"] = (
        _sfloat_field(draw, "pulse_amplitude_index", specials) if draw(st.booleans()) else None
    )
    return PlxContinuousMeasurement(
        **values,
        measurement_status=tuple(m for m in MS if draw(st.booleans())),
        device_and_sensor_status=tuple(m for m in DS if draw(st.booleans())),
        special_values=specials,
    )


@given(spot_measurements())
def test_spot_round_trip(m: PlxSpotCheckMeasurement) -> None:
    assert decode_plx_spot_check_measurement(encode_plx_spot_check_measurement(m)) == m


@given(continuous_measurements())
def test_continuous_round_trip(m: PlxContinuousMeasurement) -> None:
    assert decode_plx_continuous_measurement(encode_plx_continuous_measurement(m)) == m


@given(st.binary(max_size=40))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    for decode, characteristic in (
        (decode_plx_spot_check_measurement, "2a5e"),
        (decode_plx_continuous_measurement, "2a5f"),
    ):
        try:
            decode(data)
        except DecodeError as exc:
            assert exc.characteristic == characteristic
            assert exc.field
