"""The kiosk's durable outbox: every record is committed here before anyone is told "saved".

A record leaves only after the bridge confirms it stored it (wire contract, …/acks). Its
message body is built once, at save time, so a re-send is byte-for-byte the same message with
the same id and sequence number, and the cloud can dedupe it.

States: pending (not yet accepted by the broker) -> published (the broker PUBACKed it; not
storage: Mosquitto can still lose it) -> delivered (the bridge committed it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, update
from sqlmodel import Field, Session, SQLModel, col, select

from doorstep.db import create_durable_engine
from doorstep.wire import QOS_RELIABLE, DeviceIdentity, Envelope


class RecordState(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    DELIVERED = "delivered"


class OutboxRecord(SQLModel, table=True):
    __tablename__ = "outbox"
    # AUTOINCREMENT: a sequence number is never reused after its record is pruned, so the
    # bridge can read a gap as a lost message.
    __table_args__ = {"sqlite_autoincrement": True}

    seq: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, max_length=36)
    topic: str
    qos: int = QOS_RELIABLE
    body: bytes
    state: RecordState = Field(default=RecordState.PENDING, index=True)
    created_at: datetime
    delivered_at: datetime | None = None


class DeviceReadingSeen(SQLModel, table=True):
    """Readings already saved, by fingerprint: cuffs that replay their memory on every
    connection must not become new records each time."""

    __tablename__ = "device_readings_seen"

    fingerprint: str = Field(primary_key=True, max_length=64)
    seq: int
    seen_at: datetime


class DeviceCursor(SQLModel, table=True):
    """How far a device's stored records have been read (a glucose meter's last sequence number)."""

    __tablename__ = "device_cursors"

    address: str = Field(primary_key=True, max_length=64)
    position: int


@dataclass(frozen=True, slots=True)
class SavedRecord:
    seq: int
    message_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class PendingRecord:
    seq: int
    message_id: uuid.UUID
    topic: str
    qos: int
    body: bytes


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outbox:
    def __init__(self, path: Path, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = create_durable_engine(f"sqlite:///{path}")
        SQLModel.metadata.create_all(
            self._engine,
            tables=[OutboxRecord.__table__, DeviceReadingSeen.__table__, DeviceCursor.__table__],  # type: ignore[attr-defined]
        )
        self.path = path
        self._clock = clock

    def create_tables(self, models: Iterable[type[SQLModel]]) -> None:
        """Tables of other parts of the agent that must commit together with outbox records."""
        SQLModel.metadata.create_all(self._engine, tables=[m.__table__ for m in models])  # type: ignore[attr-defined]

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose records (see `add`) and other rows commit together, or not at all.
        The caller commits; leaving without a commit rolls everything back."""
        with Session(self._engine) as session:
            yield session

    def save(
        self,
        topic: str,
        payload: BaseModel | dict[str, Any],
        *,
        device: DeviceIdentity | None = None,
        device_time: datetime | None = None,
        clock_trusted: bool = True,
        qos: int = QOS_RELIABLE,
        fingerprint: str | None = None,
    ) -> SavedRecord | None:
        """Commit one record durably and return its identity; raise on any storage failure.

        With a `fingerprint` (the device's own identity of the reading), a reading saved before
        is not saved again and None is returned: the check and the save are one transaction.
        """
        with self.unit_of_work() as session:
            if fingerprint is not None and session.get(DeviceReadingSeen, fingerprint) is not None:
                return None
            saved = self.add(session, topic, payload, device=device, device_time=device_time,
                             clock_trusted=clock_trusted, qos=qos)
            if fingerprint is not None:
                session.add(DeviceReadingSeen(fingerprint=fingerprint, seq=saved.seq, seen_at=self._clock()))
            session.commit()
            return saved

    def add(
        self,
        session: Session,
        topic: str,
        payload: BaseModel | dict[str, Any],
        *,
        device: DeviceIdentity | None = None,
        device_time: datetime | None = None,
        clock_trusted: bool = True,
        qos: int = QOS_RELIABLE,
    ) -> SavedRecord:
        """Add one record to `session` (from `unit_of_work`); durable only once it commits."""
        message_id = uuid.uuid4()
        now = self._clock()
        payload_data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        record = OutboxRecord(message_id=str(message_id), topic=topic, qos=qos, body=b"", created_at=now)
        session.add(record)
        session.flush()  # assigns seq, inside the same transaction
        assert record.seq is not None
        envelope = Envelope(
            message_id=message_id,
            seq=record.seq,
            kiosk_time=now,
            kiosk_clock_trusted=clock_trusted,
            device_time=device_time,
            device=device,
            payload=payload_data,
        )
        record.body = envelope.model_dump_json().encode()
        return SavedRecord(seq=record.seq, message_id=message_id)

    def due(self, limit: int, *, exclude: Collection[int] = ()) -> list[PendingRecord]:
        """Undelivered records in sequence order, skipping those in `exclude` (in flight)."""
        statement = select(OutboxRecord).where(OutboxRecord.state != RecordState.DELIVERED)
        if exclude:
            statement = statement.where(col(OutboxRecord.seq).not_in(list(exclude)))
        statement = statement.order_by(col(OutboxRecord.seq)).limit(limit)
        with Session(self._engine) as session:
            return [
                PendingRecord(r.seq, uuid.UUID(r.message_id), r.topic, r.qos, r.body)  # type: ignore[arg-type]
                for r in session.exec(statement)
            ]

    def mark_published(self, seqs: Collection[int]) -> None:
        with Session(self._engine) as session:
            session.execute(
                update(OutboxRecord)
                .where(col(OutboxRecord.seq).in_(list(seqs)), col(OutboxRecord.state) == RecordState.PENDING)
                .values(state=RecordState.PUBLISHED)
            )
            session.commit()

    def mark_delivered(self, message_ids: Iterable[uuid.UUID]) -> int:
        """Record the bridge's confirmation; returns how many records it newly delivered."""
        ids = [str(m) for m in message_ids]
        with Session(self._engine) as session:
            result = session.execute(
                update(OutboxRecord)
                .where(col(OutboxRecord.message_id).in_(ids), col(OutboxRecord.state) != RecordState.DELIVERED)
                .values(state=RecordState.DELIVERED, delivered_at=self._clock())
            )
            session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]

    def counts(self) -> dict[RecordState, int]:
        with Session(self._engine) as session:
            rows = session.exec(select(OutboxRecord.state, func.count()).group_by(OutboxRecord.state)).all()
        counts = {state: 0 for state in RecordState}
        counts.update({RecordState(state): n for state, n in rows})
        return counts

    def state_of(self, message_id: uuid.UUID) -> RecordState | None:
        with Session(self._engine) as session:
            record = session.exec(select(OutboxRecord).where(OutboxRecord.message_id == str(message_id))).first()
            return None if record is None else record.state

    def cursor(self, address: str) -> int | None:
        with Session(self._engine) as session:
            found = session.get(DeviceCursor, address)
            return None if found is None else found.position

    def set_cursor(self, address: str, position: int) -> None:
        with Session(self._engine) as session:
            session.merge(DeviceCursor(address=address, position=position))
            session.commit()
