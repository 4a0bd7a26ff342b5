"""A test "systemd" for the kiosk: runs deploy/doorstep-launch as the unit's ExecStart does, and
starts it again whenever it exits (Restart=always), one log file per life."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from broker_admin.mosquitto import MosquittoProcess, free_port
from tests.support import CUFF_ADDRESS, KIOSK, SITE

REPOSITORY = Path(__file__).resolve().parents[2]
LAUNCHER = REPOSITORY / "deploy" / "doorstep-launch"
# systemd's RestartSec=5, shortened: the tests wait for restarts.
RESTART_S = 0.3


def kiosk_config(workdir: Path, broker: MosquittoProcess, public_key: str, *, health_s: float = 20,
                 cuff_every_s: float | None = None) -> Path:
    config: dict[str, Any] = {
        "site": SITE, "kiosk": KIOSK, "outbox_path": str(workdir / "outbox.sqlite3"),
        "broker": {"host": broker.host, "port": broker.port, "reconnect_min_s": 1, "reconnect_max_s": 1},
        "ack_timeout_s": 1.0, "telemetry_every_s": 5,
        "updates_root": str(workdir / "updates"), "release_public_keys": [public_key], "update_health_s": health_s,
        # A cuff measuring every second keeps the kiosk busy half the time: the update looks for
        # a gap often (it is deferred while the cuff measures).
        "update_retry_s": 0.3,
        "screen": {"enabled": False, "port": free_port()},
        "devices": [] if cuff_every_s is None else [
            {"address": CUFF_ADDRESS, "model": "simulated", "simulated": True, "reconnect_interval_s": cuff_every_s,
             "idle_timeout_s": 0.5}],
    }
    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class SupervisedKiosk:
    def __init__(self, workdir: Path, config: Path) -> None:
        self.workdir = workdir
        self.config = config
        self.logs: list[Path] = []
        self.exit_codes: list[int] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._running = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self.environment = {**os.environ, "DOORSTEP_UPDATES_ROOT": str(workdir / "updates"),
                            "DOORSTEP_FALLBACK_VENV": str(REPOSITORY / ".venv")}

    def __enter__(self) -> SupervisedKiosk:
        self._running = True
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._running = False
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGTERM)
                try:
                    self._process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(self._process.pid, signal.SIGKILL)
                    self._process.wait()
        self._thread.join(timeout=20)

    def _supervise(self) -> None:
        while self._running:
            with self._lock:
                if not self._running:
                    return
                log_path = self.workdir / f"agent-{len(self.logs) + 1}.log"
                with log_path.open("wb") as log:
                    self._process = subprocess.Popen(
                        [str(LAUNCHER), "agent", "--config", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True, env=self.environment, cwd=self.workdir)
                self.logs.append(log_path)
            process = self._process
            self.exit_codes.append(process.wait())
            time.sleep(RESTART_S)

    def kill(self) -> None:
        """SIGKILL to the agent and whatever it started (pip, a venv being made): a power cut."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGKILL)

    def lives(self) -> int:
        return len(self.logs)

    def running_version(self) -> str | None:
        """The version the latest life says it runs, once it runs."""
        if not self.logs:
            return None
        for line in reversed(self.logs[-1].read_text(errors="replace").splitlines()):
            if " running with " in line and ", Doorstep " in line:
                return line.split(", Doorstep ")[1].split()[0]
        return None

    def all_logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs)
