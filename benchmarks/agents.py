"""The kiosk agent as a real process (`doorstep agent --config FILE`), as on a Pi."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from broker_admin.mosquitto import MosquittoProcess

from edge_agent.store.outbox import UNSENT_INDEX, UNSENT_SQL

from benchmarks.backlog import SITE


def write_config(path: Path, kiosk: str, outbox: Path, mqtt: MosquittoProcess, **settings: Any) -> Path:
    path.write_text(yaml.safe_dump({
        "site": SITE, "kiosk": kiosk, "outbox_path": str(outbox),
        "broker": {"host": mqtt.host, "port": mqtt.port, "reconnect_min_s": 1, "reconnect_max_s": 2},
        "trust_clock": "always",
        "log": {"level": "warning"},
        **settings,
    }))
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "doorstep", "agent", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def outbox_has_unsent(path: Path) -> bool:
    """Whether any record of the outbox at `path` still waits for the bridge: one probe of the
    outbox's partial index of unsent records, however long the backlog."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        query = f"SELECT EXISTS (SELECT 1 FROM outbox INDEXED BY {UNSENT_INDEX} WHERE {UNSENT_SQL})"
        return bool(db.execute(query).fetchone()[0])


def outbox_states(path: Path) -> dict[str, int]:
    """Records by state, read beside the running agent (WAL lets a reader in)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        # SQLModel stores the RecordState enum by its name (DELIVERED).
        return {state.lower(): n for state, n in db.execute("SELECT state, count(*) FROM outbox GROUP BY state")}
