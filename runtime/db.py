"""Database engines with the durability Doorstep promises: a commit is on disk when it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import create_engine


def create_durable_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL and synchronous=FULL.

    FULL: a commit is on disk before it returns, so a record the kiosk called "saved", or one
    the bridge acknowledged, survives a power cut (WAL with NORMAL may lose the last commits).
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    database = url.split(":///", 1)[-1]
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # timeout: writers in other threads (paho's, the API's) wait for SQLite's lock instead of failing.
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine
