"""`doorstep config validate` knows a card reader's profile: a shipped one is valid, a broken one
gets every problem by file and field; and agent.yaml's readers must name a shipped profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from doorstep.cli import app
from kiosk_config.peripherals import PrinterSettings, ReaderSettings

runner = CliRunner()
READERS = Path(__file__).resolve().parents[2] / "firmware_configs" / "readers"


def test_config_validate_checks_reader_profiles_by_file_and_field(tmp_path: Path) -> None:
    broken = tmp_path / "reader.yaml"
    broken.write_text("model: r1\nmanufacturer: x\nidentifier: card\nframing: {start: 'STX', end: '03'}\n"
                      "pattern: '^[0-9]+$'\n")
    result = runner.invoke(app, ["config", "validate", str(READERS / "rdm6300.yaml"), str(broken)])
    assert result.exit_code == 1
    assert "rdm6300.yaml: valid card or QR reader profile" in result.stdout
    assert f"{broken}: framing.start: 'STX' is not hex bytes" in result.stderr
    assert f"{broken}: pattern: '^[0-9]+$' has no group named 'number'" in result.stderr


def test_a_reader_must_name_a_shipped_profile_and_a_printer_say_where_it_is() -> None:
    with pytest.raises(ValidationError, match="no profile 'rdm9999' in firmware_configs/readers/; known: rdm6300"):
        ReaderSettings(port="/dev/ttyUSB0", model="rdm9999")
    with pytest.raises(ValidationError, match="connection usb needs usb_vendor_id and usb_product_id"):
        PrinterSettings(connection="usb")
    with pytest.raises(ValidationError, match="no printer 'XP-58'"):
        PrinterSettings(connection="file", path=Path("/dev/usb/lp0"), model="XP-58")
    assert PrinterSettings(connection="serial", port="/dev/ttyUSB1", paper_width_mm=80).characters_per_line == 48
