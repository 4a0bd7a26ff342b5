"""The outbox after a rollback (issue 20): a newer version migrates it forward as soon as it runs;
the version it goes back to must open that file, send what the newer one saved, and save on.
Decided: migrate at once, never wait for the health check (a kiosk that cannot save readings
during its trial is worse), which holds because steps only ever add (edge_agent/store/migrations.py)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from edge_agent.store.migrations import STEPS, migrate
from edge_agent.store.outbox import Outbox, RecordState
from runtime.db import create_durable_engine
from tests.test_store_migrations import READING, TOPIC_READING


def a_newer_step(db: sqlite3.Connection) -> None:
    """What a version B might add in its step: a column with a default, a table, an index."""
    db.execute("ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE TABLE update_notes (id INTEGER NOT NULL PRIMARY KEY, note VARCHAR NOT NULL)")
    db.execute("CREATE INDEX ix_outbox_priority ON outbox (priority)")


def test_version_a_opens_sends_and_saves_in_an_outbox_b_migrated(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.sqlite3"
    before_b = Outbox(path)  # A's records, not yet sent when the update came
    saved_by_a = before_b.save(TOPIC_READING, READING)
    before_b.close()
    engine = create_durable_engine(f"sqlite:///{path}")
    migrate(engine, steps=(*STEPS, a_newer_step))  # B starts: its step runs on A's file
    engine.dispose()
    with closing(sqlite3.connect(path)) as db, db:  # B saves a record with its new column
        db.execute("INSERT INTO outbox (message_id, topic, qos, body, state, record_class, clock_trusted, size, "
                   "created_at, saved_running_s, priority) SELECT 'b0000000-0000-4000-8000-000000000001', topic, "
                   "qos, body, 'PENDING', record_class, clock_trusted, size, created_at, saved_running_s, 5 "
                   "FROM outbox WHERE seq = ?", (saved_by_a.seq,))
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (2,)
    with caplog.at_level(logging.WARNING, logger="edge_agent.store.migrations"):
        after_rollback = Outbox(path)  # A again
    assert "newer than this software" in caplog.text
    saved_again = after_rollback.save(TOPIC_READING, {**READING, "systolic": 131.0})
    assert saved_again is not None
    assert after_rollback.state_of(saved_by_a.message_id) is RecordState.PENDING
    assert after_rollback.mark_delivered([saved_by_a.message_id, saved_again.message_id]) == 2
    assert after_rollback.counts()[RecordState.PENDING] == 1  # B's own record, still to send
    after_rollback.close()
