"""The kiosk's database is made and upgraded by one list of steps (edge_agent/store/migrations.py):
files written by older releases open with every row still there, records still deliverable,
and the schema of a new file; the steps make exactly what the models describe."""

from __future__ import annotations

import gzip
import importlib
import logging
import pkgutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import SQLModel

import edge_agent.store
from contract.envelope import validate_upstream
from contract.topics import KioskTopics, ReadingKind
from runtime.db import create_durable_engine
from drivers.laundry.vend import VendState
from edge_agent.remote import RemoteCommands
from edge_agent.store.cursors import DeviceCursors
from edge_agent.store.laundry_ledger import LaundryLedger
from edge_agent.store.local_audit import LocalAudit
from edge_agent.store.migrations import SCHEMA_VERSION, STEPS, migrate, version_of
from edge_agent.store.outbox import Outbox, RecordClass, RecordState
from edge_agent.store.relay_station import RelayBook

FIXTURES = Path(__file__).parent / "fixtures"  # made by tests/fixtures/make_kiosk_database.py
TOPICS = KioskTopics("site-a", "kiosk-1")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the fixtures' kiosk time
TOPIC_READING = TOPICS.reading(ReadingKind.BLOOD_PRESSURE)
READING = {"unit": "mmHg", "systolic": 128.0, "diastolic": 84.0, "mean_arterial_pressure": 99.0}


def unpacked(name: str, tmp_path: Path) -> Path:
    """A copy of the fixture to upgrade: the committed file itself is never opened."""
    path = tmp_path / name.removesuffix(".gz")
    path.write_bytes(gzip.decompress((FIXTURES / name).read_bytes()))
    return path


def columns_of(path: Path) -> dict[str, list[str]]:
    """Every table's columns by name, in a fixed order: an upgrade may append columns to a table."""
    with closing(sqlite3.connect(path)) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: sorted(c[1] for c in db.execute(f"PRAGMA table_info({table})")) for table in tables}


def rows(path: Path, columns: dict[str, list[str]] | None = None) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of every table; of only these tables and columns, if given."""
    columns = columns_of(path) if columns is None else columns
    with closing(sqlite3.connect(path)) as db:
        return {
            table: set(db.execute(f"SELECT {', '.join(names)} FROM {table}"))  # noqa: S608 - ours
            for table, names in columns.items()
        }


def schema(path: Path) -> dict[str, Any]:
    """Tables (columns: name, type, not null, key; WITHOUT ROWID; AUTOINCREMENT) and indexes
    (table, name, unique, columns, partial WHERE), whatever order a column was added in."""
    with closing(sqlite3.connect(path)) as db:
        tables, indexes = {}, set()
        for table, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'"):
            columns = frozenset((c[1], c[2], c[3], c[5]) for c in db.execute(f"PRAGMA table_info({table})"))
            tables[table] = (columns, "WITHOUT ROWID" in sql.upper(), "AUTOINCREMENT" in sql.upper())
            for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list({table})"):
                key = tuple(c[2] for c in db.execute(f"PRAGMA index_info({name})"))
                where = None
                if partial:
                    (sql_of_index,) = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
                    where = " ".join(sql_of_index.split(" WHERE ", 1)[1].split())
                # An index SQLite made for a UNIQUE or PRIMARY KEY is named by its position: by origin here.
                indexes.add((table, name if origin == "c" else origin, bool(unique), key, where))
        return {"tables": tables, "indexes": indexes}


def fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.sqlite3"
    Outbox(path).close()
    return path


def test_a_kiosk_database_made_by_3c157b7_upgrades_in_place_with_every_row_and_record(tmp_path: Path) -> None:
    path = unpacked("kiosk-3c157b7.sqlite3.gz", tmp_path)
    before, old_columns = rows(path), columns_of(path)
    outbox = Outbox(path, clock=lambda: NOW)
    assert outbox.database.version_found == 0 and rows(path, old_columns) == before  # nothing lost, nothing changed
    # Only added: what later steps add, empty (laundry_refunds: a refund table, a reason code column).
    added = {t: set(rows(path)[t]) for t in columns_of(path) if t not in old_columns}
    assert added == {"points_refunds": set()}
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM laundry_transactions WHERE reason_code IS NOT NULL").fetchone() == (0,)
    assert schema(path) == schema(fresh(tmp_path))

    # The pending and published records are still due, health first, each class in order,
    # byte for byte what 3c157b7 saved, and they obey today's contract.
    due = outbox.due(10)
    assert [r.seq for r in due] == [2, 3, 6, 7, 5]
    for record in due:
        validate_upstream(record.topic, record.body)
    assert outbox.counts() == {RecordState.PENDING: 4, RecordState.PUBLISHED: 1, RecordState.DELIVERED: 1,
                               RecordState.REFUSED: 1}
    assert outbox.refusals() == [(4, TOPICS.event("laundry_machine"), "payload: field required")]
    assert outbox.mark_delivered([r.message_id for r in due]) == 5 and outbox.due(10) == []
    # The sequence goes on; the fingerprints of 3c157b7 still recognise a replayed reading.
    assert outbox.save(TOPIC_READING, READING, fingerprint="d" * 64) is None
    assert outbox.save(TOPIC_READING, READING, fingerprint="9" * 64).seq == 8  # type: ignore[union-attr]
    assert outbox.depth()[RecordClass.HEALTH][0] == 1

    # The ledgers read what 3c157b7 wrote.
    assert DeviceCursors(outbox.database).position("AA:BB:CC:DD:EE:01") == 41
    ledger = LaundryLedger(outbox, TOPICS, clock=lambda: NOW)
    assert ledger.account("a" * 64).balance == 6  # type: ignore[union-attr]
    [vend] = ledger.unfinished()
    assert (vend.unit, vend.state, [c.points for c in ledger.charges(vend.id)]) == (3, VendState.IN_USE, [4])
    assert [(c.unit, c.command) for c in ledger.unfinished_commands()] == [(7, "add_time")]
    assert [(e.action, e.result) for e in LocalAudit(outbox.database).entries()] == [("technician_pin", "ok")]
    assert RelayBook(outbox, TOPICS, max_stay=timedelta(hours=12), clock=lambda: NOW).inside() == 1
    remote = RemoteCommands(outbox, TOPICS, {}, timeout_s=5.0)
    assert [(a.command, a.outcome) for a in remote.audit()] == [("reload_config", "succeeded")]
    outbox.close()
    assert Outbox(path).database.version_found == SCHEMA_VERSION


def test_the_oldest_outbox_the_upgrades_know_still_upgrades(tmp_path: Path) -> None:
    """06df855: records with no class, size, running time nor refusal; fingerprints in a rowid table."""
    path = unpacked("kiosk-06df855.sqlite3.gz", tmp_path)
    before = rows(path)
    outbox = Outbox(path)
    assert schema(path) == schema(fresh(tmp_path))
    assert rows(path)["outbox"] != before["outbox"]  # columns were added ...
    assert {r[:1] for r in rows(path)["device_readings_seen"]} == {r[:1] for r in before["device_readings_seen"]}
    assert [r.seq for r in outbox.due(10)] == [2, 3]  # ... and the records are still due
    for record in outbox.due(10):
        validate_upstream(record.topic, record.body)
    assert outbox.counts()[RecordState.DELIVERED] == 1
    with closing(sqlite3.connect(path)) as db:  # each record's share of the budget, from its body
        assert db.execute("SELECT count(*) FROM outbox WHERE size != length(body) + 256").fetchone() == (0,)
    assert outbox.save(TOPIC_READING, READING, fingerprint="e" * 64) is None  # still recognised
    outbox.close()


def kiosk_models() -> list[type[SQLModel]]:
    """Every table model of the agent, found, not listed: a new one without a step fails below."""
    for module in pkgutil.iter_modules(edge_agent.store.__path__):
        importlib.import_module(f"edge_agent.store.{module.name}")
    found, stack = [], list(SQLModel.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        if model.__module__.startswith("edge_agent.") and hasattr(model, "__table__"):
            found.append(model)
    return found


def test_the_steps_make_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    by_models = tmp_path / "models.sqlite3"
    engine = create_durable_engine(f"sqlite:///{by_models}")
    SQLModel.metadata.create_all(engine, tables=[m.__table__ for m in kiosk_models()])  # type: ignore[attr-defined]
    engine.dispose()
    assert schema(fresh(tmp_path)) == schema(by_models)


def test_each_step_runs_once_in_order_and_is_recorded(tmp_path: Path) -> None:
    assert len({step.__name__ for step in STEPS}) == len(STEPS) and all(step.__doc__ for step in STEPS)
    engine = create_durable_engine(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    for number in range(len(STEPS) + 1):
        assert migrate(engine, steps=STEPS[:number]) == max(0, number - 1)
        with closing(sqlite3.connect(tmp_path / "k.sqlite3")) as db:
            assert version_of(db) == number
    assert migrate(engine) == SCHEMA_VERSION  # nothing left to do
    engine.dispose()


def test_a_step_that_fails_leaves_the_file_at_the_version_before(tmp_path: Path) -> None:
    def half_done(db: sqlite3.Connection) -> None:
        """Creates a table, then fails."""
        db.execute("CREATE TABLE half (x INTEGER)")
        raise RuntimeError("power cut")

    path = fresh(tmp_path)
    engine = create_durable_engine(f"sqlite:///{path}")
    with pytest.raises(RuntimeError, match="power cut"):
        migrate(engine, steps=(*STEPS, half_done))
    engine.dispose()
    with closing(sqlite3.connect(path)) as db:
        assert version_of(db) == SCHEMA_VERSION
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone() == (0,)


def test_a_file_from_newer_software_is_opened_as_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = fresh(tmp_path)
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    with caplog.at_level(logging.WARNING, logger="edge_agent.store.migrations"):
        outbox = Outbox(path)
    assert "newer than this software" in caplog.text
    saved = outbox.save(TOPIC_READING, READING)
    assert saved is not None and outbox.state_of(saved.message_id) is RecordState.PENDING
    outbox.close()


def test_two_processes_opening_new_files_at_once_never_find_them_locked(tmp_path: Path) -> None:
    """The switch into WAL of a new file, by two connections at once: SQLite answered one of
    them "database is locked" without its busy timeout, in about one opening of twelve (the
    fresh-clone CI caught it in the test below)."""
    for attempt in range(100):
        engines = [create_durable_engine(f"sqlite:///{tmp_path / f'k-{attempt}.sqlite3'}") for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            assert sorted(pool.map(migrate, engines))[0] == 0
        for engine in engines:
            engine.dispose()


def test_two_processes_opening_a_new_file_at_once_both_find_it_migrated(tmp_path: Path) -> None:
    """The agent and `doorstep doctor`, say: each its own connection; one runs the steps, the
    other waits on the write lock and then finds each step done."""
    path = tmp_path / "k.sqlite3"
    engines = [create_durable_engine(f"sqlite:///{path}") for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        found = sorted(pool.map(migrate, engines))
    for engine in engines:
        engine.dispose()
    assert found[0] == 0
    assert schema(path) == schema(fresh(tmp_path))
    with closing(sqlite3.connect(path)) as db:
        assert version_of(db) == SCHEMA_VERSION
        assert db.execute("SELECT count(*) FROM outbox_clock").fetchone() == (1,)
