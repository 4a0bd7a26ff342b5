"""The outbox on a real SQLite file."""

from __future__ import annotations

import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from contract.envelope import Envelope
from contract.topics import EventType, KioskTopics, ReadingKind
from edge_agent.store.outbox import Outbox, OutboxLimits, OutboxRecord, RecordClass, RecordState
from edge_agent.store.readings_seen import DeviceReadingSeen
from tests.test_outbox_upkeep import record_size

TOPIC = KioskTopics("site-a", "kiosk-1").reading(ReadingKind.BLOOD_PRESSURE)
PAYLOAD = {"unit": "mmHg", "systolic": 120.0, "diastolic": 80.0, "mean_arterial_pressure": 93.0}
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_a_saved_record_carries_its_identity_in_a_body_built_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=lambda: NOW)
    saved = outbox.save(TOPIC, PAYLOAD, device_time=datetime(2026, 11, 25, 17, 0))
    [record] = outbox.due(10)
    envelope = Envelope.model_validate_json(record.body)
    assert (record.seq, record.message_id, record.topic) == (saved.seq, saved.message_id, TOPIC)
    assert envelope.message_id == saved.message_id
    assert envelope.seq == saved.seq == 1
    assert envelope.kiosk_time == NOW
    assert envelope.device_time == datetime(2026, 11, 25, 17, 0)
    assert envelope.payload == PAYLOAD
    # A re-send is byte for byte the same message.
    assert outbox.due(10)[0].body == record.body
    outbox.close()


def test_records_are_durable_with_full_sync_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    saved = outbox.save(TOPIC, PAYLOAD)
    outbox.close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()
    # synchronous is per connection: ask one of the outbox's own. 2 = FULL: a commit is on
    # disk (fsync of the WAL) before save() returns, for every class.
    with Outbox(path).unit_of_work() as session:
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2
    reopened = Outbox(path)
    assert [r.message_id for r in reopened.due(10)] == [saved.message_id]
    reopened.close()


def test_due_is_in_sequence_order_and_skips_what_is_in_flight(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    seqs = [outbox.save(TOPIC, PAYLOAD).seq for _ in range(5)]
    assert [r.seq for r in outbox.due(3)] == seqs[:3]
    assert [r.seq for r in outbox.due(10, exclude=seqs[:2])] == seqs[2:]
    outbox.close()


def test_only_the_bridge_confirmation_delivers_and_it_is_idempotent(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    first, second = outbox.save(TOPIC, PAYLOAD), outbox.save(TOPIC, PAYLOAD)
    outbox.mark_published([first.seq])
    assert outbox.state_of(first.message_id) is RecordState.PUBLISHED
    # Published is not delivered: the record is still due for sending.
    assert {r.seq for r in outbox.due(10)} == {first.seq, second.seq}
    assert outbox.mark_delivered([first.message_id, uuid.uuid4()]) == 1
    assert outbox.mark_delivered([first.message_id]) == 0
    outbox.mark_published([first.seq])  # a late PUBACK does not undo delivery
    assert outbox.state_of(first.message_id) is RecordState.DELIVERED
    assert [r.seq for r in outbox.due(10)] == [second.seq]
    assert outbox.counts() == {RecordState.PENDING: 1, RecordState.PUBLISHED: 0, RecordState.DELIVERED: 1, RecordState.REFUSED: 0}
    outbox.close()


def test_a_fingerprinted_reading_is_saved_once_in_the_same_transaction(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    first = outbox.save(TOPIC, PAYLOAD, fingerprint="a" * 64)
    assert first is not None
    assert outbox.save(TOPIC, PAYLOAD, fingerprint="a" * 64) is None
    assert outbox.save(TOPIC, PAYLOAD, fingerprint="b" * 64) is not None
    assert outbox.save(TOPIC, PAYLOAD) is not None  # no fingerprint: always a new record
    assert outbox.counts()[RecordState.PENDING] == 3
    outbox.close()


def test_a_record_is_stored_as_sqlalchemy_itself_stores_it(tmp_path: Path) -> None:
    """save() writes on the DBAPI connection: its columns are in the forms SQLAlchemy writes and
    reads back (an enum by name, an aware datetime as UTC text, a bool as 0/1)."""
    path = tmp_path / "outbox.sqlite3"
    kiosk_time = datetime(2026, 11, 25, 17, 0, tzinfo=timezone(timedelta(hours=8)))
    outbox = Outbox(path, clock=lambda: kiosk_time, clock_trusted=lambda: False)
    saved = outbox.save(TOPIC, PAYLOAD, fingerprint="e" * 64)
    assert saved is not None
    with outbox.unit_of_work() as session:
        session.add(OutboxRecord(message_id=str(uuid.uuid4()), topic=TOPIC, body=b"{}", created_at=kiosk_time,
                                 clock_trusted=False, record_class=0, size=258, saved_running_s=1.0))
        session.add(DeviceReadingSeen(fingerprint="f" * 64, seq=2, seen_at=kiosk_time, seen_running_s=1.0))
        session.commit()
    outbox.close()
    columns = "state, record_class, clock_trusted, created_at, typeof(saved_running_s), qos"
    with closing(sqlite3.connect(path)) as db:
        ours, sqlalchemy_s = db.execute(f"SELECT {columns} FROM outbox ORDER BY seq").fetchall()  # noqa: S608 - ours
        seen = db.execute("SELECT seen_at, typeof(seen_running_s) FROM device_readings_seen ORDER BY seq").fetchall()
    assert ours == sqlalchemy_s == ("PENDING", 0, 0, "2026-11-25 09:00:00.000000", "real", 1)
    assert seen[0] == seen[1]
    reopened = Outbox(path)
    assert reopened.state_of(saved.message_id) is RecordState.PENDING
    assert reopened.depth()[RecordClass.HEALTH] == (2, kiosk_time)
    reopened.close()


def test_sequence_numbers_have_no_gap_when_a_save_is_undone_or_not_kept(tmp_path: Path) -> None:
    """A seq is taken before its record is written (its body holds it): a transaction rolled
    back, a replayed reading and a record with no room all give theirs back."""
    event = KioskTopics("site-a", "kiosk-1").event(EventType.LAUNDRY_MACHINE)
    outbox = Outbox(tmp_path / "outbox.sqlite3", limits=OutboxLimits(budget_bytes=2_000))
    assert outbox.save(TOPIC, PAYLOAD, fingerprint="a" * 64).seq == 1  # type: ignore[union-attr]
    with outbox.unit_of_work() as session:
        assert outbox.add(session, TOPIC, PAYLOAD).seq == 2  # type: ignore[union-attr]
        session.rollback()
    assert outbox.save(TOPIC, PAYLOAD, fingerprint="a" * 64) is None
    assert outbox.save(TOPIC, PAYLOAD).seq == 2  # type: ignore[union-attr]
    with outbox.unit_of_work() as session:  # two records and another row, one transaction
        assert [outbox.add(session, TOPIC, PAYLOAD).seq for _ in range(2)] == [3, 4]  # type: ignore[union-attr]
        session.commit()
    assert outbox.save(event, {"unit": 1, "state": "idle", "link": "online"}, fingerprint="b" * 64) is None  # no room
    assert outbox.save(TOPIC, PAYLOAD, fingerprint="b" * 64).seq == 5  # type: ignore[union-attr]  # not seen: not kept
    assert [r.seq for r in outbox.due(10)] == [1, 2, 3, 4, 5]
    outbox.close()


def test_writers_in_several_threads_get_distinct_seqs_in_running_time_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    per_thread = 40

    def write(thread: int) -> list[int]:
        seqs = []
        for i in range(per_thread):
            if i % 2:
                saved = outbox.save(TOPIC, PAYLOAD, fingerprint=f"{thread:02d}{i:062d}")
            else:
                with outbox.unit_of_work() as session:
                    saved = outbox.add(session, TOPIC, PAYLOAD)
                    session.commit()
            assert saved is not None
            seqs.append(saved.seq)
        return seqs

    with ThreadPoolExecutor(4) as pool:
        seqs = [seq for thread in pool.map(write, range(4)) for seq in thread]
    outbox.close()
    assert sorted(seqs) == list(range(1, 4 * per_thread + 1))
    with closing(sqlite3.connect(tmp_path / "outbox.sqlite3")) as db:
        by_running_time = [seq for (seq,) in db.execute("SELECT seq FROM outbox ORDER BY saved_running_s, seq")]
        bodies = dict(db.execute("SELECT seq, body FROM outbox").fetchall())
    assert by_running_time == sorted(seqs)
    assert all(Envelope.model_validate_json(body).seq == seq for seq, body in bodies.items())


def test_the_running_time_goes_on_after_a_crash_from_the_newest_record(tmp_path: Path) -> None:
    """A save keeps the running time in its record, not in the clock's row: a kiosk that lost
    power (no close) starts again from its newest record's running time, never earlier."""
    path = tmp_path / "outbox.sqlite3"
    running = [1000.0]
    outbox = Outbox(path, monotonic=lambda: running[0])
    running[0] += 3600
    outbox.save(TOPIC, PAYLOAD)
    outbox.database.engine.dispose()  # the power cut: no close, so the clock's row says 0
    rebooted = Outbox(path, monotonic=lambda: 5.0)
    assert rebooted.running_s() == pytest.approx(3600)
    rebooted.close()


def test_the_running_time_survives_the_eviction_of_the_newest_record(tmp_path: Path) -> None:
    """Only health readings and one telemetry record, the newest: an event evicts it and is
    still not kept. The clock's row, written with the eviction, carries the running time on."""
    topics = KioskTopics("site-a", "kiosk-1")
    path = tmp_path / "outbox.sqlite3"
    scratch = Outbox(tmp_path / "scratch.sqlite3")
    # Room for two readings and the beat; the event is bigger than the beat.
    room = 2 * record_size(scratch, TOPIC, PAYLOAD) + record_size(scratch, topics.telemetry, {"uptime_s": 1})
    running = [1000.0]
    outbox = Outbox(path, monotonic=lambda: running[0], limits=OutboxLimits(budget_bytes=room))
    outbox.save(TOPIC, PAYLOAD)
    outbox.save(TOPIC, PAYLOAD)
    running[0] += 3600
    beat = outbox.save(topics.telemetry, {"uptime_s": 1})
    assert beat is not None
    running[0] += 60
    assert outbox.save(topics.event(EventType.LAUNDRY_MACHINE), {"unit": 1, "state": "idle", "link": "online"}) is None
    assert beat.seq not in {r.seq for r in outbox.due(10)}
    outbox.database.engine.dispose()  # a power cut: no close
    rebooted = Outbox(path, monotonic=lambda: 5.0)
    assert rebooted.running_s() >= 3600
    rebooted.close()
