"""`doorstep agent` keeps its start-up objects out of the collector's full passes, frozen
before its event loop starts (runtime/heap.py): those passes were the p99 of a reading's
latency, and the collection that precedes the freeze must not stall a running cuff session."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from doorstep.cli import app


def test_the_agent_command_freezes_its_start_up_objects_before_its_loop_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"site: s\nkiosk: k\noutbox_path: {tmp_path / 'outbox.sqlite3'}\n")
    frozen_when_the_loop_starts: list[int] = []

    def loop_not_started(main: Coroutine[Any, Any, None]) -> None:
        # The agent's run is not what is tested here (everything else runs it for real).
        frozen_when_the_loop_starts.append(gc.get_freeze_count())
        main.close()

    gc.unfreeze()
    monkeypatch.setattr(asyncio, "run", loop_not_started)
    try:
        result = CliRunner().invoke(app, ["agent", "--config", str(config)])
    finally:
        gc.unfreeze()  # this test process is not the agent's
    assert result.exit_code == 0, result.output
    assert frozen_when_the_loop_starts and frozen_when_the_loop_starts[0] > 10_000
