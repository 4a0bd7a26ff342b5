"""The bridge's message tables and the functions that write messages to them, exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from pydantic import BaseModel
from sqlalchemy import JSON, Engine, Index, Table
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col, select

from doorstep.wire import Channel, UpstreamMessage

# Enough of a refused message to see what was wrong with it, not enough to fill the disk.
DEAD_LETTER_RAW_LIMIT = 4096


class KioskMessageBase(SQLModel):
    """What every stored upstream message keeps from its envelope (docs/protocol.md)."""

    message_id: uuid.UUID = Field(primary_key=True)
    site: str = Field(max_length=32)
    kiosk: str = Field(max_length=32)
    seq: int
    kiosk_time: datetime
    kiosk_clock_trusted: bool
    # sa_type, not sa_column: one Column object cannot serve several tables.
    payload: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    received_at: datetime


class DeviceMessageBase(KioskMessageBase):
    """A message about a device and perhaps a resident: readings and events."""

    device_model: str | None = None
    device_address: str | None = None
    device_firmware: str | None = None
    subject: str | None = Field(default=None, max_length=64, description="resident pseudonym")


class ReadingBase(DeviceMessageBase):
    kind: str = Field(max_length=32)
    device_time: str | None = Field(default=None, description="the device's own clock, ISO 8601 without zone")


class Reading(ReadingBase, table=True):
    __tablename__ = "readings"
    __table_args__ = (
        Index("ix_readings_kiosk_time", "site", "kiosk", "kiosk_time"),
        Index("ix_readings_subject_time", "subject", "kiosk_time"),
        # "This kiosk, this resident pseudonym, this time range": the family doctor's question.
        Index("ix_readings_kiosk_subject_time", "site", "kiosk", "subject", "kiosk_time"),
        Index("ix_readings_kiosk_seq", "site", "kiosk", "seq"),
    )


class ReadingPublic(ReadingBase):
    pass


class EventBase(DeviceMessageBase):
    type: str = Field(max_length=32)


class Event(EventBase, table=True):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_kiosk_time", "site", "kiosk", "kiosk_time"),
        Index("ix_events_type_time", "type", "kiosk_time"),
        Index("ix_events_kiosk_seq", "site", "kiosk", "seq"),
    )


class EventPublic(EventBase):
    pass


class Telemetry(KioskMessageBase, table=True):
    __tablename__ = "telemetry"
    __table_args__ = (
        Index("ix_telemetry_kiosk_time", "site", "kiosk", "kiosk_time"),
        Index("ix_telemetry_kiosk_seq", "site", "kiosk", "seq"),
    )


class TelemetryPublic(KioskMessageBase):
    pass


class CommandResultBase(KioskMessageBase):
    request_id: str = Field(max_length=64, index=True)
    command: str = Field(max_length=64)
    outcome: str = Field(max_length=16)


class CommandResult(CommandResultBase, table=True):
    __tablename__ = "command_results"
    __table_args__ = (
        Index("ix_command_results_kiosk_time", "site", "kiosk", "kiosk_time"),
        Index("ix_command_results_kiosk_seq", "site", "kiosk", "seq"),
    )


class CommandResultPublic(CommandResultBase):
    pass


class DeadLetter(SQLModel, table=True):
    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime
    topic: str
    reason: str
    raw: bytes = Field(description=f"the first {DEAD_LETTER_RAW_LIMIT} bytes of the message")
    raw_size: int


# The tables a kiosk's sequence numbers are spread over (every channel with an envelope).
MESSAGE_TABLES: tuple[type[KioskMessageBase], ...] = (Reading, Event, Telemetry, CommandResult)
_TABLE_OF_CHANNEL: dict[Channel, type[KioskMessageBase]] = {
    Channel.READINGS: Reading,
    Channel.EVENTS: Event,
    Channel.TELEMETRY: Telemetry,
    Channel.COMMAND_RESULTS: CommandResult,
}


def table_of(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def dialect_insert(session: Session, model: type[SQLModel]) -> SqliteInsert | PostgresqlInsert:
    """INSERT for the session's database, with ON CONFLICT available (SQLite and PostgreSQL)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(table_of(model))


def migration_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return config


# Any number for PostgreSQL's advisory lock, the same in every worker: "doorstep" in ASCII.
_MIGRATION_LOCK_KEY = 0x646F6F7273746570


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema with Alembic (cloud_bridge/migrations/).

    Workers starting together take turns: PostgreSQL through an advisory lock held for the
    transaction, SQLite by taking its write lock before Alembic reads the current version."""
    config = migration_config()
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        elif engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _common_row(message: UpstreamMessage, received_at: datetime) -> dict[str, Any]:
    envelope = message.envelope
    payload = message.payload.model_dump(mode="json") if isinstance(message.payload, BaseModel) else message.payload
    return {
        "message_id": envelope.message_id,
        "site": message.topic.site,
        "kiosk": message.topic.kiosk,
        "seq": envelope.seq,
        "kiosk_time": envelope.kiosk_time,
        "kiosk_clock_trusted": envelope.kiosk_clock_trusted,
        "device_model": envelope.device.model if envelope.device else None,
        "device_address": envelope.device.address if envelope.device else None,
        "device_firmware": envelope.device.firmware if envelope.device else None,
        "subject": payload.get("subject"),
        "payload": payload,
        "received_at": received_at,
    }


def reading_row(message: UpstreamMessage, received_at: datetime) -> dict[str, Any]:
    device_time = message.envelope.device_time
    return _common_row(message, received_at) | {
        "kind": message.topic.name,
        "device_time": device_time.isoformat() if device_time else None,
    }


def event_row(message: UpstreamMessage, received_at: datetime) -> dict[str, Any]:
    return _common_row(message, received_at) | {"type": message.topic.name}


_TELEMETRY_COLUMNS = ("message_id", "site", "kiosk", "seq", "kiosk_time", "kiosk_clock_trusted", "payload", "received_at")


def telemetry_row(message: UpstreamMessage, received_at: datetime) -> dict[str, Any]:
    row = _common_row(message, received_at)
    return {name: row[name] for name in _TELEMETRY_COLUMNS}


def command_result_row(message: UpstreamMessage, received_at: datetime) -> dict[str, Any]:
    row = telemetry_row(message, received_at)
    payload = row["payload"]
    return row | {"request_id": payload["request_id"], "command": payload["command"], "outcome": payload["outcome"]}


_ROW_OF_CHANNEL = {
    Channel.READINGS: reading_row,
    Channel.EVENTS: event_row,
    Channel.TELEMETRY: telemetry_row,
    Channel.COMMAND_RESULTS: command_result_row,
}


def insert_messages(session: Session, messages: Sequence[UpstreamMessage], received_at: datetime) -> set[uuid.UUID]:
    """Add valid messages to the session's transaction; a message id already stored is a no-op.
    Returns the ids stored now for the first time (a redelivery is not among them)."""
    new: set[uuid.UUID] = set()
    for channel, model in _TABLE_OF_CHANNEL.items():
        rows = [_ROW_OF_CHANNEL[channel](m, received_at) for m in messages if m.topic.channel is channel]
        if not rows:
            continue
        # Rows as executemany parameters, not .values(rows): a multi-row VALUES clause is a new
        # statement for every batch size, compiled afresh each time (a third of a worker's CPU
        # in a backlog's drain, measured with py-spy); this one is compiled once and cached, and
        # SQLAlchemy still sends it as multi-row INSERTs ("insertmanyvalues") with RETURNING.
        statement = (
            dialect_insert(session, model)
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(table_of(model).c.message_id)
        )
        new.update(session.execute(statement, rows).scalars())
    return new


def stored_seqs(session: Session, site: str, kiosk: str, *, above: int, limit: int) -> list[tuple[int, datetime]]:
    """A kiosk's sequence numbers above `above`, in order, with when each was received."""
    found: list[tuple[int, datetime]] = []
    for model in MESSAGE_TABLES:
        statement = (
            select(model.seq, model.received_at)
            .where(col(model.site) == site, col(model.kiosk) == kiosk, col(model.seq) > above)
            .order_by(col(model.seq))
            .limit(limit)
        )
        found.extend((int(seq), received) for seq, received in session.exec(statement))
    return sorted(found)[:limit]


def count_seqs_between(session: Session, site: str, kiosk: str, first: int, last: int) -> int:
    """How many distinct sequence numbers from `first` to `last` the bridge holds for a kiosk."""
    seqs: set[int] = set()
    for model in MESSAGE_TABLES:
        statement = select(model.seq).where(
            col(model.site) == site, col(model.kiosk) == kiosk, col(model.seq) >= first, col(model.seq) <= last
        )
        seqs.update(int(seq) for seq in session.exec(statement))
    return len(seqs)


def seq_taken_by_another(session: Session, site: str, kiosk: str, seq: int, message_id: uuid.UUID) -> bool:
    """Whether another message of this kiosk already holds `seq` (its outbox started over)."""
    for model in MESSAGE_TABLES:
        statement = select(model.message_id).where(
            col(model.site) == site, col(model.kiosk) == kiosk, col(model.seq) == seq,
            col(model.message_id) != message_id,
        ).limit(1)
        if session.exec(statement).first() is not None:
            return True
    return False
