"""`doorstep decode`: a stable interface scripts depend on. One JSON object and exit 0, or a
one-line error and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from doorstep.cli import app

runner = CliRunner()

# flags 0x1E: mmHg, time stamp, pulse rate, user id, status | 128 | 82 | 97 |
# 2026-11-25 17:30:05 | pulse 71 | user 1 | status: body movement, pulse above range (bits 0, 3)
FULL_2A35 = "1e 8000 5200 6100 ea070b19111e05 4700 01 0900"


def decode(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["decode", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_contract_through_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "doorstep", "decode", "2a35", FULL_2A35], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stderr == ""
    [line] = done.stdout.splitlines()
    assert json.loads(line) == {
        "unit": "mmHg",
        "systolic": 128.0,
        "diastolic": 82.0,
        "mean_arterial_pressure": 97.0,
        "pulse_rate": 71.0,
        "user_id": 1,
        "timestamp": "2026-11-25T17:30:05",
        "status": ["body_movement", "pulse_rate_exceeds_upper_limit"],
        "special_values": {},
    }


@pytest.mark.parametrize("spelling", ["2a35", "2A35", "0x2a35", "00002a35-0000-1000-8000-00805f9b34fb"])
def test_characteristic_spellings(spelling: str) -> None:
    code, out, _ = decode(spelling, "00 7800 5000 5d00")
    assert code == 0
    assert json.loads(out)["systolic"] == 120.0


def test_kpa_as_sent_and_a_special_value_is_null_and_named() -> None:
    # flags 0x01 kPa | systolic 16.0 (exp -1, 160 = 0xF0A0) | diastolic 10.7 (0xF06B) | MAP NaN (0x07FF)
    code, out, _ = decode("2a35", "01 a0f0 6bf0 ff07")
    assert code == 0
    assert json.loads(out) == {
        "unit": "kPa",
        "systolic": 16.0,
        "diastolic": 10.7,
        "mean_arterial_pressure": None,
        "pulse_rate": None,
        "user_id": None,
        "timestamp": None,
        "status": [],
        "special_values": {"mean_arterial_pressure": "nan"},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("2a35", "02 7800 5000 5d00 ea07"), "2a35: field 'time_stamp' missing"),
        (("2a35", ""), "2a35: field 'flags' missing"),
        (("2a35", "zz"), "not hex bytes"),
        (("2a99", "00"), "unknown characteristic '2a99'"),
        (("not-a-uuid", "00"), "unknown characteristic"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(args: tuple[str, str], message: str) -> None:
    code, out, err = decode(*args)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert message in err
