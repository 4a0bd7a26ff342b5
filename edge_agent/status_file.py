"""The running agent's state for `doorstep doctor`, which runs as another process: a small
JSON file beside the outbox, replaced atomically (write, fsync, rename) on every telemetry tick."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class JobState(BaseModel):
    id: str
    next_run_time: datetime | None
    # From the scheduler's events (edge_agent/scheduling.py); absent in files of older agents.
    last_run_at: datetime | None = None
    last_outcome: str | None = None  # "ok", "failed" or "missed"
    last_error: str | None = None
    runs: int = 0
    failures: int = 0


class AgentStatus(BaseModel):
    pid: int
    written_at: datetime
    uplink_connected: bool
    clock_synchronised: bool
    jobs: list[JobState]
    telemetry_every_s: float
    # The outbox's runway as the last telemetry measured it (edge_agent/runway.py); absent in
    # files of older agents.
    outbox_growth_bytes_per_h: float | None = None
    outbox_runway_h: float | None = None


def status_path(outbox_path: Path) -> Path:
    return outbox_path.with_name("agent-status.json")


def write_status(path: Path, status: AgentStatus) -> None:
    write_atomically(path, status.model_dump_json())


def write_atomically(path: Path, text: str) -> None:
    """A reader (or the next start) finds the old file or the new one whole, never a part."""
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def read_status(path: Path) -> AgentStatus | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return AgentStatus.model_validate(data)
    except (OSError, ValueError):
        return None
