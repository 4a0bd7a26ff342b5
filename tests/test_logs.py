"""The agent's log rotates: a kiosk's SD card never fills with it."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from broker_admin.mosquitto import MosquittoProcess
from edge_agent.logs import LogSettings, configure_logging
from tests.support import KIOSK, SITE


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_log_file_rotates_at_its_size_and_keeps_so_many_old_files(tmp_path: Path, restored_logging: None) -> None:
    path = tmp_path / "logs" / "agent.log"  # its directory is made
    settings = LogSettings(file=path, max_mb=0.01, backups=2)
    configure_logging(settings)
    log = logging.getLogger("edge_agent.test")
    for n in range(2000):
        log.info("saved blood_pressure from A4:C1:38:12:34:56 (seq %d)", n)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["agent.log", "agent.log.1", "agent.log.2"]
    limit = settings.max_mb * 1024 * 1024
    assert all((path.parent / name).stat().st_size <= limit for name in files)
    assert "(seq 1999)" in path.read_text()  # the newest lines are in the current file


def test_the_agent_writes_its_rotating_log_and_not_every_job_run(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    log_file = tmp_path / "agent.log"
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "site": SITE, "kiosk": KIOSK, "outbox_path": str(tmp_path / "outbox.sqlite3"),
        "broker": {"host": running_broker.host, "port": running_broker.port},
        "log": {"file": str(log_file), "max_mb": 1, "backups": 3},
    }))
    agent = subprocess.Popen([sys.executable, "-m", "doorstep", "agent", "--config", str(config)],
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while "connected to broker" not in (log_file.read_text() if log_file.exists() else ""):
            assert time.monotonic() < deadline, "the agent wrote no log"
            time.sleep(0.1)
        time.sleep(1.5)  # three runs of the 0.5 s outbox-flush job
    finally:
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=15)
    text = log_file.read_text()
    assert "agent test-site/kiosk-1 running" in text
    assert "Running job" not in text and "executed successfully" not in text
    assert stderr == b""  # all of it went to the file


def test_a_log_file_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"site": SITE, "kiosk": KIOSK, "outbox_path": str(tmp_path / "o.sqlite3"),
                                      "log": {"file": str(blocker / "agent.log")}}))
    result = subprocess.run([sys.executable, "-m", "doorstep", "agent", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "log.file: cannot write" in result.stderr and "Traceback" not in result.stderr
