"""Start-up objects are kept out of the collector's full passes while the agent runs
(doorstep/heap.py): those passes were the p99 of a reading's latency."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.support import agent_settings, running_agent, wait_until


@pytest.mark.asyncio
async def test_the_running_agent_freezes_its_start_up_objects_and_lets_them_go_when_it_stops(tmp_path: Path, broker) -> None:
    gc.unfreeze()
    async with running_agent(agent_settings(tmp_path, broker, with_cuff=False)):
        await wait_until(lambda: gc.get_freeze_count() > 10_000, what="start-up objects frozen")
    # Stopped (or reloading): what it made may be garbage now, and collectable again.
    assert gc.get_freeze_count() == 0
