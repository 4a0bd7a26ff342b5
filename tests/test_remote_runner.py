"""The command runner on a real outbox: a slow command is answered timed_out but not cut off."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contract.commands import CommandName, CommandOutcome
from contract.topics import KioskTopics
from edge_agent.remote import Answer, RemoteCommands
from edge_agent.store.outbox import Outbox
from edge_agent.uplink import ReceivedCommand

TOPICS = KioskTopics("site-a", "kiosk-1")


def command(name: str) -> bytes:
    return json.dumps({"command": name, "issued_by": "tech", "issued_at": datetime.now(UTC).isoformat()}).encode()


@pytest.mark.asyncio
async def test_a_slow_command_times_out_for_the_technician_and_still_finishes(tmp_path: Path) -> None:
    finished = asyncio.Event()

    async def slow(_args: Mapping[str, Any]) -> Answer:
        await asyncio.sleep(0.5)
        finished.set()
        return Answer(CommandOutcome.SUCCEEDED)

    outbox = Outbox(tmp_path / "o.sqlite3")
    runner = RemoteCommands(outbox, TOPICS, {CommandName.FLUSH_OUTBOX: slow}, timeout_s=0.1)
    answer = await runner.handle(ReceivedCommand("slow-1", command("flush_outbox")))
    assert answer is not None and answer.outcome is CommandOutcome.TIMED_OUT
    assert not finished.is_set()
    await asyncio.wait_for(finished.wait(), 2)  # shielded: the work went on
    [row] = runner.audit()
    assert (row.request_id, row.outcome, row.issued_by) == ("slow-1", "timed_out", "tech")
    [record] = outbox.due(10)
    assert record.topic == TOPICS.command_result("slow-1")
    assert json.loads(record.body)["payload"]["outcome"] == "timed_out"
    assert await runner.handle(ReceivedCommand("slow-1", command("flush_outbox"))) is None  # once
    assert await runner.handle(ReceivedCommand("no spaces please", command("ping"))) is None
