"""Device profiles are data shipped in the package, validated with errors that name file and field."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from firmware_configs.profiles import ProfileError, Quirk, load_ble_profiles, load_profile


def test_the_shipped_profiles_load() -> None:
    profiles = load_ble_profiles()
    assert {"generic", "simulated"} <= profiles.keys()
    assert profiles["generic"].services == ["1810"]
    assert profiles["generic"].quirks == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("model: Bad Name\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\n", "bad.yaml: model: String should match"),
        ("model: x\nmanufacturer: x\nkind: blood_pressure\nservices: []\n", "bad.yaml: services: List should have at least 1 item"),
        ("model: x\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\nquirks: [sings]\n", "bad.yaml: quirks.0: Input should be"),
        ("model: x\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\nname_patterns: ['(']\n", "is not a regular expression"),
        ("model: x\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\ncolour: red\n", "bad.yaml: colour: Extra inputs"),
        ("model: [unclosed\n", "bad.yaml: not valid YAML"),
        ("model: x\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\npairing_capability: Telepathy\n",
         "bad.yaml: pairing_capability: Input should be 'NoInputNoOutput'"),
    ],
)
def test_a_bad_profile_is_refused_naming_file_field_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=problem.replace("(", r"\(").replace("[", r"\[")):
        load_profile(path, "bad.yaml")


def test_quirks_are_named_in_plain_words() -> None:
    assert {q.value for q in Quirk} == {"needs_bonding", "forgets_bond"}


def test_a_retired_quirk_still_loads_is_ignored_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A user's model file written before issue 17 keeps working; the quirk is dropped, by name.
    path = tmp_path / "old.yaml"
    path.write_text("model: old\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\n"
                    "quirks: [replays_memory, needs_bonding, clock_unreliable]\n")
    with caplog.at_level(logging.WARNING, logger="firmware_configs.profiles"):
        profile = load_profile(path, "old.yaml")
    assert profile.quirks == [Quirk.NEEDS_BONDING]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert "'replays_memory' is retired and ignored" in warned[0]
    assert "'clock_unreliable' is retired and ignored" in warned[1]


def test_no_shipped_profile_lists_a_retired_quirk(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="firmware_configs.profiles"):
        load_ble_profiles()
    assert caplog.records == []


def test_the_required_cuff_profiles_ship_and_the_non_compliant_one_is_fixed_by_its_dialect() -> None:
    profiles = load_ble_profiles()
    assert {"generic", "omron", "and-medical", "yuwell", "noncompliant-example"} <= profiles.keys()
    quirky = profiles["noncompliant-example"].blood_pressure_dialect
    assert (quirky.pulse_rate_byte_order, quirky.measurement_status_byte_order, quirky.user_id_without_flag) == (
        "big",
        "big",
        True,
    )
    assert Quirk.NEEDS_BONDING in profiles["omron"].quirks


def test_the_omron_memory_profiles_load_with_their_layouts() -> None:
    profiles = load_ble_profiles()
    hem_7142t2 = profiles["hem-7142t2"].omron_memory
    assert hem_7142t2 is not None
    assert (hem_7142t2.record.size, hem_7142t2.users[0].start, hem_7142t2.users[0].records) == (14, 0x02E8, 14)
    assert profiles["hem-7361t"].omron_memory is not None
    assert profiles["generic"].omron_memory is None  # a SIG cuff


OMRON_BASE = """model: x
manufacturer: x
kind: blood_pressure
services: ['fe4a']
omron_memory:
  transport: single_channel
  unlock: token
  block_size: 0x2c
  settings_read: 0x0260
  settings_write: 0x02a4
  read_pointer: {size: 0x10, byte_order: little, users: [{write_slot: 0, unread: 4}]}
  clock: {offset: 0x2c, size: 16, year: 8, month: 9, day: 10, hour: 11, minute: 12, second: 13, checksum: 14}
  users: [{start: 0x02e8, records: 14}]
  record: {size: 14, byte_order: little, systolic: [104, 111], diastolic: [96, 103], pulse_rate: [88, 95],
           year: [82, 87], month: [66, 69], day: [70, 74], hour: [75, 79], minute: [52, 57], second: [58, 63],
           body_movement: [64, 64], irregular_heartbeat: [65, 65]}
"""


@pytest.mark.parametrize(("change", "problem"), [
    (("systolic: [104, 111]", "systolic: [104, 112]"), "omron_memory.record: Value error, systolic: bits 104..112 are not inside a 14-byte record"),
    (("users: [{start: 0x02e8, records: 14}]", "users: [{start: 0x02e8, records: 14}, {start: 0x0400, records: 14}]"),
     "omron_memory: Value error, read_pointer.users: 1 entries for 2 users"),
    (("checksum: 14", "checksum: 12"), "omron_memory.clock: Value error, the checksum must follow every part it sums"),
    (("transport: single_channel", "transport: bluetooth"), "omron_memory.transport: Input should be"),
])
def test_a_bad_omron_memory_map_is_refused_naming_the_field(tmp_path: Path, change: tuple[str, str], problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(OMRON_BASE.replace(*change))
    load_profile(_good(tmp_path), "good.yaml")
    with pytest.raises(ProfileError, match=problem.replace("(", r"\(").replace("[", r"\[")):
        load_profile(path, "bad.yaml")


def _good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(OMRON_BASE)
    return path
