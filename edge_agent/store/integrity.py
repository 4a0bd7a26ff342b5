"""The outbox file's health check at start: a corrupt file is set aside, never overwritten.

SD cards in kiosks corrupt files (power cuts mid-write on cheap cards that lie about flushes).
A corrupt outbox may still hold readings someone can recover by hand, so it is moved aside
with its WAL and shared-memory files, loudly, and the agent starts a fresh one: a kiosk that
cannot save is worse than one that starts over.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

# The files SQLite keeps beside a WAL-mode database.
_COMPANIONS = ("-wal", "-shm")


def database_files(path: Path) -> tuple[Path, ...]:
    """The database at `path` and its companions: what it occupies, what must be writable."""
    return (path, *(path.with_name(path.name + suffix) for suffix in _COMPANIONS))


# Problems quoted in the log, at most.
_PROBLEMS_SHOWN = 5


def integrity_problem(path: Path) -> str | None:
    """None if `path` is missing or passes `PRAGMA quick_check`; else what is wrong."""
    if not path.exists():
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        try:
            rows = connection.execute("PRAGMA quick_check").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:  # "file is not a database", "database disk image is malformed"
        return str(error)
    if rows == [("ok",)]:
        return None
    return "; ".join(str(row[0]) for row in rows[:_PROBLEMS_SHOWN])


def set_aside_if_corrupt(path: Path, *, now: datetime | None = None) -> Path | None:
    """Check `path`; if corrupt, rename it (and its companions) to `<name>.corrupt-<UTC time>`
    and return the new path. Nothing is deleted or overwritten."""
    problem = integrity_problem(path)
    if problem is None:
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(aside)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(aside.with_name(aside.name + suffix))
    log.critical("OUTBOX CORRUPT (%s): moved it aside to %s and started a fresh one; "
                 "records in it may be recoverable by hand", problem, aside)
    return aside
