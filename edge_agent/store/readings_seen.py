"""Readings already saved, by fingerprint: cuffs that replay their memory on every connection
must not become new records each time. The check and the save are one transaction (the
outbox's `save` runs these statements in its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col

from edge_agent.store.prepared import Prepared


class DeviceReadingSeen(SQLModel, table=True):
    __tablename__ = "device_readings_seen"
    # Keyed by the fingerprint alone: a save writes one b-tree page for it, not a table's and its
    # primary key index's (write_bytes 46.7 -> 43.2 KB a reading, benchmarks/save.py).
    __table_args__ = {"sqlite_with_rowid": False}

    fingerprint: str = Field(primary_key=True, max_length=64)
    seq: int
    seen_at: datetime
    seen_running_s: float = 0.0


_SEEN = DeviceReadingSeen.__table__  # type: ignore[attr-defined]
# The replay check and the fingerprint's row in one statement: no row written, a reading seen before.
REMEMBER = Prepared(sqlite_insert(_SEEN).values({
    name: bindparam(name) for name in ("fingerprint", "seq", "seen_at", "seen_running_s")
}).on_conflict_do_nothing(index_elements=[_SEEN.c.fingerprint]))
# A reading not kept (no room) is not seen either.
FORGET = Prepared(delete(_SEEN).where(_SEEN.c.fingerprint == bindparam("fingerprint")))


def forget_older_than(session: Session, running_s: float) -> int:
    """Delete fingerprints seen before `running_s` (running time); how many."""
    result = session.execute(delete(DeviceReadingSeen).where(col(DeviceReadingSeen.seen_running_s) < running_s))
    return int(result.rowcount)  # type: ignore[attr-defined]
