"""The kiosk's card and QR readers on serial ports, and its receipt printer (docs/devices.md).

Each reader is a port and a profile in firmware_configs/readers/ (what the reader sends); the
printer is where it is (USB ids, a serial port or a device file), its model in python-escpos's
printer database, and its paper's width."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from firmware_configs.readers import load_reader_profiles
from kiosk_config.sections import known_profile


class ReaderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: str = Field(description="its serial port; a /dev/serial/by-id/… name survives replugging, /dev/ttyUSB0 may not")
    model: str = Field(description="a profile in firmware_configs/readers/ (its 'model')")
    baudrate: int | None = Field(default=None, gt=0, le=921_600, description="over the profile's, for a reader set otherwise")
    reconnect_s: float = Field(default=2.0, gt=0, description="pause before opening its port again after it went")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        return known_profile(model, load_reader_profiles(), "firmware_configs/readers/")


# Characters of the default font (12x24 dots) on a line, by paper width: 58 mm paper prints
# 384 dots (32 characters), 80 mm paper 576 dots (48 characters) on the common 203 dpi heads.
CHARACTERS_PER_LINE = {58: 32, 80: 48}


class PrinterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: Literal["usb", "serial", "file"] = Field(
        description="usb: by vendor and product id (python-escpos over pyusb); serial: a port; "
        "file: a device file the kernel's printer driver made (/dev/usb/lp0), write-only: no status"
    )
    usb_vendor_id: int | None = Field(default=None, ge=0, le=0xFFFF, description="with usb, e.g. 0x0416")
    usb_product_id: int | None = Field(default=None, ge=0, le=0xFFFF, description="with usb, e.g. 0x5011")
    port: str | None = Field(default=None, description="with serial")
    baudrate: int = Field(default=9600, gt=0, le=921_600, description="with serial")
    path: Path | None = Field(default=None, description="with file")
    model: str = Field(default="default", description="a printer in python-escpos's capabilities database, e.g. TM-T20II")
    paper_width_mm: Literal[58, 80] = 58
    chinese: bool = Field(
        default=True,
        description="the printer has a GB18030 Chinese font (FS &): the receipt is in Chinese; otherwise in English",
    )
    status_query: bool = Field(
        default=True,
        description="ask the printer for paper and online status (DLE EOT) before printing; off for a printer that "
        "never answers (a printer on `file` is never asked)",
    )
    timeout_s: float = Field(default=15.0, gt=0, le=120, description="a print not done by then is reported failed")

    @model_validator(mode="after")
    def _where_it_is(self) -> Self:
        needed = {"usb": ("usb_vendor_id", "usb_product_id"), "serial": ("port",), "file": ("path",)}[self.connection]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"connection {self.connection} needs {' and '.join(missing)}")
        return self

    @field_validator("model")
    @classmethod
    def _known_printer(cls, model: str) -> str:
        # The printer database python-escpos ships (its import loads it: only when a printer is set).
        from escpos.capabilities import CAPABILITIES

        if model not in CAPABILITIES["profiles"]:
            raise ValueError(f"no printer {model!r} in python-escpos's capabilities database (e.g. default, ZJ-5870, POS-5890, TM-T20II)")
        return model

    @property
    def characters_per_line(self) -> int:
        return CHARACTERS_PER_LINE[self.paper_width_mm]
