"""Golden and property tests for Temperature Measurement 0x2A1C (GSS; HTS 1.0 3.1, 3.2)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.errors import DecodeError
from drivers.ble.thermometer import (
    TemperatureMeasurement,
    TemperatureType,
    TemperatureUnit,
    decode_temperature_measurement,
    encode_temperature_measurement,
    to_json_dict,
)

CEL = TemperatureUnit.CELSIUS
DEGF = TemperatureUnit.FAHRENHEIT
# 32-bit FLOAT, little-endian: mantissa 366 (0x00016E), exponent -1 (0xFF) = 36.6
T_36_6 = "6e01" "00" "ff"
STAMP = "e807" "03" "0f" "09" "1e" "2d"  # 2024-03-15 09:30:45
STAMP_DT = datetime(2024, 3, 15, 9, 30, 45)


def tm(hex_payload: str) -> TemperatureMeasurement:
    return decode_temperature_measurement(bytes.fromhex(hex_payload))


def test_minimal_celsius() -> None:
    assert tm("00" + T_36_6) == TemperatureMeasurement(
        temperature=36.6,
        unit=CEL,
        timestamp=None,
        temperature_type=None,
        special_values={},
    )


def test_fahrenheit_with_all_fields() -> None:
    # flags 0x07: Fahrenheit, time stamp, type; 98.6 = mantissa 986 (0x0003DA), exponent -1;
    # type 6 = mouth.
    assert tm("07" "da0300ff" + STAMP + "06") == TemperatureMeasurement(
        temperature=98.6,
        unit=DEGF,
        timestamp=STAMP_DT,
        temperature_type=TemperatureType.MOUTH,
        special_values={},
    )


def test_exponent_zero_and_negative_values() -> None:
    assert tm("00" "25000000").temperature == 37.0  # mantissa 37, exponent 0
    assert tm("00" "c9ffffff").temperature == -5.5  # mantissa -55 (0xFFFFC9), exponent -1


def test_timestamp_only() -> None:
    assert tm("02" + T_36_6 + STAMP) == TemperatureMeasurement(temperature=36.6, unit=CEL, timestamp=STAMP_DT)


def test_unknown_date_is_none() -> None:
    assert tm("02" + T_36_6 + "0000" "00" "00" "0c" "00" "00").timestamp is None


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, TemperatureType.ARMPIT),
        (2, TemperatureType.BODY),
        (3, TemperatureType.EAR),
        (4, TemperatureType.FINGER),
        (5, TemperatureType.GASTRO_INTESTINAL_TRACT),
        (6, TemperatureType.MOUTH),
        (7, TemperatureType.RECTUM),
        (8, TemperatureType.TOE),
        (9, TemperatureType.TYMPANUM),
        (0, None),  # reserved for future use
        (10, None),  # reserved for future use
        (255, None),  # reserved for future use
    ],
)
def test_temperature_types(code: int, expected: TemperatureType | None) -> None:
    assert tm("04" + T_36_6 + f"{code:02x}") == TemperatureMeasurement(
        temperature=36.6, unit=CEL, temperature_type=expected
    )


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("ffff7f00", "nan"),  # 0x007FFFFF
        ("00008000", "nres"),  # 0x00800000
        ("feff7f00", "+inf"),  # 0x007FFFFE
        ("02008000", "-inf"),  # 0x00800002
        ("01008000", "reserved"),  # 0x00800001
    ],
)
def test_special_values(raw: str, name: str) -> None:
    m = tm("00" + raw)
    assert m == TemperatureMeasurement(temperature=None, unit=CEL, special_values={"temperature": name})
    assert to_json_dict(m)["special_values"] == {"temperature": name}
    assert encode_temperature_measurement(m) == bytes.fromhex("00" + raw)


def test_reserved_flag_bits_and_trailing_bytes_are_ignored() -> None:
    assert tm("f8" + T_36_6 + "deadbeef") == tm("00" + T_36_6)


@pytest.mark.parametrize(
    ("flags", "present", "field"),
    [
        ("02", "", "time_stamp"),
        ("02", "e80703", "time_stamp"),
        ("04", "", "temperature_type"),
        ("06", STAMP, "temperature_type"),
    ],
)
def test_truncated_optional_field_names_it(flags: str, present: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        tm(flags + T_36_6 + present)
    assert (info.value.characteristic, info.value.field) == ("2a1c", field)
    assert "flags promise" in str(info.value)


@pytest.mark.parametrize(("payload", "field"), [("", "flags"), ("00", "temperature"), ("006e0100", "temperature")])
def test_short_mandatory_fields(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        tm(payload)
    assert info.value.field == field
    assert "the spec requires" in str(info.value)


def test_out_of_range_date_raises() -> None:
    with pytest.raises(DecodeError) as info:
        tm("02" + T_36_6 + "e807" "0d" "01" "00" "00" "00")  # month 13
    assert info.value.field == "time_stamp"


def test_json_dict_uses_sig_names() -> None:
    d = to_json_dict(tm("07" "da0300ff" + STAMP + "09"))
    assert d == {
        "temperature": 98.6,
        "unit": "degF",
        "timestamp": "2024-03-15T09:30:45",
        "temperature_type": "tympanum",
        "special_values": {},
    }
    json.dumps(d)


def test_json_dict_absent_fields_are_none() -> None:
    assert to_json_dict(tm("00" + T_36_6)) == {
        "temperature": 36.6,
        "unit": "Cel",
        "timestamp": None,
        "temperature_type": None,
        "special_values": {},
    }


def test_encode_golden() -> None:
    m = TemperatureMeasurement(
        temperature=98.6, unit=DEGF, timestamp=STAMP_DT, temperature_type=TemperatureType.MOUTH
    )
    assert encode_temperature_measurement(m).hex() == "07" "da0300ff" + STAMP + "06"


def test_encode_refuses_unrepresentable() -> None:
    with pytest.raises(ValueError, match="not representable"):
        # Nine decimals need a mantissa beyond FLOAT's 24 bits at any exponent.
        encode_temperature_measurement(TemperatureMeasurement(temperature=36.123456789, unit=CEL))


def test_measurement_is_immutable_and_hashable() -> None:
    m = tm("00" "ffff7f00")
    with pytest.raises(TypeError):
        m.special_values["temperature"] = "nres"  # type: ignore[index]
    assert hash(m) == hash(tm("00" "ffff7f00"))


# -- properties ---------------------------------------------------------------

_temperatures = st.one_of(
    st.integers(min_value=-500, max_value=500).map(float),
    st.integers(min_value=-50_000, max_value=50_000).map(lambda m: m / 100),
)
_special = st.sampled_from(["nan", "nres", "+inf", "-inf", "reserved"])
_timestamps = st.datetimes(min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def measurements(draw: st.DrawFn) -> TemperatureMeasurement:
    special = draw(st.none() | _special)
    return TemperatureMeasurement(
        temperature=None if special is not None else draw(_temperatures),
        unit=draw(st.sampled_from(TemperatureUnit)),
        timestamp=draw(st.none() | _timestamps),
        temperature_type=draw(st.none() | st.sampled_from(TemperatureType)),
        special_values={"temperature": special} if special is not None else {},
    )


@given(measurements())
def test_encode_decode_round_trip(m: TemperatureMeasurement) -> None:
    assert decode_temperature_measurement(encode_temperature_measurement(m)) == m


@given(st.binary(max_size=24))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    try:
        decode_temperature_measurement(data)
    except DecodeError as exc:
        assert exc.characteristic == "2a1c"
        assert exc.field
