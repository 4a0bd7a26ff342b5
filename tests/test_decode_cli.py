"""`doorstep decode`: a stable interface scripts depend on. One JSON object and exit 0, or a
one-line error and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from doorstep.cli import app
from drivers.ble.characteristics import CODECS
from drivers.ble.errors import DecodeError

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


def test_intermediate_cuff_pressure_is_named_the_current_cuff_pressure() -> None:
    # flags 0x00: mmHg | 4 mmHg | NaN | NaN: a cuff that has just begun to inflate. The GSS
    # (3.126, org.bluetooth.characteristic.intermediate_cuff_pressure) uses the Systolic
    # sub-field for the Current Cuff Pressure and leaves Diastolic and MAP unused; printed as
    # "systolic": 4.0 it read as a finished measurement of 4 mmHg.
    code, out, _ = decode("2a36", "00 0400 ff07 ff07")
    assert code == 0
    assert json.loads(out) == {
        "unit": "mmHg",
        "current_cuff_pressure": 4.0,
        "pulse_rate": None,
        "user_id": None,
        "timestamp": None,
        "status": [],
        "special_values": {},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("2a35", "02 7800 5000 5d00 ea07"), "2a35: field 'time_stamp' missing"),
        (("2a35", ""), "2a35: field 'flags' missing"),
        (("2a36", "00 04"), "2a36: field 'current_cuff_pressure' missing"),
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


@pytest.mark.parametrize(
    ("characteristic", "hex_bytes", "expected"),
    [
        # flags 0x06: °C, time stamp, type | 36.4 (FLOAT: exponent -1, mantissa 364) | time | body
        ("2a1c", "06 6c0100ff ea070b19111e05 02", {"temperature": 36.4, "unit": "Cel", "temperature_type": "body"}),
        # flags 0x00: SI | 14000 x 0.005 kg
        ("2a9d", "00 b036", {"weight": 70.0, "unit": "kg", "special_values": {}}),
        ("2a9d", "00 ffff", {"weight": None, "special_values": {"weight": "measurement_unsuccessful"}}),
        # flags 0x00 | SpO2 97 | pulse 72
        ("2a5e", "00 6100 4800", {"spo2": 97.0, "pulse_rate": 72.0}),
        # flags 0x03: time offset, concentration | seq 1 | base time | offset 0 | 0.00074 kg/L | finger, capillary whole blood
        ("2a18", "03 0100 ea070b19111e05 0000 4ab0 11", {"glucose_concentration": 0.00074, "unit": "kg/L", "glucose_mg_dl": 74.0, "glucose_mmol_l": 4.11}),
        ("2a52", "0600 0101", {"op_code": "response_code", "request_op_code": "report_stored_records", "response_code_value": "success"}),
        ("2a52", "0101", {"op_code": "report_stored_records", "operator": "all_records"}),
        ("2a08", "ea070b19111e05", {"date_time": "2026-11-25T17:30:05"}),
        ("2a2b", "ea070b19111e05 03 00 01", {"time": "2026-11-25T17:30:05", "day_of_week": 3, "adjust_reasons": ["manual_time_update"]}),
    ],
)
def test_every_profile_decodes_from_the_command_line(characteristic: str, hex_bytes: str, expected: dict[str, object]) -> None:
    code, out, err = decode(characteristic, hex_bytes)
    assert code == 0, err
    decoded = json.loads(out)
    assert {key: decoded[key] for key in expected} == expected


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(CODECS)), st.binary(max_size=40))
def test_no_bytes_make_any_codec_raise_anything_but_its_typed_error(short_uuid: str, data: bytes) -> None:
    codec = CODECS[short_uuid]
    try:
        decoded = codec.to_json(codec.decode(data))
    except DecodeError:
        return
    json.dumps(decoded)  # whatever decodes is plain JSON


# A characteristic value is at most 512 bytes (Bluetooth Core 5.3, Vol 3, Part F, 3.2.9), and
# most begin with a flags byte: flags with many bits set reach the optional fields, which
# random bytes seldom do. Every decode must also be quick whatever it is sent (a deadline per
# example, generous for a shared CI machine; a decoder is microseconds): a device sending
# garbage must never stall the session that reads it.
ATT_MAX_VALUE_BYTES = 512
flagged = st.tuples(st.sampled_from([0xFF, 0x7F, 0x3F, 0x1F, 0x0F]) | st.integers(0, 0xFF),
                    st.binary(max_size=ATT_MAX_VALUE_BYTES - 1)).map(lambda parts: bytes([parts[0]]) + parts[1])


@settings(max_examples=500, deadline=timedelta(seconds=1))
@given(st.sampled_from(sorted(CODECS)), flagged)
def test_values_up_to_the_att_maximum_with_any_flags_only_raise_the_typed_error(short_uuid: str, data: bytes) -> None:
    codec = CODECS[short_uuid]
    try:
        decoded = codec.to_json(codec.decode(data))
    except DecodeError as error:
        assert error.characteristic == short_uuid and error.field and error.reason
        return
    json.dumps(decoded, allow_nan=False)  # plain JSON: no NaN or infinity leaks out as a number


# -- Omron's own protocol (issue 22): the same blood-pressure fields, the same contract --

def test_an_omron_record_through_a_real_process() -> None:
    # eigger/hass-omron tests/test_record_parsers.py: a real HEM-7142T2's record, 126/88, pulse 84.
    done = subprocess.run(
        [sys.executable, "-m", "doorstep", "decode", "omron-record", "--model", "hem-7142t2",
         "6558541a331ade1800004c00ba00"], capture_output=True, text=True, check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    [line] = done.stdout.splitlines()
    assert json.loads(line) == {
        "unit": "mmHg", "systolic": 126.0, "diastolic": 88.0, "mean_arterial_pressure": None, "pulse_rate": 84.0,
        "user_id": None, "timestamp": "2026-06-17T19:35:30", "status": [], "special_values": {},
    }


def test_an_omron_advertisement_through_a_real_process() -> None:
    done = subprocess.run([sys.executable, "-m", "doorstep", "decode", "omron-adv", "01 08 00 00 00"],
                          capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"format": 1, "registered_users": 0, "pairing_mode": True,
                                       "clock_not_set": False, "data_waiting": False, "per_user": []}


@pytest.mark.parametrize(("args", "message"), [
    (["omron-record", "--model", "hem-7142t2", "6558541a"],
     "error: omron-record: field 'record' is 4 bytes; this model's records are 14"),
    (["omron-record", "--model", "hem-7361t", "6558541a331ade1800004c00ba00"],
     "error: omron-record: field 'record' is 14 bytes; this model's records are 16"),
    (["omron-record", "--model", "generic", "6558541a331ade1800004c00ba00"], "error: --model: one of hem-7142t2, hem-7361t"),
    (["omron-record", "6558541a331ade1800004c00ba00"], "error: --model: one of hem-7142t2, hem-7361t"),
    (["omron-adv", "77"], "error: omron-adv: field 'format' 1 bytes: at least a format and a status byte"),
])
def test_an_omron_value_that_does_not_fit_is_one_line_and_exit_1(args: list[str], message: str) -> None:
    code, out, err = decode(*args)
    assert (code, out) == (1, "")
    assert err.splitlines() == [message]
