"""The kiosk's one SQLite file, opened: checked, durable, at the current schema, one writer at a time.

Everything the kiosk keeps is in this file (edge_agent/store/), so that a reading, a laundry
charge or a check-in commits together with the record that tells the cloud about it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlmodel import Session

from doorstep.runtime.db import create_durable_engine
from edge_agent.store.integrity import set_aside_if_corrupt
from edge_agent.store.migrations import migrate


class KioskDatabase:
    def __init__(self, path: Path) -> None:
        """Open `path`, creating it if needed; WAL and synchronous=FULL (doorstep/runtime/db.py):
        a commit is on disk before it returns."""
        self.path = path
        # Checked before anything opens it: a corrupt file is set aside, never written to.
        self.set_aside: Path | None = set_aside_if_corrupt(path)
        self.engine = create_durable_engine(f"sqlite:///{path}")
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

    def close(self) -> None:
        self.engine.dispose()
