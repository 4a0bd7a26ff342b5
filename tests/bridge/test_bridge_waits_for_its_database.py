"""Issue 23, item 6: a bridge started while PostgreSQL is down exited 1 at once and relied on its
supervisor. It waits now, with a growing pause and a clear log line, its health endpoint saying
so, and starts when the database is back. Real parts: `doorstep bridge` as its own process, a
PostgreSQL cluster of its own that is down at first, a real Mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker_admin.mosquitto import MosquittoProcess, free_port
from tests.postgres import PostgresCluster, postgres_available
from tests.support import wait_for

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed (./dev test installs it)")


# uvicorn re-raises the SIGTERM it handled once it has shut down cleanly (so the process ends "by
# SIGTERM", which systemd counts as a clean stop); anything else is a crash.
CLEAN_STOP = (0, -signal.SIGTERM)


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    own = PostgresCluster()
    yield own
    own.stop()


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def answered(url: str) -> tuple[int, Any] | None:
    try:
        return get(url)
    except OSError:
        return None


def stop(bridge: subprocess.Popen[str], timeout: float) -> None:
    bridge.send_signal(signal.SIGTERM)
    try:
        bridge.wait(timeout=timeout)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        assert bridge.stderr is not None
        bridge.stderr.close()


def start_bridge(tmp_path: Path, database_url: str, broker: MosquittoProcess) -> tuple[subprocess.Popen[str], list[str], str]:
    port = free_port()
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"database_url": database_url, "environment": "development", "http_port": port,
                                      "broker": {"host": broker.host, "port": broker.port}}))
    bridge = subprocess.Popen([sys.executable, "-m", "doorstep", "bridge", "--config", str(config)],
                              stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    assert bridge.stderr is not None
    threading.Thread(target=lambda: log.extend(iter(bridge.stderr.readline, "")), daemon=True).start()
    return bridge, log, f"http://127.0.0.1:{port}"


def test_a_bridge_started_without_its_database_waits_says_so_and_starts_when_it_is_back(
    tmp_path: Path, cluster: PostgresCluster, running_broker: MosquittoProcess
) -> None:
    database_url = cluster.new_database()
    cluster.halt()
    bridge, log, base = start_bridge(tmp_path, database_url, running_broker)
    try:
        wait_for(lambda: (answered(base + "/healthz") or (0, None))[0] == 503, timeout=30, what="the health endpoint")
        status, health = get(base + "/healthz")
        assert health["status"] == "waiting_for_database" and health["attempts"] >= 1
        assert "connection" in health["last_error"].lower() or "refused" in health["last_error"].lower()
        assert get(base + "/api/v1/me") == (503, {"error": "starting", "reason": "the bridge is waiting for its database"})
        wait_for(lambda: any("waiting for the database" in line for line in log), what="the log line")
        assert bridge.poll() is None, "the bridge exited instead of waiting:\n" + "".join(log)
        cluster.start()
        wait_for(lambda: (answered(base + "/healthz") or (0, None))[0] == 200, timeout=45, what="the bridge up")
        assert get(base + "/healthz")[1]["status"] == "ok"
        assert get(base + "/api/v1/me")[0] == 401  # the API itself now: it wants a token
        wait_for(lambda: any("bridge worker" in line and "started" in line for line in log), what="the worker started")
    finally:
        stop(bridge, timeout=30)
    assert bridge.returncode in CLEAN_STOP, "".join(log)


def test_a_bridge_stopped_while_it_waits_stops_at_once(
    tmp_path: Path, cluster: PostgresCluster, running_broker: MosquittoProcess
) -> None:
    database_url = cluster.new_database()
    cluster.halt()
    bridge, log, base = start_bridge(tmp_path, database_url, running_broker)
    try:
        wait_for(lambda: (answered(base + "/healthz") or (0, None))[0] == 503, timeout=30, what="the health endpoint")
    finally:
        stop(bridge, timeout=10)
    assert bridge.returncode in CLEAN_STOP, "".join(log)
