"""Laundry register maps: the shipped ones load; a bad one is refused naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from firmware_configs.laundry import LaundryProfileError, MachineState, load_laundry_profile, load_laundry_profiles

WASHER_YAML = Path(__file__).resolve().parents[2] / "firmware_configs" / "laundry" / "washer-retrofit-a.yaml"


def test_the_shipped_maps_load_and_differ_in_layout() -> None:
    profiles = load_laundry_profiles()
    washer, dryer = profiles["washer-retrofit-a"], profiles["dryer-retrofit-b"]
    assert (washer.kind, dryer.kind) == ("washer", "dryer")
    assert washer.status_block.start != dryer.status_block.start
    assert washer.fields.remaining_seconds is not None and washer.fields.remaining_seconds.type == "u32"
    assert dryer.fields.remaining_seconds is not None and dryer.fields.remaining_seconds.type == "u16"
    assert set(washer.states.values()) == set(MachineState)
    assert all(p.name.zh and p.name.en for p in washer.programs + dryer.programs)


def broken(tmp_path: Path, change: dict[str, object]) -> Path:
    data = yaml.safe_load(WASHER_YAML.read_text(encoding="utf-8"))
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[last] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"fields.state": {"type": "u16", "address": 40}}, "bad.yaml: fields.state: registers 40-40 lie outside the status block 0-15"),
        ({"fields.credit": {"type": "u16", "address": 2}}, "bad.yaml: fields.credit: register 2 is already fields.program"),
        ({"fields.cycle_count": {"type": "u32", "address": 9}}, "bad.yaml: fields.heartbeat: register 10 is already fields.cycle_count"),
        ({"fields.remaining_seconds": {"type": "u32", "address": 3, "word_order": "middle"}}, "bad.yaml: fields.remaining_seconds"),
        ({"fields.door": {"type": "bits", "address": 5, "bits": {"open": 0}}}, "bad.yaml: fields.door.bits: only 'closed' and 'locked'"),
        ({"fields.door": {"type": "bits", "address": 5, "bits": {"closed": 16}}}, "bad.yaml: fields.door.bits.closed: Input should be less than or equal to 15"),
        ({"states": {"0": "spinning"}}, "bad.yaml: states.0: Input should be"),
        ({"status_block": {"start": 0, "count": 200}}, "bad.yaml: status_block.count: Input should be less than or equal to 125"),
        ({"commands.codes": {"start": 1, "add_time": 6}}, "bad.yaml: commands.codes.add_time: only dryers add time"),
        ({"commands.start": 10}, "bad.yaml: commands.start: the command registers overlap the status block"),
        ({"programs": []}, "bad.yaml: programs: List should have at least 1 item"),
        ({"kind": "ironing"}, "bad.yaml: kind: Input should be 'washer' or 'dryer'"),
    ],
)
def test_a_bad_map_names_file_field_and_problem(tmp_path: Path, change: dict[str, object], problem: str) -> None:
    with pytest.raises(LaundryProfileError) as info:
        load_laundry_profile(broken(tmp_path, change), "bad.yaml")
    assert problem in str(info.value)


def test_every_cross_field_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = broken(tmp_path, {"fields.state": {"type": "u16", "address": 40}, "commands.start": 10})
    with pytest.raises(LaundryProfileError) as info:
        load_laundry_profile(path, "bad.yaml")
    assert len(str(info.value).splitlines()) == 2
