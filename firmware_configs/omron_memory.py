"""An Omron cuff's memory map: where its records, read pointer and clock live, and how a record's
bits are laid out. Data in each model's YAML (firmware_configs/ble/hem-*.yaml), validated here.

Omron's "connect" cuffs keep their readings in an EEPROM-like memory read over a vendor service,
not in the SIG Blood Pressure Measurement. The facts per model come from public reverse
engineering (userx14/omblepy deviceSpecific/*.py, eigger/hass-omron omron_ble/device_catalog.py);
each YAML cites its sources.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# [first, last] bit, counted from the first (most significant) bit of the record read as one
# integer in the model's byte order: omblepy's notation (sharedDriver.py _bytearrayBitsToInt),
# so a layout can be checked against its source line by line.
BitRange = tuple[int, int]

Address = Field(ge=0, le=0xFFFF)  # the read/write commands carry a 16-bit address


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OmronRecordLayout(_Frozen):
    """One stored reading: its size, byte order, and the bits of each field."""

    size: int = Field(ge=4, le=64, description="bytes per record")
    byte_order: Literal["little", "big"]
    systolic: BitRange
    systolic_offset: int = Field(default=25, description="added to the stored value (omblepy: + 25)")
    diastolic: BitRange
    pulse_rate: BitRange
    year: BitRange
    year_offset: int = 2000
    month: BitRange
    day: BitRange
    hour: BitRange
    minute: BitRange
    second: BitRange
    body_movement: BitRange
    irregular_heartbeat: BitRange

    @model_validator(mode="after")
    def _bits_inside_the_record(self) -> Self:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, tuple):
                first, last = value
                if not 0 <= first <= last < self.size * 8:
                    raise ValueError(f"{name}: bits {first}..{last} are not inside a {self.size}-byte record")
        return self

    def fields(self) -> dict[str, BitRange]:
        return {name: value for name in type(self).model_fields if isinstance(value := getattr(self, name), tuple)}


class OmronUserArea(_Frozen):
    """One user's ring of records in memory."""

    start: int = Address
    records: int = Field(ge=1, le=255, description="slots in the ring")


class OmronPointerWords(_Frozen):
    """Where one user's two pointer words sit in the pointer region (byte offsets)."""

    write_slot: int = Field(ge=0, description="the slot the cuff writes next")
    unread: int = Field(ge=0, description="how many records before it are unread; 0x8000 = none")


class OmronReadPointer(_Frozen):
    offset: int = Field(default=0, ge=0, description="start of the pointer region in the settings area")
    size: int = Field(ge=2, le=0x30)
    byte_order: Literal["little", "big"]
    users: list[OmronPointerWords] = Field(min_length=1)

    @model_validator(mode="after")
    def _words_inside_the_region(self) -> Self:
        for index, words in enumerate(self.users):
            if max(words.write_slot, words.unread) + 2 > self.size:
                raise ValueError(f"users.{index}: a pointer word lies outside the {self.size}-byte region")
        return self


class OmronClock(_Frozen):
    """The clock block in the settings area: byte positions of each part and of its checksum
    (the low 8 bits of the sum of every byte before it)."""

    offset: int = Field(ge=0)
    size: int = Field(ge=8, le=0x30)
    year: int = Field(ge=0)  # stored as year - 2000
    month: int = Field(ge=0)
    day: int = Field(ge=0)
    hour: int = Field(ge=0)
    minute: int = Field(ge=0)
    second: int = Field(ge=0)
    checksum: int = Field(ge=1)

    @model_validator(mode="after")
    def _parts_inside_the_block(self) -> Self:
        parts = [self.year, self.month, self.day, self.hour, self.minute, self.second]
        if max(parts + [self.checksum]) >= self.size:
            raise ValueError(f"a clock byte lies outside the {self.size}-byte block")
        if max(parts) >= self.checksum:
            raise ValueError("the checksum must follow every part it sums")
        return self


class OmronMemory(_Frozen):
    """A profile of this kind is read through Omron's vendor service, not the SIG one."""

    transport: Literal["single_channel", "four_channels"] = Field(
        description="single_channel: service 0xFE4A, one TX and one RX characteristic (newer cuffs); "
        "four_channels: service ecbe3980-…, frames split over four 16-byte channels (older cuffs)")
    unlock: Literal["token", "key"] = Field(
        description="token: 0x11 + 4 bytes, echoed (bonded newer cuffs); key: 0x01 + the 16-byte key "
        "programmed at pairing")
    block_size: int = Field(ge=1, le=0x38, description="bytes asked for in one read command")
    settings_read: int = Address
    settings_write: int = Address
    read_pointer: OmronReadPointer
    clock: OmronClock
    users: list[OmronUserArea] = Field(min_length=1, max_length=4)
    record: OmronRecordLayout

    @model_validator(mode="after")
    def _one_pointer_per_user(self) -> Self:
        if len(self.read_pointer.users) != len(self.users):
            raise ValueError(f"read_pointer.users: {len(self.read_pointer.users)} entries for {len(self.users)} users")
        return self
