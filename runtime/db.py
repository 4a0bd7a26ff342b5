"""Database engines with the durability Doorstep promises: a commit is on disk when it returns."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import create_engine
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

# As long as a connection waits for SQLite's lock (the engine's `timeout`).
LOCK_WAIT_S = 30


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def enter_wal(cursor: sqlite3.Cursor) -> None:
    """Put the file in WAL mode. Two processes opening a new file at once (the agent and
    `doorstep doctor`) switch it together, and SQLite answers the one it makes wait "database
    is locked" at once, without its busy timeout: 24 of 300 such openings failed. So the
    switch is tried again, for as long as the timeout would have waited."""
    for attempt in Retrying(retry=retry_if_exception(_locked), wait=wait_exponential(multiplier=0.005, max=0.25),
                            stop=stop_after_delay(LOCK_WAIT_S), reraise=True):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")


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
    engine = create_engine(url, connect_args={"timeout": LOCK_WAIT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        enter_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine
