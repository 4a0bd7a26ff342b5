"""`doorstep doctor` against real parts: a broker, a pty serial line, an outbox, a running agent."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import serial
import yaml
from typer.testing import CliRunner

from broker_admin.mosquitto import MosquittoProcess
from doorstep.cli import app
from drivers.laundry.pty_link import PtyLink
from edge_agent.settings import AgentSettings
from edge_agent.status_file import AgentStatus, status_path, write_status
from tests.support import agent_settings, running_agent, wait_until

runner = CliRunner()


def write_config(path: Path, settings: AgentSettings, **changes: object) -> Path:
    data = settings.model_dump(mode="json", exclude_none=True) | changes
    path.write_text(yaml.safe_dump(data))
    return path


def doctor_json(config: Path) -> tuple[int, dict[str, dict[str, str]]]:
    result = runner.invoke(app, ["doctor", "--config", str(config), "--json"])
    checks = {}
    for line in result.stdout.splitlines():
        item = json.loads(line)
        checks[item["check"]] = item
    return result.exit_code, checks


@pytest.mark.asyncio
async def test_a_healthy_kiosk(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    settings = agent_settings(tmp_path, running_broker).model_copy(update={"telemetry_every_s": 0.5})
    with PtyLink() as line:
        cuffs = [d.model_dump(mode="json") | {"simulated": True} for d in settings.devices]
        config = write_config(tmp_path / "agent.yaml", settings, devices=cuffs,
                              laundry={"port": line.driver_path, "machines": {1: "washer-retrofit-a"}})
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.uplink is not None and agent.uplink.connected)
            await asyncio.sleep(0.6)  # a telemetry tick rewrites the status file with the link up
            code, checks = await asyncio.to_thread(doctor_json, config)
            text = await asyncio.to_thread(runner.invoke, app, ["doctor", "--config", str(config)])
    assert checks["bluetooth"]["verdict"] == "skipped"  # only a simulated cuff
    assert checks["serial port"]["verdict"] == "ok"
    assert checks["broker"]["verdict"] == "ok" and f"{running_broker.port}" in checks["broker"]["detail"]
    assert checks["clock"]["verdict"] in ("ok", "warning")
    assert checks["disk"]["verdict"] == "ok"
    assert checks["outbox"]["verdict"] in ("ok", "warning") and "undelivered" in checks["outbox"]["detail"]
    assert checks["agent"]["verdict"] == "ok" and str(os.getpid()) in checks["agent"]["detail"]
    assert {"job telemetry", "job outbox-prune", "job time-sanity", "job outbox-flush"} <= set(checks)
    # Each job's last run, as the agent's scheduler saw it: the 0.5 s flush has run by now.
    flush = checks["job outbox-flush"]
    assert flush["verdict"] == "ok" and ": ok;" in flush["detail"] and "next run" in flush["detail"]
    assert "outbox set aside" not in checks
    assert checks["outbox runway"]["verdict"] == "ok"
    assert code == 0 and text.exit_code == 0 and "ok   broker" in text.stdout


def test_a_broken_kiosk_says_what_is_wrong_and_exits_1(tmp_path: Path, broker: MosquittoProcess) -> None:
    # `broker` is not started: nothing listens on its port.
    settings = agent_settings(tmp_path, broker)
    config = write_config(tmp_path / "agent.yaml", settings, devices=[{"address": "A4:C1:38:12:34:56", "model": "omron"}],
                          laundry={"port": str(tmp_path / "ttyUSB9"), "machines": {1: "washer-retrofit-a"}})
    outbox = settings.outbox_path
    outbox.write_bytes(b"not a database" * 10)
    write_status(status_path(outbox), AgentStatus(pid=2**22 + 12345, written_at=datetime.now(UTC),
                                                  uplink_connected=True, clock_synchronised=True, jobs=[],
                                                  telemetry_every_s=60))
    code, checks = doctor_json(config)
    assert code == 1
    assert checks["bluetooth"]["verdict"] == "failed"  # no BlueZ here: named, not a crash
    assert checks["serial port"]["verdict"] == "failed" and "ttyUSB9" in checks["serial port"]["detail"]
    assert checks["broker"]["verdict"] == "failed" and "nothing accepts connections" in checks["broker"]["detail"]
    assert checks["outbox"]["verdict"] == "failed" and "corrupt" in checks["outbox"]["detail"]
    assert outbox.read_bytes() == b"not a database" * 10  # doctor changes nothing
    assert checks["agent"]["verdict"] == "failed" and "not running" in checks["agent"]["detail"]


def test_doctor_warns_of_a_runway_under_a_day(tmp_path: Path, broker: MosquittoProcess) -> None:
    """Issue 19: the runway the running agent last measured (its status file), said on the kiosk
    too, with what to do; under a day (contract/telemetry.py, RUNWAY_SHORT_H) a warning."""
    settings = agent_settings(tmp_path, broker, with_cuff=False)
    config = write_config(tmp_path / "agent.yaml", settings)

    def runway_check(growth: float | None, hours: float | None) -> dict[str, str]:
        write_status(status_path(settings.outbox_path), AgentStatus(
            pid=os.getpid(), written_at=datetime.now(UTC), uplink_connected=True, clock_synchronised=True, jobs=[],
            telemetry_every_s=60, outbox_growth_bytes_per_h=growth, outbox_runway_h=hours))
        return doctor_json(config)[1]["outbox runway"]

    short = runway_check(12 * 1024 * 1024, 6.5)
    assert short["verdict"] == "warning"
    assert short["detail"].startswith("6.5 h until the undelivered records fill the budget (+12.00 MB an hour)")
    assert "check the network, the broker and the bridge" in short["detail"]
    assert runway_check(1024 * 1024, 30) == {"check": "outbox runway", "verdict": "ok",
                                            "detail": "30 h until the undelivered records fill the budget (+1.00 MB an hour)"}
    assert runway_check(-1024 * 1024, None)["detail"] == "undelivered records not growing (-1.00 MB an hour)"
    assert runway_check(None, None)["detail"].startswith("not measured yet")


def test_a_bad_configuration_is_refused_before_any_check(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("site: Bad Site\nkiosk: k\n")
    result = runner.invoke(app, ["doctor", "--config", str(config)])
    assert result.exit_code == 2 and "site" in result.stderr


def test_doctor_shows_a_corrupt_outbox_set_aside_and_health_readings_over_budget(tmp_path: Path, broker: MosquittoProcess) -> None:
    from edge_agent.store.outbox import Outbox
    from edge_agent.settings import OutboxSettings
    from tests.test_outbox_upkeep import HEALTH, READING

    settings = agent_settings(tmp_path, broker).model_copy(update={"outbox": OutboxSettings(budget_mb=0.001)})
    settings.outbox_path.write_bytes(b"not a database" * 10)
    outbox = Outbox(settings.outbox_path, limits=settings.outbox.limits())  # sets it aside, starts afresh
    for _ in range(3):  # 1 KB of budget: three readings are over it
        outbox.save(HEALTH, READING)
    assert outbox.health_over_budget
    outbox.close()
    _code, checks = doctor_json(write_config(tmp_path / "agent.yaml", settings))
    assert checks["outbox"]["verdict"] == "warning" and "HEALTH READINGS OVER THE BUDGET" in checks["outbox"]["detail"]
    aside = checks["outbox set aside"]
    assert aside["verdict"] == "warning" and "outbox.sqlite3.corrupt-" in aside["detail"]


def test_a_serial_port_the_agent_owns_is_in_use_not_broken(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    with PtyLink() as line, serial.Serial(line.driver_path, exclusive=True):  # as the laundry bus holds it
        config = write_config(tmp_path / "agent.yaml", settings,
                              laundry={"port": line.driver_path, "machines": {1: "washer-retrofit-a"}})
        _code, checks = doctor_json(config)
    assert checks["serial port"]["verdict"] == "ok" and "in use" in checks["serial port"]["detail"]


def kiosk_with_a_reading(tmp_path: Path, broker: MosquittoProcess, outbox_path: Path) -> AgentSettings:
    """A kiosk's settings with its outbox at `outbox_path`, holding one reading."""
    from edge_agent.store.outbox import Outbox
    from tests.test_outbox_upkeep import HEALTH, READING

    settings = agent_settings(tmp_path, broker).model_copy(update={"outbox_path": outbox_path})
    outbox = Outbox(outbox_path, limits=settings.outbox.limits())
    outbox.save(HEALTH, READING)
    outbox.close()
    return settings


def test_doctor_fails_a_kiosk_whose_disk_has_no_room_for_one_save(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    from tests.small_disk import fill, free_bytes, small_disk

    with small_disk(tmp_path / "disk", 2 * 1024 * 1024) as disk:
        settings = kiosk_with_a_reading(tmp_path, running_broker, disk / "outbox.sqlite3")
        fill(disk)
        assert free_bytes(disk) == 0
        code, checks = doctor_json(write_config(tmp_path / "agent.yaml", settings))
    assert code == 1
    assert checks["disk"]["verdict"] == "failed" and "cannot save" in checks["disk"]["detail"]


def test_doctor_fails_a_kiosk_whose_outbox_is_on_a_read_only_filesystem(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    import subprocess

    from tests.small_disk import small_disk

    with small_disk(tmp_path / "disk", 2 * 1024 * 1024) as disk:
        settings = kiosk_with_a_reading(tmp_path, running_broker, disk / "outbox.sqlite3")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code, checks = doctor_json(write_config(tmp_path / "agent.yaml", settings))
    assert code == 1
    assert checks["outbox"]["verdict"] == "failed"
    assert "read-only" in checks["outbox"]["detail"] and "mounted read-only" in checks["outbox"]["detail"]


@contextmanager
def traversable_by_all(*paths: Path) -> Iterator[None]:
    """The checkout and its virtualenv reachable by another user for a while: a fresh clone can
    sit in a directory only root may enter (mktemp -d), where doctor run as `nobody` could not
    even start. Each directory's mode is put back afterwards."""
    changed: list[tuple[Path, int]] = []
    for path in {ancestor for path in paths for ancestor in (path.resolve(), *path.resolve().parents)}:
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            changed.append((path, mode))
            path.chmod(mode | stat.S_IXOTH)
    try:
        yield
    finally:
        for path, mode in changed:
            path.chmod(stat.S_IMODE(mode))


def test_doctor_fails_a_kiosk_whose_outbox_its_user_cannot_write(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    """The outbox made by root (someone ran the agent by hand), the agent's user another: doctor,
    run as that user, says the kiosk cannot save."""
    import shutil
    import subprocess
    import sys
    import tempfile

    from tests.small_disk import small_disk

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv, to run doctor as another user")
    # Outside tmp_path, which only root may enter.
    mount_point = Path(tempfile.mkdtemp(prefix="doorstep-doctor-"))
    mount_point.chmod(0o755)
    with small_disk(mount_point, 2 * 1024 * 1024) as disk:
        disk.chmod(0o755)  # root's, readable by all
        settings = kiosk_with_a_reading(tmp_path, running_broker, disk / "kiosk" / "outbox.sqlite3")
        (disk / "empty").mkdir(mode=0o755)  # nothing there yet, and not the agent's to write
        not_yet = settings.model_copy(update={"outbox_path": disk / "empty" / "outbox.sqlite3"})
        with traversable_by_all(Path(__file__).parent.parent, Path(sys.prefix)):
            results = [
                subprocess.run(
                    ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                     sys.executable, "-m", "doorstep", "doctor", "--config", str(config), "--json"],
                    capture_output=True, text=True, cwd=Path(__file__).parent.parent, timeout=60,
                )
                for config in (write_config(disk / "agent.yaml", settings), write_config(disk / "new.yaml", not_yet))
            ]
    mount_point.rmdir()
    for result in results:
        checks = {item["check"]: item for item in map(json.loads, result.stdout.splitlines())}
        assert result.returncode == 1, result.stderr
        assert checks["outbox"]["verdict"] == "failed" and "read-only" in checks["outbox"]["detail"]
        assert "uid 0" in checks["outbox"]["detail"]
