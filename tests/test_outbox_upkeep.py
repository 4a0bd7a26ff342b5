"""The outbox under pressure: priorities, a disk budget, pruning by age, a corrupt file."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from broker_admin.mosquitto import MosquittoProcess
from contract.topics import EventType, KioskTopics, ReadingKind
from edge_agent.settings import OutboxSettings
from edge_agent.store.outbox import RECORD_OVERHEAD_BYTES, Outbox, OutboxLimits, RecordState
from tests.support import agent_settings, running_agent, wait_until
from tests.test_end_to_end import cuff_backends

TOPICS = KioskTopics("site-a", "kiosk-1")
HEALTH = TOPICS.reading(ReadingKind.BLOOD_PRESSURE)
EVENT = TOPICS.event(EventType.LAUNDRY_MACHINE)
TELEMETRY = TOPICS.telemetry
READING = {"unit": "mmHg", "systolic": 120.0, "diastolic": 80.0, "mean_arterial_pressure": 93.0}
MACHINE = {"unit": 1, "state": "idle", "link": "online"}
BEAT = {"uptime_s": 1}
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def record_size(outbox: Outbox, topic: str, payload: dict[str, object]) -> int:
    """One record's share of the budget, measured on a scratch outbox."""
    saved = outbox.save(topic, payload)
    assert saved is not None
    [record] = [r for r in outbox.due(10_000) if r.seq == saved.seq]
    return len(record.body) + RECORD_OVERHEAD_BYTES


def test_health_readings_are_sent_first_each_class_in_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    payloads = {HEALTH: READING, EVENT: MACHINE, TELEMETRY: BEAT}
    for topic in [TELEMETRY, EVENT, HEALTH, TELEMETRY, HEALTH, EVENT]:
        assert outbox.save(topic, payloads[topic]) is not None
    due = outbox.due(10)
    assert [r.topic for r in due] == [HEALTH, HEALTH, EVENT, EVENT, TELEMETRY, TELEMETRY]
    assert [r.seq for r in due] == [3, 5, 2, 6, 1, 4]


def test_the_budget_evicts_lowest_class_oldest_first_and_never_a_health_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scratch = Outbox(tmp_path / "scratch.sqlite3")
    sizes = {t: record_size(scratch, t, p) for t, p in ((HEALTH, READING), (EVENT, MACHINE), (TELEMETRY, BEAT))}
    # Room for exactly 2 health readings, 2 events and 2 telemetry records.
    budget = 2 * sum(sizes.values())
    outbox = Outbox(tmp_path / "o.sqlite3", limits=OutboxLimits(budget_bytes=budget))
    beats = [outbox.save(TELEMETRY, BEAT) for _ in range(2)]
    events = [outbox.save(EVENT, MACHINE) for _ in range(2)]
    healths = [outbox.save(HEALTH, READING) for _ in range(2)]
    assert outbox.used_bytes == budget
    # A third health reading: telemetry makes room (oldest first), events are untouched.
    healths.append(outbox.save(HEALTH, READING))
    left = {r.seq for r in outbox.due(100)}
    assert beats[0].seq not in left and {e.seq for e in events} <= left  # type: ignore[union-attr]
    # A new event: telemetry goes first, then the oldest event; health readings stay.
    outbox.save(EVENT, MACHINE)
    left = {r.seq for r in outbox.due(100)}
    assert not {b.seq for b in beats} & left and {h.seq for h in healths} <= left  # type: ignore[union-attr]
    # Health readings push out every event and telemetry record, oldest first...
    for _ in range(4):
        healths.append(outbox.save(HEALTH, READING))
    assert {r.topic for r in outbox.due(100)} == {HEALTH}
    assert len(outbox.due(100)) == len(healths)  # every health reading kept
    assert not outbox.health_over_budget or outbox.used_bytes > budget
    # ...and when only health readings are left, the next one is still kept, loudly.
    with caplog.at_level(logging.CRITICAL, logger="edge_agent.store.outbox"):
        over = outbox.save(HEALTH, READING)
    assert over is not None and outbox.health_over_budget and outbox.used_bytes > budget
    assert "OUTBOX FULL OF HEALTH READINGS" in caplog.text
    assert len(outbox.due(100)) == len(healths) + 1
    # With only health readings left, an event has no room: refused, not stored.
    assert outbox.save(EVENT, MACHINE) is None
    assert {r.topic for r in outbox.due(100)} == {HEALTH}


def test_delivered_records_make_room_before_anything_undelivered(tmp_path: Path) -> None:
    scratch = Outbox(tmp_path / "scratch.sqlite3")
    size = record_size(scratch, EVENT, MACHINE)
    outbox = Outbox(tmp_path / "o.sqlite3", limits=OutboxLimits(budget_bytes=3 * size))
    first = [outbox.save(EVENT, MACHINE) for _ in range(3)]
    outbox.mark_delivered([first[1].message_id])  # type: ignore[union-attr]
    outbox.save(EVENT, MACHINE)
    assert [r.seq for r in outbox.due(10)] == [first[0].seq, first[2].seq, 4]  # type: ignore[union-attr]


class RunningClock:
    """A monotonic clock the test moves: the running time records age by."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.s = start_s

    def __call__(self) -> float:
        return self.s

    def advance(self, delta: timedelta) -> None:
        self.s += delta.total_seconds()


def test_prune_really_deletes_by_age_with_an_injected_clock(tmp_path: Path) -> None:
    clock, running = Clock(), RunningClock()
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, clock=clock, monotonic=running)
    delivered = outbox.save(HEALTH, READING)
    old_beat = outbox.save(TELEMETRY, BEAT)
    old_event = outbox.save(EVENT, MACHINE)
    old_health = outbox.save(HEALTH, READING, fingerprint="f" * 64)
    outbox.mark_delivered([delivered.message_id])  # type: ignore[union-attr]
    running.advance(timedelta(days=3))
    fresh_beat = outbox.save(TELEMETRY, BEAT)
    pruned = outbox.prune()
    assert (pruned.delivered, pruned.expired) == (0, 1)  # 3 days < 7 days' retention; the 3-day-old beat
    # A restart: the running time so far is kept in the file; the new process's monotonic
    # clock starts anywhere (a reboot starts it near 0).
    outbox.close()
    running = RunningClock(start_s=5.0)
    outbox = Outbox(path, clock=clock, monotonic=running)
    running.advance(timedelta(days=5))
    pruned = outbox.prune()
    assert (pruned.delivered, pruned.expired) == (1, 1)  # the delivered record; the 5-day-old beat
    left = {r.seq for r in outbox.due(100)}
    assert left == {old_event.seq, old_health.seq}  # type: ignore[union-attr]
    assert fresh_beat is not None and old_beat is not None
    running.advance(timedelta(days=192))
    pruned = outbox.prune()
    assert (pruned.expired, pruned.fingerprints) == (1, 1)  # the event after 90 days; the fingerprint
    assert {r.seq for r in outbox.due(100)} == {old_health.seq}  # a health reading never expires  # type: ignore[union-attr]
    outbox.close()
    with sqlite3.connect(path) as connection:  # really gone from the file, not hidden
        assert connection.execute("SELECT COUNT(*) FROM outbox").fetchone() == (1,)
        assert connection.execute("SELECT COUNT(*) FROM device_readings_seen").fetchone() == (0,)
    reopened = Outbox(path)
    assert reopened.used_bytes == sum(len(r.body) + RECORD_OVERHEAD_BYTES for r in reopened.due(10))


def test_a_file_that_is_not_a_database_is_set_aside_and_a_fresh_outbox_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not SQLite" * 100)
    with caplog.at_level(logging.CRITICAL):
        outbox = Outbox(path)
    assert outbox.set_aside is not None and outbox.set_aside.read_bytes() == b"this is not SQLite" * 100
    assert "OUTBOX CORRUPT" in caplog.text
    assert outbox.save(HEALTH, READING) is not None and len(outbox.due(10)) == 1


def test_a_damaged_page_is_found_by_quick_check_and_the_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for _ in range(300):
        outbox.save(HEALTH, READING | {"subject": uuid.uuid4().hex * 2})
    outbox.close()
    with sqlite3.connect(path) as connection:  # fold the WAL in, so the damage is in the main file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for number in range(2, 6):  # page headers: the b-tree page type byte and cell counts
        data[(number - 1) * page : (number - 1) * page + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    reopened = Outbox(path)
    assert reopened.set_aside is not None and reopened.set_aside.read_bytes() == bytes(data)
    assert reopened.due(10) == [] and reopened.save(HEALTH, READING) is not None
    assert reopened.counts()[RecordState.PENDING] == 1


def test_an_outbox_from_before_record_classes_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id VARCHAR(36) UNIQUE NOT NULL, "
            "topic VARCHAR NOT NULL, qos INTEGER NOT NULL, body BLOB NOT NULL, state VARCHAR(9) NOT NULL, "
            "created_at DATETIME NOT NULL, delivered_at DATETIME)"
        )
        for seq, topic in ((1, TELEMETRY), (2, HEALTH), (3, EVENT)):
            connection.execute(
                "INSERT INTO outbox VALUES (?, ?, ?, 1, ?, 'PENDING', '2026-11-25 09:00:00', NULL)",
                (seq, str(uuid.uuid4()), topic, b"x" * 10),
            )
    outbox = Outbox(path)
    assert [r.seq for r in outbox.due(10)] == [2, 3, 1]
    assert outbox.used_bytes == 3 * (10 + RECORD_OVERHEAD_BYTES)
    assert Outbox(path).used_bytes == outbox.used_bytes  # idempotent


def test_a_full_disk_is_an_error_and_keeps_what_was_saved(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (a page limit stands in for a full SD card): the
    save raises, so nothing is reported saved (the agent reports a reading only after save()
    returns), and every record committed before is intact."""
    outbox = Outbox(tmp_path / "o.sqlite3")
    kept = [outbox.save(HEALTH, READING) for _ in range(3)]

    @event.listens_for(outbox.database.engine, "connect")
    def _small_disk(connection: sqlite3.Connection, _record: object) -> None:
        connection.execute("PRAGMA max_page_count = 8")

    outbox.database.engine.dispose()
    with pytest.raises(OperationalError, match="full"):
        for _ in range(1000):
            outbox.save(HEALTH, READING | {"subject": "f" * 64})
    assert {k.seq for k in kept if k} <= {r.seq for r in outbox.due(10_000)}


@pytest.mark.asyncio
async def test_the_agent_prunes_delivered_records_on_its_schedule(tmp_path: Path, running_broker: MosquittoProcess,
                                                                   bridge_factory: Any) -> None:
    bridge = bridge_factory(running_broker)
    settings = agent_settings(tmp_path, running_broker).model_copy(
        update={"outbox": OutboxSettings(delivered_retention_days=0, prune_every_s=0.3)}
    )

    def readings_in_outbox() -> int:
        with sqlite3.connect(settings.outbox_path) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/readings/%'").fetchone()[0])

    async with running_agent(settings, cuff_backends()) as agent:
        await wait_until(lambda: bridge.reading_count() == 1, what="the reading stored by the bridge")
        await wait_until(lambda: readings_in_outbox() == 0, what="the delivered reading pruned by the outbox-prune job")
        assert agent.job_watch is not None and agent.job_watch.records["outbox-prune"].last_outcome == "ok"


def test_fingerprints_kept_before_without_rowid_are_moved_and_still_recognised(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    Outbox(path).close()
    with sqlite3.connect(path) as connection:  # the table as 0.1.0 made it: a rowid table and its key's index
        connection.execute("DROP TABLE device_readings_seen")
        connection.execute("CREATE TABLE device_readings_seen (fingerprint VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, "
                           "seen_at DATETIME NOT NULL, PRIMARY KEY (fingerprint))")
        connection.execute("INSERT INTO device_readings_seen VALUES (?, 7, '2026-11-25 09:00:00.000000')", ("d" * 64,))
        # What steps after 0.1.0's tables added is not in a 0.1.0 file either.
        connection.execute("ALTER TABLE laundry_transactions DROP COLUMN reason_code")
        connection.execute("DROP TABLE points_refunds")
        connection.execute("PRAGMA user_version = 0")  # and as 0.1.0 left every file: unversioned
    outbox = Outbox(path)
    assert outbox.save(HEALTH, READING, fingerprint="d" * 64) is None  # still recognised
    assert outbox.save(HEALTH, READING, fingerprint="e" * 64) is not None
    outbox.close()
    with sqlite3.connect(path) as connection:
        (sql,) = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'device_readings_seen'").fetchone()
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = connection.execute("SELECT fingerprint, seq, seen_running_s FROM device_readings_seen ORDER BY fingerprint").fetchall()
    assert "WITHOUT ROWID" in sql and "device_readings_seen_rowid" not in tables
    assert rows[0] == ("d" * 64, 7, 0.0) and [r[0] for r in rows] == ["d" * 64, "e" * 64]
    assert Outbox(path).save(HEALTH, READING, fingerprint="e" * 64) is None  # idempotent
