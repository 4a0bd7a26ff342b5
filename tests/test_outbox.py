"""The outbox on a real SQLite file."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from doorstep.wire import Envelope, KioskTopics, ReadingKind
from edge_agent.outbox import Outbox, RecordState

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
