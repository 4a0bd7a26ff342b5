"""IEEE 11073-20601 SFLOAT-Type and FLOAT-Type decoding (Annex F.8).

Both are ``mantissa * 10**exponent`` with *signed two's-complement* exponent
and mantissa (not biased like IEEE 754). A handful of reserved mantissas
with exponent 0 are special values which are never numbers, so they decode
to :class:`SpecialValue` rather than ``float('nan')``: a caller cannot
accidentally do arithmetic on "measurement not possible".
"""

from __future__ import annotations

from enum import StrEnum


class SpecialValue(StrEnum):
    """IEEE 11073-20601 Annex F.8 special values (exponent 0, reserved mantissa)."""

    NAN = "nan"  # Not a Number: the device could not produce a value
    NRES = "nres"  # Not at this Resolution
    POSITIVE_INFINITY = "+inf"
    NEGATIVE_INFINITY = "-inf"
    RESERVED = "reserved"  # reserved for future use by 11073


# SFLOAT: 4-bit exponent, 12-bit mantissa (Annex F.8, SFLOAT-Type).
_SFLOAT_SPECIALS: dict[int, SpecialValue] = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}
_SFLOAT_BY_SPECIAL: dict[SpecialValue, int] = {v: k for k, v in _SFLOAT_SPECIALS.items()}

# FLOAT: 8-bit exponent, 24-bit mantissa (Annex F.8, FLOAT-Type).
_FLOAT_SPECIALS: dict[int, SpecialValue] = {
    0x007FFFFF: SpecialValue.NAN,
    0x00800000: SpecialValue.NRES,
    0x007FFFFE: SpecialValue.POSITIVE_INFINITY,
    0x00800002: SpecialValue.NEGATIVE_INFINITY,
    0x00800001: SpecialValue.RESERVED,
}

_SFLOAT_MANTISSA_MIN, _SFLOAT_MANTISSA_MAX = -2048, 2047
# The top two positive and bottom three negative mantissas are the special values
# (0x07FE.. 0x07FF and 0x0800..0x0802), so finite numbers stay inside these.
_SFLOAT_FINITE_MIN, _SFLOAT_FINITE_MAX = -2045, 2045
_SFLOAT_EXPONENT_MIN, _SFLOAT_EXPONENT_MAX = -8, 7


def _signed(value: int, bits: int) -> int:
    """Interpret the low ``bits`` of ``value`` as two's complement."""
    sign_bit = 1 << (bits - 1)
    return (value & (sign_bit - 1)) - (value & sign_bit)


def _scale(mantissa: int, exponent: int) -> float:
    # round() to the decimal resolution the device chose: 1205e-1 must be 120.5,
    # not 120.50000000000001, or golden tests and JSON diffs become noise.
    return float(round(mantissa * 10.0**exponent, max(0, -exponent)))


def decode_sfloat(raw: int) -> float | SpecialValue:
    """Decode a 16-bit SFLOAT (``raw`` already assembled from little-endian bytes)."""
    if not 0 <= raw <= 0xFFFF:
        raise ValueError(f"SFLOAT must be 16 bits, got {raw:#x}")
    special = _SFLOAT_SPECIALS.get(raw)
    if special is not None:
        return special
    return _scale(_signed(raw & 0x0FFF, 12), _signed(raw >> 12, 4))


def decode_float(raw: int) -> float | SpecialValue:
    """Decode a 32-bit FLOAT (``raw`` already assembled from little-endian bytes)."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise ValueError(f"FLOAT must be 32 bits, got {raw:#x}")
    special = _FLOAT_SPECIALS.get(raw)
    if special is not None:
        return special
    return _scale(_signed(raw & 0x00FFFFFF, 24), _signed(raw >> 24, 8))


_FLOAT_BY_SPECIAL: dict[SpecialValue, int] = {v: k for k, v in _FLOAT_SPECIALS.items()}
# Mantissas 0x7FFFFE..0x800002 are the specials, so finite numbers stay inside these.
_FLOAT_FINITE_MIN, _FLOAT_FINITE_MAX = -(2**23) + 3, 2**23 - 3
_FLOAT_EXPONENT_MIN, _FLOAT_EXPONENT_MAX = -128, 127


def _encode(
    value: float,
    exponent: int,
    *,
    exponent_range: tuple[int, int],
    mantissa_range: tuple[int, int],
    exponent_bits: int,
    mantissa_bits: int,
    name: str,
) -> int:
    if not exponent_range[0] <= exponent <= exponent_range[1]:
        raise ValueError(f"{name} exponent {exponent} outside {exponent_range[0]}..{exponent_range[1]}")
    scaled = value / 10.0**exponent
    mantissa = round(scaled)
    # Refuse silent precision loss: 120.55 at exponent -1 is not representable.
    if abs(scaled - mantissa) > 1e-6 * max(1.0, abs(scaled)):
        raise ValueError(f"{value} has more precision than exponent {exponent} allows")
    if not mantissa_range[0] <= mantissa <= mantissa_range[1]:
        raise ValueError(f"{value} needs mantissa {mantissa}, outside the finite {name} range")
    exponent_field = exponent & ((1 << exponent_bits) - 1)  # two's complement in its width
    return (exponent_field << mantissa_bits) | (mantissa & ((1 << mantissa_bits) - 1))


def encode_sfloat(value: float | SpecialValue, exponent: int = 0) -> int:
    """Encode ``value`` as a 16-bit SFLOAT ``mantissa * 10**exponent``; ValueError if not representable."""
    if isinstance(value, SpecialValue):
        return _SFLOAT_BY_SPECIAL[value]
    return _encode(
        value,
        exponent,
        exponent_range=(_SFLOAT_EXPONENT_MIN, _SFLOAT_EXPONENT_MAX),
        mantissa_range=(_SFLOAT_FINITE_MIN, _SFLOAT_FINITE_MAX),
        exponent_bits=4,
        mantissa_bits=12,
        name="SFLOAT",
    )


def encode_float(value: float | SpecialValue, exponent: int = 0) -> int:
    """Encode ``value`` as a 32-bit FLOAT ``mantissa * 10**exponent``; ValueError if not representable."""
    if isinstance(value, SpecialValue):
        return _FLOAT_BY_SPECIAL[value]
    return _encode(
        value,
        exponent,
        exponent_range=(_FLOAT_EXPONENT_MIN, _FLOAT_EXPONENT_MAX),
        mantissa_range=(_FLOAT_FINITE_MIN, _FLOAT_FINITE_MAX),
        exponent_bits=8,
        mantissa_bits=24,
        name="FLOAT",
    )
