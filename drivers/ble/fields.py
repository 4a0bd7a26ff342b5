"""The GATT field types every characteristic decoder reads, behind one bounds-checked cursor.

All multi-byte fields are little-endian (Bluetooth Core Spec Vol 3, Part G, 3.3.3.1 and the
GATT Specification Supplement (GSS) field tables). A missing field raises a DecodeError that
names it; a special IEEE-11073 value is recorded by field name instead of becoming a number.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

from drivers.ble.errors import DecodeError
from drivers.ble.ieee11073 import SpecialValue, decode_float, decode_sfloat, encode_float, encode_sfloat

DATE_TIME_SIZE = 7  # GSS 3.70 Date Time: uint16 year, uint8 month, day, hours, minutes, seconds
# GSS 3.70: Year 1582..9999 (Gregorian calendar), 0 = not known.
_FIRST_GREGORIAN_YEAR = 1582

# Every SIG field is little-endian; "big" exists only for non-compliant devices whose profile
# (firmware_configs/ble/) says so.
ByteOrder = Literal["little", "big"]


class FieldReader:
    """A cursor over one characteristic value that names the field it was reading."""

    def __init__(self, data: bytes, characteristic: str) -> None:
        self._data = bytes(data)
        self._offset = 0
        self.characteristic = characteristic
        # field name -> special value name, e.g. {"mean_arterial_pressure": "nan"}
        self.special_values: dict[str, str] = {}

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def fail(self, field_name: str, reason: str) -> DecodeError:
        return DecodeError(self.characteristic, field_name, reason)

    def take(self, size: int, field_name: str, *, mandatory: bool = False) -> bytes:
        if self.remaining < size:
            promise = "the spec requires" if mandatory else "flags promise"
            raise self.fail(
                field_name, f"missing: {promise} {size} bytes at offset {self._offset}, {self.remaining} remain"
            )
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def uint8(self, field_name: str, *, mandatory: bool = False) -> int:
        return self.take(1, field_name, mandatory=mandatory)[0]

    def uint16(self, field_name: str, *, mandatory: bool = False, byteorder: ByteOrder = "little") -> int:
        return int.from_bytes(self.take(2, field_name, mandatory=mandatory), byteorder)

    def sint16(self, field_name: str, *, mandatory: bool = False) -> int:
        return int.from_bytes(self.take(2, field_name, mandatory=mandatory), "little", signed=True)

    def uint24(self, field_name: str, *, mandatory: bool = False) -> int:
        return int.from_bytes(self.take(3, field_name, mandatory=mandatory), "little")

    def uint32(self, field_name: str, *, mandatory: bool = False) -> int:
        return int.from_bytes(self.take(4, field_name, mandatory=mandatory), "little")

    def sfloat(self, field_name: str, *, mandatory: bool = False, byteorder: ByteOrder = "little") -> float | None:
        """IEEE-11073 16-bit SFLOAT; a special value is recorded and returned as None."""
        raw = self.uint16(field_name, mandatory=mandatory, byteorder=byteorder)
        return self._number(field_name, decode_sfloat(raw))

    def float32(self, field_name: str, *, mandatory: bool = False) -> float | None:
        """IEEE-11073 32-bit FLOAT; a special value is recorded and returned as None."""
        return self._number(field_name, decode_float(self.uint32(field_name, mandatory=mandatory)))

    def date_time(self, field_name: str, *, mandatory: bool = False) -> datetime | None:
        """GSS 3.70 Date Time, naive (the device's clock has no zone); None if "not known"."""
        raw = self.take(DATE_TIME_SIZE, field_name, mandatory=mandatory)
        year, month, day, hours, minutes, seconds = struct.unpack("<HBBBBB", raw)
        if year == 0 or month == 0 or day == 0:
            return None
        if year < _FIRST_GREGORIAN_YEAR:
            raise self.fail(field_name, f"out of range: year {year} < {_FIRST_GREGORIAN_YEAR}")
        try:
            return datetime(year, month, day, hours, minutes, seconds)
        except ValueError as error:
            raise self.fail(field_name, f"out of range: {error}") from error

    def _number(self, field_name: str, value: float | SpecialValue) -> float | None:
        if isinstance(value, SpecialValue):
            self.special_values[field_name] = value.value
            return None
        return value


def encode_date_time(value: datetime) -> bytes:
    """GSS 3.70 Date Time, for simulators and for writing a device's clock."""
    return struct.pack("<HBBBBB", value.year, value.month, value.day, value.hour, value.minute, value.second)


def _encode_number(
    value: float | None,
    field_name: str,
    special_values: Mapping[str, str],
    *,
    encode: Callable[[float | SpecialValue, int], int],
    decode: Callable[[int], float | SpecialValue],
    size: int,
) -> bytes:
    if value is None:
        return encode(SpecialValue(special_values.get(field_name, SpecialValue.NAN)), 0).to_bytes(size, "little")
    # The coarsest exponent that represents the value exactly. The encoder's precision check
    # is relative, so 1e-6 would pass at exponent 0 as 0: insist it decodes back to the value.
    for exponent in range(0, -9, -1):
        try:
            raw = encode(value, exponent)
        except ValueError:
            continue
        if decode(raw) == value:
            return raw.to_bytes(size, "little")
    raise ValueError(f"{field_name}={value} is not representable")


def encode_sfloat_field(value: float | None, field_name: str, special_values: Mapping[str, str]) -> bytes:
    """A field as FieldReader.sfloat reads it: None is sent as its special value (NaN by default)."""
    return _encode_number(value, field_name, special_values, encode=encode_sfloat, decode=decode_sfloat, size=2)


def encode_float_field(value: float | None, field_name: str, special_values: Mapping[str, str]) -> bytes:
    """A field as FieldReader.float32 reads it: None is sent as its special value (NaN by default)."""
    return _encode_number(value, field_name, special_values, encode=encode_float, decode=decode_float, size=4)
