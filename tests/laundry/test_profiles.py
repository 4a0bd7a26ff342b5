"""Laundry register maps: the shipped ones load; a bad one is refused naming file, field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from doorstep.cli import app
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
        ({"states": {"70000": "idle", "2": "running"}}, "bad.yaml: states.70000.[key]: Input should be less than or equal to 65535"),
        ({"states": {"2": "running"}}, "bad.yaml: states: no code means 'idle'"),
        ({"states": {"0": "idle", "2": "running"}}, "bad.yaml: commands.codes.pause: the map has no 'paused' state"),
        ({"phases": {}}, "bad.yaml: phases: a phase table needs fields.phase"),
        ({"error_codes": {"0": {"zh": "无", "en": "none"}}}, "bad.yaml: error_codes.0.[key]: Input should be greater than or equal to 1"),
        ({"error_codes": {"21": {"zh": "排水故障"}}}, "bad.yaml: error_codes.21.en: Field required"),
        ({"programs": [{"code": 0, "name": {"zh": "洗", "en": "Wash"}, "duration_s": 60, "price_points": 1}]},
         "bad.yaml: programs.0.code: Input should be greater than or equal to 1"),
        ({"programs": [{"code": 1, "name": {"zh": "洗", "en": "Wash"}, "duration_s": 0, "price_points": 1}]},
         "bad.yaml: programs.0.duration_s: Input should be greater than 0"),
        ({"programs": [{"code": 1, "name": {"zh": "洗", "en": "Wash"}, "duration_s": 60}]},
         "bad.yaml: programs.0.price_points: Field required"),
        ({"commands.codes": {"pause": 2}}, "bad.yaml: commands.codes.start: required"),
        ({"commands.codes": {"start": 1, "stop": 1}}, "bad.yaml: commands.codes.stop: code 1 is already commands.codes.start"),
        ({"commands.codes": {"start": 1, "spin": 9}}, "bad.yaml: commands.codes.spin.[key]: Input should be"),
        ({"fields.firmware": {"type": "string", "address": 13}}, "bad.yaml: fields.firmware.registers: Field required"),
        ({"fields.state": {"type": "u32", "address": 0}}, "bad.yaml: fields.state.type: Input should be 'u16'"),
        ({"fields.remaining_seconds": {"type": "float", "address": 3}}, "bad.yaml: fields.remaining_seconds: Input tag 'float'"),
        ({"fields.heartbeat": None}, "bad.yaml: fields.heartbeat: Input should be"),
        ({"status_block": {"start": 65530, "count": 16}}, "bad.yaml: status_block: registers 65530-65545 pass address 65535"),
        ({"colour": "white"}, "bad.yaml: colour: Extra inputs are not permitted"),
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


def test_a_file_that_is_not_a_map_is_a_typed_error_too(tmp_path: Path) -> None:
    cases = {"list.yaml": b"- 1\n- 2\n", "tabs.yaml": b"model: [unclosed\n", "latin1.yaml": "model: caf\xe9".encode("latin-1")}
    for name, body in cases.items():
        (tmp_path / name).write_bytes(body)
    with pytest.raises(LaundryProfileError, match="list.yaml: Input should be a valid dictionary"):
        load_laundry_profile(tmp_path / "list.yaml", "list.yaml")
    with pytest.raises(LaundryProfileError, match="tabs.yaml: not valid YAML"):
        load_laundry_profile(tmp_path / "tabs.yaml", "tabs.yaml")
    with pytest.raises(LaundryProfileError, match="latin1.yaml: not UTF-8 text"):
        load_laundry_profile(tmp_path / "latin1.yaml", "latin1.yaml")
    with pytest.raises(LaundryProfileError, match="missing.yaml: cannot read"):
        load_laundry_profile(tmp_path / "missing.yaml", "missing.yaml")


def test_two_files_of_one_model_are_refused_not_silently_chosen(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(WASHER_YAML.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(WASHER_YAML.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(LaundryProfileError) as info:
        load_laundry_profiles(tmp_path)
    assert str(info.value) == f"{tmp_path}/b.yaml: model: 'washer-retrofit-a' is already the model of {tmp_path}/a.yaml"


def test_config_validate_checks_maps_and_exits_non_zero_on_any_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    shipped = sorted(str(p) for p in WASHER_YAML.parent.glob("*.yaml"))
    good = runner.invoke(app, ["config", "validate", *shipped])
    assert good.exit_code == 0, good.output
    assert all(f"{path}: valid laundry register map" in good.stdout for path in shipped)
    bad = broken(tmp_path, {"kind": "ironing", "fields.credit": {"type": "u16", "address": 2}})
    result = runner.invoke(app, ["config", "validate", shipped[0], str(bad)])
    assert result.exit_code == 1
    # A misspelt kind is still recognised as a register map, and each problem is on its own line.
    assert f"{bad}: kind: Input should be 'washer' or 'dryer'" in result.stderr
    assert f"{shipped[0]}: valid laundry register map" in result.stdout
    missing = runner.invoke(app, ["config", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and f"{tmp_path / 'nope.yaml'}: cannot read" in missing.stderr
    assert runner.invoke(app, ["config", "validate"]).exit_code == 2  # no file: a usage error
