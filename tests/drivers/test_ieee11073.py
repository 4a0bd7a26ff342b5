"""IEEE 11073-20601 Annex F.8 SFLOAT/FLOAT vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.ieee11073 import SpecialValue, decode_float, decode_sfloat, encode_sfloat


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x07FF, SpecialValue.NAN),
        (0x0800, SpecialValue.NRES),
        (0x07FE, SpecialValue.POSITIVE_INFINITY),
        (0x0802, SpecialValue.NEGATIVE_INFINITY),
        (0x0801, SpecialValue.RESERVED),
    ],
)
def test_sfloat_special_values(raw: int, expected: SpecialValue) -> None:
    assert decode_sfloat(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x0000, 0.0),
        (0x0078, 120.0),  # exponent 0, mantissa 120
        (0xF04B, 7.5),  # exponent -1 (0xF), mantissa 75
        (0xF4B5, 120.5),  # exponent -1, mantissa 0x4B5 = 1205: no binary noise
        (0x0FFF, -1.0),  # exponent 0, mantissa -1 (two's complement)
        (0xFFFF, -0.1),  # exponent -1, mantissa -1
        (0x1002, 20.0),  # exponent +1, mantissa 2
        (0x8001, 1e-8),  # exponent -8 (most negative), mantissa 1
        (0x77FD, 2045e7),  # exponent +7, largest finite mantissa
        (0xE803, -20.45),  # exponent -2, mantissa 0x803 = -2045
    ],
)
def test_sfloat_numbers(raw: int, expected: float) -> None:
    assert decode_sfloat(raw) == expected


def test_special_mantissa_with_nonzero_exponent_is_a_number() -> None:
    # Annex F.8 defines the specials as exponent 0 only; 0x17FF is 2047e1.
    assert decode_sfloat(0x17FF) == 20470.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x007FFFFF, SpecialValue.NAN),
        (0x00800000, SpecialValue.NRES),
        (0x007FFFFE, SpecialValue.POSITIVE_INFINITY),
        (0x00800002, SpecialValue.NEGATIVE_INFINITY),
        (0x00800001, SpecialValue.RESERVED),
        (0xFF00016D, 36.5),  # exponent -1, mantissa 365: a thermometer reading
        (0x00FFFFFF, -1.0),
        (0x02000003, 300.0),
    ],
)
def test_float_vectors(raw: int, expected: float | SpecialValue) -> None:
    assert decode_float(raw) == expected


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_any_16_bit_value_decodes(raw: int) -> None:
    value = decode_sfloat(raw)
    assert isinstance(value, (float, SpecialValue))


@given(
    mantissa=st.integers(min_value=-2045, max_value=2045),
    exponent=st.integers(min_value=-8, max_value=7),
)
def test_encode_decode_round_trip(mantissa: int, exponent: int) -> None:
    value = round(mantissa * 10.0**exponent, max(0, -exponent))
    raw = encode_sfloat(value, exponent)
    assert decode_sfloat(raw) == value
    assert raw == ((exponent & 0xF) << 12) | (mantissa & 0xFFF)


@pytest.mark.parametrize("special", list(SpecialValue))
def test_special_values_round_trip(special: SpecialValue) -> None:
    assert decode_sfloat(encode_sfloat(special)) is special


@pytest.mark.parametrize(
    ("value", "exponent"),
    [(120.55, -1), (2046.0, 0), (-2046.0, 0), (1.0, 8), (1.0, -9)],
)
def test_encode_rejects_unrepresentable(value: float, exponent: int) -> None:
    with pytest.raises(ValueError):
        encode_sfloat(value, exponent)
