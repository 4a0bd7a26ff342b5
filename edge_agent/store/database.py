"""The kiosk's one SQLite file, opened: checked, durable, at the current schema, one writer at a time.

Everything the kiosk keeps is in this file (edge_agent/store/), so that a reading, a laundry
charge or a check-in commits together with the record that tells the cloud about it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlmodel import Session

from runtime.db import create_durable_engine
from edge_agent.store.integrity import database_files, set_aside_if_corrupt
from edge_agent.store.migrations import migrate


# SQLite's page, for the WAL's checkpoint interval in pages (a new file's default).
PAGE_BYTES = 4096
# The default WAL limit: SQLite's own checkpoint interval, 1000 pages.
DEFAULT_WAL_LIMIT_BYTES = 1000 * PAGE_BYTES


class KioskDatabase:
    def __init__(self, path: Path, *, wal_limit_bytes: int = DEFAULT_WAL_LIMIT_BYTES) -> None:
        """Open `path`, creating it if needed; WAL and synchronous=FULL (runtime/db.py):
        a commit is on disk before it returns. The WAL is checkpointed once it holds
        `wal_limit_bytes` and cut back to that size after a checkpoint: without a limit it stayed
        at its largest (4 MB beside a 188 KB database, issue 23)."""
        self.path = path
        # Checked before anything opens it: a corrupt file is set aside, never written to.
        self.set_aside: Path | None = set_aside_if_corrupt(path)
        self.engine = create_durable_engine(f"sqlite:///{path}")

        @event.listens_for(self.engine, "connect")
        def _bound_the_wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={max(1, wal_limit_bytes // PAGE_BYTES)}")
            cursor.close()
        # The schema version the file had when opened; it is now at migrations.SCHEMA_VERSION.
        self.version_found = migrate(self.engine)
        # One writer at a time, queued here rather than at SQLite's lock: a writer that finds
        # SQLite's lock taken sleeps in growing steps (1, 2, 5, 10 ... ms, sqlite3_busy_timeout),
        # so with four cuffs saving at once a reading took 12 ms at the median from its
        # kiosk_time to its commit, 6 ms from asking to commit with this lock, which hands over
        # as soon as a commit is done (benchmarks/latency.py, traced). Reentrant: a unit of work
        # may call back into the outbox in the same thread.
        self.writer = threading.RLock()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session for a write transaction, holding the writer lock until it ends. The caller
        commits; leaving without a commit rolls back."""
        with self.writer, Session(self.engine) as session:
            yield session

    def disk_bytes(self) -> int:
        """What the database occupies on disk now, its companions included."""
        total = 0
        for file in database_files(self.path):
            try:
                total += os.stat(file).st_blocks * 512  # allocated, not the apparent size
            except FileNotFoundError:
                pass
        return total

    def checkpoint(self) -> None:
        """Copy the WAL into the file and truncate it: after a big delete, whose pages the WAL
        held, so that the space comes back at once rather than at the next checkpoint."""
        with self.writer, self.engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    def close(self) -> None:
        self.engine.dispose()
