"""Bridge workers as real processes (`doorstep bridge --config FILE`), to be SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from broker_admin.mosquitto import MosquittoProcess, free_port


@dataclass
class WorkerProcess:
    name: str
    config: Path
    log: Path
    http_port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "doorstep", "bridge", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT,
            )

    def wait_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, f"{self.name} exited; see {self.log}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{self.name} did not serve within {timeout} s; see {self.log}")

    def stored(self, token: str) -> float:
        """Messages this worker stored for the first time, from its /metrics (`token`: a reader's)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("doorstep_bridge_messages_total{") and 'outcome="stored"' in line
        )

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def worker_processes(tmp_path: Path, broker: MosquittoProcess, database_url: str, count: int,
                     **settings: Any) -> list[WorkerProcess]:
    """`count` workers' configurations; `settings` are added to each (e.g. payload_keys)."""
    workers = []
    for index in range(1, count + 1):
        port = free_port()
        config = tmp_path / f"bridge-{index}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "database_url": database_url,
                    "broker": {"host": broker.host, "port": broker.port, "reconnect_min_s": 1, "reconnect_max_s": 1},
                    "client_id": f"bridge-worker-{index}",
                    "environment": "development",
                    "http_port": port,
                    **settings,
                }
            )
        )
        workers.append(WorkerProcess(f"worker-{index}", config, tmp_path / f"bridge-{index}.log", port))
    return workers
