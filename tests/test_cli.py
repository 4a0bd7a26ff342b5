"""The `doorstep` command's front door: help a technician can follow, clear config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from doorstep.cli import app
from runtime.config import ConfigError
from edge_agent.settings import AgentSettings

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("agent", "bridge", "demo"):
        assert command in result.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("site: Pudong\nkiosk: k1\n", "agent.yaml: site: String should match pattern"),
        ("kiosk: k1\n", "agent.yaml: site: Field required"),
        ("site: s\nkiosk: k\ndevices: [{address: 'AA', model: nosuchcuff}]\n", "agent.yaml: devices.0.model: Value error, no profile 'nosuchcuff'"),
        ("site: s\nkiosk: k\nbroker: {port: 70000}\n", "agent.yaml: broker.port: Input should be less than or equal to 65535"),
        ("site: s\nkiosk: k\nbrokr: {}\n", "agent.yaml: brokr: Extra inputs are not permitted"),
        ("- a list\n", "expected a mapping of settings"),
        ("site: [\n", "not valid YAML"),
    ],
)
def test_a_bad_agent_config_exits_non_zero_naming_file_field_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(text)
    result = runner.invoke(app, ["agent", "--config", str(config)])
    assert result.exit_code == 2
    assert problem in result.output


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bridge", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: cannot read" in result.output


def test_environment_variables_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("site: s\nkiosk: k\nbroker: {host: broker.example, port: 1884}\n")
    monkeypatch.setenv("DOORSTEP_AGENT_BROKER__HOST", "10.0.0.5")
    monkeypatch.setenv("DOORSTEP_AGENT_KIOSK", "kiosk-9")
    settings = AgentSettings.from_file(config)
    assert (settings.kiosk, settings.broker.host, settings.broker.port) == ("kiosk-9", "10.0.0.5", 1884)
    monkeypatch.setenv("DOORSTEP_AGENT_ACK_TIMEOUT_S", "soon")
    with pytest.raises(ConfigError, match="ack_timeout_s"):
        AgentSettings.from_file(config)


def test_config_validate_says_what_each_valid_file_is() -> None:
    root = Path(__file__).resolve().parents[1] / "firmware_configs"
    result = runner.invoke(
        app, ["config", "validate", str(root / "laundry" / "washer-retrofit-a.yaml"), str(root / "ble" / "omron.yaml")]
    )
    assert result.exit_code == 0
    assert "washer-retrofit-a.yaml: valid laundry register map" in result.stdout
    assert "omron.yaml: valid Bluetooth device profile" in result.stdout


def test_config_validate_reports_every_problem_of_every_file_and_exits_non_zero(tmp_path: Path) -> None:
    agent = tmp_path / "agent.yaml"
    agent.write_text("site: Bad Site\nkiosk: k1\nbroker: {port: 0}\n")
    bridge = tmp_path / "bridge.yaml"
    bridge.write_text("database_url: sqlite:///x\nhttp_port: 99999\n")
    unknown = tmp_path / "what.yaml"
    unknown.write_text("colour: red\n")
    good = tmp_path / "good.yaml"
    good.write_text("site: s\nkiosk: k\n")
    result = runner.invoke(app, ["config", "validate", str(agent), str(bridge), str(unknown), str(good)])
    assert result.exit_code == 1
    assert f"{agent}: site: String should match pattern" in result.stderr
    assert f"{agent}: broker.port: Input should be greater than or equal to 1" in result.stderr
    assert f"{bridge}: http_port: Input should be less than or equal to 65535" in result.stderr
    assert f"{unknown}: cannot tell what this configures" in result.stderr
    assert f"{good}: valid agent configuration" in result.stdout


def test_config_validate_names_file_field_and_problem_of_a_profile_and_accepts_a_retired_quirk(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad-cuff.yaml"
    bad.write_text("model: x\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\nquirks: [sings]\n")
    old = tmp_path / "old-cuff.yaml"
    old.write_text("model: x\nmanufacturer: x\nkind: blood_pressure\nservices: ['1810']\nquirks: [replays_memory]\n")
    result = runner.invoke(app, ["config", "validate", str(bad), str(old)])
    assert result.exit_code == 1
    assert f"{bad}: quirks.0: Input should be 'needs_bonding' or 'forgets_bond'" in result.stderr
    assert f"{old}: valid Bluetooth device profile" in result.stdout


def test_config_validate_checks_a_site_laundry_room(tmp_path: Path) -> None:
    site = tmp_path / "agent.yaml"
    site.write_text(
        "site: s\nkiosk: k\nlaundry:\n  port: /dev/ttyUSB0\n  baudrate: fast\n"
        "  machines: {1: washer-retrofit-a, 300: dryer-retrofit-b, 2: washer-9000}\n  poll: {idle_s: 0}\n"
    )
    result = runner.invoke(app, ["config", "validate", str(site)])
    assert result.exit_code == 1
    assert f"{site}: laundry.baudrate: Input should be a valid integer" in result.stderr
    assert f"{site}: laundry.machines: unit 300: Modbus units are 1-247" in result.stderr
    assert f"{site}: laundry.machines: unit 2: no register map 'washer-9000'" in result.stderr
    assert f"{site}: laundry.poll.idle_s: Input should be greater than 0" in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text("site: s\nkiosk: k\nlaundry: {port: /dev/ttyUSB0, machines: {1: washer-retrofit-a}}\n")
    assert runner.invoke(app, ["config", "validate", str(good)]).exit_code == 0
