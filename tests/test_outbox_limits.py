"""The kiosk at its limits (issue 23): what a person was told is kept over the budget, the
outbox's files stay inside it on a small real filesystem, a full disk is logged once per
condition and a clean stop on it loses nothing."""

from __future__ import annotations

import errno
import json
import logging
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlalchemy.exc import OperationalError

from edge_agent.store.condition_log import ConditionLog
from edge_agent.settings import OutboxSettings
from edge_agent.store.outbox import Outbox, OutboxLimits, RecordClass
from tests.kiosk_support import acall, kiosk_settings
from tests.small_disk import fill, free_bytes, small_disk
from tests.support import running_agent, wait_for, wait_until
from tests.test_outbox_upkeep import BEAT, EVENT, HEALTH, MACHINE, READING, TELEMETRY


CHECK_INS = 90  # and as many check-outs: 180 events a person was told about


@pytest.mark.asyncio
@pytest.mark.parametrize("bridge_database", ["sqlite"], indirect=True)
async def test_confirmed_check_ins_and_outs_are_never_dropped_over_the_budget(
    tmp_path: Path, running_broker: Any, bridge_factory: Any
) -> None:
    # A budget of about 20 records, telemetry every 0.2 s filling it, and no bridge yet.
    settings = kiosk_settings(tmp_path, running_broker, screen={"identify_per_minute": 1000}).model_copy(update={
        "outbox": OutboxSettings(budget_mb=0.01), "telemetry_every_s": 0.2, "resend_max_s": 2.0,
    })
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        answers = []
        for rider in range(CHECK_INS):
            answers.append((await acall(url, "POST", "/api/relay/checkin", {"qr": f"RIDER-{rider}"})).body["outcome"])
        for rider in range(CHECK_INS):
            answers.append((await acall(url, "POST", "/api/relay/checkout", {"qr": f"RIDER-{rider}"})).body["outcome"])
        assert answers == ["checked_in"] * CHECK_INS + ["checked_out"] * CHECK_INS
        assert agent.outbox is not None and agent.outbox.used_bytes > 10 * settings.outbox.budget_mb * 1024 * 1024 / 2
        bridge = bridge_factory(running_broker)

        def relay_events() -> list[Any]:
            return [e for e in bridge.events() if e.type.startswith("relay_")]

        await wait_until(lambda: len(relay_events()) >= 2 * CHECK_INS, timeout=60, what="every check-in and out stored")
        outbox = agent.outbox
        await wait_until(lambda: not outbox.depth()[RecordClass.HEALTH][0], timeout=30, what="the bridge's acks")
    stored = relay_events()
    assert len(stored) == 2 * CHECK_INS
    visits = {json.dumps(e.payload["visit_id"]) for e in stored}
    assert len(visits) == CHECK_INS
    assert sorted(e.type for e in stored) == ["relay_checkin"] * CHECK_INS + ["relay_checkout"] * CHECK_INS



def test_the_outbox_never_fills_a_small_disk_by_itself(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """3 MB of real filesystem, a 1 MB budget, thousands of saves and deletes: the files stay
    within the budget, the WAL within its limit, and the disk never runs out. Its evictions are
    logged once a condition, not once a save."""
    caplog.set_level(logging.WARNING, logger="edge_agent.store.outbox")
    budget = 1024 * 1024
    limits = OutboxLimits.for_disk(budget, delivered_retention=timedelta(0))
    with small_disk(tmp_path / "disk", 3 * 1024 * 1024) as disk:
        outbox = Outbox(disk / "outbox.sqlite3", limits=limits)
        wal = disk / "outbox.sqlite3-wal"
        lowest_free, largest_wal, largest_files = free_bytes(disk), 0, 0
        for round_ in range(30):
            readings = [outbox.save(HEALTH, READING) for _ in range(100)]
            for _ in range(100):  # undelivered: these are evicted over the budget
                outbox.save(EVENT, MACHINE)
                outbox.save(TELEMETRY, BEAT)
            largest_wal = max(largest_wal, wal.stat().st_size if wal.exists() else 0)
            largest_files = max(largest_files, outbox.disk_bytes())
            lowest_free = min(lowest_free, free_bytes(disk))
            # The readings delivered and pruned: real deletes.
            outbox.mark_delivered([r.message_id for r in readings if r is not None])
            outbox.prune()
            lowest_free = min(lowest_free, free_bytes(disk))
            largest_wal = max(largest_wal, wal.stat().st_size if wal.exists() else 0)
            largest_files = max(largest_files, outbox.disk_bytes())
        outbox.close()
    print(f"lowest free {lowest_free}, largest WAL {largest_wal}, largest files {largest_files}")
    assert lowest_free > 1024 * 1024
    assert largest_files <= budget
    # A checkpoint waits for a commit to end: the WAL may pass its limit by one transaction.
    assert largest_wal <= limits.wal_limit_bytes + 64 * 1024
    # 6,000 saves that evicted or were not kept: a line each on main. Now a line when a
    # condition begins and one when pruning finds room again: at most 4 a round.
    assert len(caplog.records) <= 4 * 30, [r.getMessage() for r in caplog.records]


def test_a_full_disk_is_logged_once_per_condition_and_a_clean_stop_on_it_loses_nothing(
    tmp_path: Path, running_broker: Any
) -> None:
    """A real agent process on a real full tmpfs, the bridge away: its log stays quiet (a line
    per condition with a count, not one per attempt), SIGTERM stops it with exit 0, and every
    record saved before the disk filled is still there afterwards."""
    config = tmp_path / "agent.yaml"
    with small_disk(tmp_path / "disk", 4 * 1024 * 1024) as disk:
        outbox_path = disk / "outbox.sqlite3"
        config.write_text(yaml.safe_dump({
            "site": "site-a", "kiosk": "kiosk-1", "outbox_path": str(outbox_path),
            "broker": {"host": running_broker.host, "port": running_broker.port},
            "telemetry_every_s": 0.05, "ack_timeout_s": 0.5, "screen": {"port": 0},
        }))
        log_file = tmp_path / "agent.log"
        with log_file.open("wb") as output:
            agent = subprocess.Popen([sys.executable, "-m", "doorstep", "agent", "--config", str(config)],
                                     stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: outbox_path.exists() and len(saved_ids(outbox_path)) >= 20, what="records saved")
            fill(disk)
            before = saved_ids(outbox_path)
            time.sleep(1.0)  # the first failures, logged
            start = len(log_file.read_bytes().splitlines())
            time.sleep(10.0)
            lines = log_file.read_bytes().splitlines()[start:]
            agent.send_signal(signal.SIGTERM)
            code = agent.wait(timeout=30)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        text_ = log_file.read_text()
        print(f"{len(lines)} log lines in 10 s on a full disk; {text_.count('Traceback')} tracebacks in all")
        assert code == 0, text_[-3000:]
        # On main: 5,554 lines in 10 s, 438 tracebacks. Now one line per condition when it
        # starts, before the window; what is left is the uplink's re-sends to a bridge away.
        assert len(lines) <= 20, b"\n".join(lines).decode()[-3000:]
        assert not [line for line in lines if b"ERROR" in line], b"\n".join(lines).decode()[-3000:]
        assert "Traceback" not in text_
        assert "saving telemetry failed: disk full" in text_
        (disk / "filler").unlink()
        outbox = Outbox(outbox_path)  # the restart's view
        try:
            assert before <= {str(r.message_id) for r in outbox.due(100_000)}
        finally:
            outbox.close()


def saved_ids(path: Path) -> set[str]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        try:
            return {row[0] for row in connection.execute("SELECT message_id FROM outbox")}
        except sqlite3.OperationalError:  # the agent is still making its tables
            return set()


def test_a_condition_is_logged_when_it_starts_counted_while_it_lasts_and_logged_when_it_clears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    conditions = ConditionLog(logging.getLogger("test.conditions"), remind_every_s=60, monotonic=lambda: now[0])
    full = OperationalError("COMMIT", (), sqlite3.OperationalError("database or disk is full"))
    full.orig.sqlite_errorcode = 13  # type: ignore[union-attr]  # SQLITE_FULL, as SQLite sets it
    with caplog.at_level(logging.INFO, logger="test.conditions"):
        for _ in range(2000):  # 100 s of failures at the uplink's pace
            now[0] += 0.05
            assert conditions.failed("saving telemetry", full)
        assert not conditions.failed("saving telemetry", ValueError("a bug"))  # not a limit: the caller's to log
        assert not conditions.failed("saving telemetry", OSError(errno.EACCES, "denied"))
        assert conditions.failed("writing the status file", OSError(errno.ENOSPC, "No space left on device"))
        conditions.succeeded("saving telemetry")
        conditions.succeeded("saving telemetry")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages
    assert messages[0].startswith("saving telemetry failed: disk full")
    assert re.fullmatch(r"saving telemetry still failing: disk full, 1\d\d\d time\(s\) in the last 60 s, "
                        r"1\d\d\d since it began 60 s ago", messages[1]), messages[1]
    assert messages[2].startswith("writing the status file failed: disk full")
    assert messages[3].startswith("saving telemetry works again: disk full cleared after 2000 failure(s)")
