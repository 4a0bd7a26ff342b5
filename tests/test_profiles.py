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
