"""Card and QR readers on a serial port: YAML profiles in firmware_configs/readers/, validated
when loaded. Readers that act as USB keyboards need no profile: they type into the screen.

A profile says how the reader frames what it read and where the number is in a frame:

- `framing.end` (hex bytes) ends every frame: ETX for an STX/ETX reader, CR or CR LF for a
  scanner that sends lines. `framing.start`, if set, starts one: bytes before it are line noise.
- `pattern`, a regular expression with a group named `number`, finds the number in a frame's
  text (frames are ASCII: readers send digits and letters as characters).
- `identifier`, card or qr, is the name space its pseudonym is derived in (contract/pseudonym.py).

The port is not in the profile: it is the kiosk's (settings, `readers:`), the model is the reader's.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from firmware_configs.laundry import format_problems


class ReaderProfileError(ValueError):
    """A reader profile that cannot be used; the message names the file, the field and the problem."""


def _hex_bytes(text: object) -> object:
    if not isinstance(text, str):
        return text
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{text!r} is not hex bytes, e.g. '02' or '0d 0a'") from None


HexBytes = Annotated[bytes, BeforeValidator(_hex_bytes), Field(min_length=1, max_length=4)]


class Framing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: HexBytes | None = Field(default=None, description="bytes that start a frame (STX: '02'); none: lines")
    end: HexBytes = Field(description="bytes that end a frame (ETX: '03', CR: '0d', CR LF: '0d 0a')")
    max_bytes: int = Field(
        default=256, ge=8, le=4096,
        description="a frame longer than this is noise and dropped (a scanner left on, a wrong baud rate)",
    )


class ReaderProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="the name used in settings")
    manufacturer: str = Field(min_length=1)
    identifier: Literal["card", "qr"] = Field(description="what it reads: a resident card's number, or a QR code's text")
    baudrate: int = Field(default=9600, gt=0, le=921_600)
    framing: Framing
    pattern: str = Field(description="a regular expression with a group named 'number', searched in a frame's text")
    notes: str = Field(default="", description="where the facts above come from; what is unverified")

    @field_validator("pattern")
    @classmethod
    def _has_number_group(cls, pattern: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
        if "number" not in compiled.groupindex:
            raise ValueError(f"{pattern!r} has no group named 'number', e.g. (?P<number>[0-9]{{10}})")
        return pattern


def load_reader_profiles() -> dict[str, ReaderProfile]:
    """Every profile shipped in firmware_configs/readers/, by model name."""
    profiles: dict[str, ReaderProfile] = {}
    for source in sorted(files(__package__).joinpath("readers").iterdir(), key=lambda t: t.name):
        name = f"firmware_configs/readers/{source.name}"
        if not source.name.endswith(".yaml"):
            continue
        try:
            profile = ReaderProfile.model_validate(yaml.safe_load(source.read_text(encoding="utf-8")))
        except yaml.YAMLError as error:
            raise ReaderProfileError(f"{name}: not valid YAML: {error}") from None
        except ValidationError as error:
            raise ReaderProfileError("\n".join(format_problems(name, error))) from None
        if profile.model in profiles:
            raise ReaderProfileError(f"{name}: model: {profile.model!r} is defined twice")
        profiles[profile.model] = profile
    return profiles
