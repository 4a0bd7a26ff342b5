"""The bridge's message tables and the functions that write messages to them, exactly once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Boolean, ColumnElement, Uuid, CursorResult, Engine, Executable, Index, String, Table, Text, bindparam, cast, func
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlalchemy import select as core_select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from contract.commands import CommandResultPayload
from contract.envelope import UpstreamMessage
from contract.topics import Channel

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


class BloodPressureMeaning(SQLModel):
    """What a blood-pressure reading means, by the one rule (contract/clinical.py), so
    the dashboard neither converts units nor categorises on its own."""

    systolic_mmhg: float | None
    diastolic_mmhg: float | None
    category: str | None = Field(description="normal, high_normal, high, very_high; null: suspect or no value")
    dangerous: bool = Field(description="at or above the dangerous-reading alert line (never when suspect)")


class ReadingPublic(ReadingBase):
    blood_pressure: BloodPressureMeaning | None = Field(default=None, description="blood-pressure readings only")


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


class BulkInsert:
    """An INSERT of many rows in one statement, built once per database and reused.

    On PostgreSQL each column is bound as one JSON array and the rows are taken apart from them
    (INSERT … SELECT json_array_elements_text(%(seq)s::JSON)::INTEGER, …; set-returning
    functions in a select list run in lockstep, PostgreSQL 10+): one short statement whatever
    the number of rows, which psycopg parses once and PostgreSQL prepares once, its parameters
    written by json.dumps in C. A multi-row VALUES of 200 rows was a statement of thousands of
    parameters that psycopg parsed afresh for every batch (~4 ms each, no cache past 50
    parameters), an executemany of upserts one pipelined statement per row, and PostgreSQL
    arrays psycopg writes in Python, element by element (for JSON payloads, with regular
    expressions: a third of a batch's CPU). Elsewhere (SQLite) it is an executemany, which
    SQLAlchemy sends as multi-row INSERTs ("insertmanyvalues"), RETURNING included.

    `finish` adds ON CONFLICT and RETURNING to the dialect's INSERT; every row given to
    execute() has every column named. The values of the `written` columns (JSON columns) are
    their JSON text already, stored as it is rather than serialised again."""

    def __init__(self, dialect: str, model: type[SQLModel], columns: Sequence[str],
                 finish: Callable[[Any], Executable], written: frozenset[str] = frozenset()) -> None:
        table = table_of(model)
        self.columns = tuple(columns)
        self._written = written
        self._json = dialect == "postgresql"
        if self._json:
            rows = core_select(*[json_column(name, table.c[name].type) for name in self.columns])
            self.statement = finish(postgresql_insert(table).from_select(self.columns, rows))
        else:
            # Bound as text, so that SQLAlchemy's JSON type does not serialise the text again.
            insert = sqlite_insert(table)
            self.statement = finish(insert.values({name: bindparam(name, type_=Text) for name in written}) if written else insert)

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]],
                shared: Mapping[str, Any] | None = None) -> CursorResult[Any]:
        """`shared`: parameters of the statement outside the rows (its ON CONFLICT clause's),
        the same for every row."""
        # The session's connection, not session.execute: the same transaction without the
        # ORM's per-statement work (autoflush, ORM compile hooks).
        connection = session.connection()
        if self._json:
            return connection.execute(self.statement, {**json_parameters(self.columns, rows, self._written), **(shared or {})})
        return connection.execute(self.statement, [{**row, **shared} for row in rows] if shared else list(rows))


def json_parameters(columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
                    written: frozenset[str] = frozenset()) -> dict[str, str]:
    """Rows as the parameters of json_column()s: each column's values, one JSON array (the
    values of a `written` column are JSON texts, joined into it as they are)."""
    return {
        name: "[" + ",".join([row[name] for row in rows]) + "]" if name in written
        else json.dumps([row[name] for row in rows], default=_json_scalar)
        for name in columns
    }


def json_column(name: str, column_type: TypeEngine[Any]) -> ColumnElement[Any]:
    """One column of many rows on PostgreSQL (BulkInsert), from a JSON array bound as text. Text
    is not cast (a cast to VARCHAR(n) would cut a long value short; the column's own
    assignment refuses it)."""
    values = cast(bindparam(name, type_=Text), postgresql.JSON)
    if isinstance(column_type, JSON):
        return func.json_array_elements(values)
    texts = func.json_array_elements_text(values)
    # SQLModel's str columns are AutoString, a TypeDecorator over String.
    if isinstance(column_type.impl if isinstance(column_type, TypeDecorator) else column_type, String):
        return texts
    return cast(texts, column_type)


def _json_scalar(value: Any) -> str:
    """What json.dumps cannot write itself, as PostgreSQL reads it back: UUIDs, aware times."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"a time without a zone: {value!r}")  # as UTCDateTime refuses it
        # In UTC, as UTCDateTime binds it: PostgreSQL reads no offset past ±15:59 (the contract
        # allows any a datetime can hold).
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not written to a bulk insert")


_BULK: dict[tuple[str, str], BulkInsert] = {}


def bulk_insert(session: Session, name: str, model: type[SQLModel], columns: Sequence[str],
                finish: Callable[[Any], Executable], written: frozenset[str] = frozenset()) -> BulkInsert:
    """The BulkInsert called `name` for the session's database, built on first use."""
    dialect = session.get_bind().dialect.name
    found = _BULK.get((dialect, name))
    if found is None:
        found = _BULK[(dialect, name)] = BulkInsert(dialect, model, columns, finish, written)
    return found


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


_KIOSK_COLUMNS = ("message_id", "site", "kiosk", "seq", "kiosk_time", "kiosk_clock_trusted", "payload", "received_at")
_DEVICE_COLUMNS = (*_KIOSK_COLUMNS, "device_model", "device_address", "device_firmware", "subject")
_COLUMNS_OF_CHANNEL: dict[Channel, tuple[str, ...]] = {
    Channel.READINGS: (*_DEVICE_COLUMNS, "kind", "device_time"),
    Channel.EVENTS: (*_DEVICE_COLUMNS, "type"),
    Channel.TELEMETRY: _KIOSK_COLUMNS,
    Channel.COMMAND_RESULTS: (*_KIOSK_COLUMNS, "request_id", "command", "outcome"),
}


def message_row(message: UpstreamMessage, received_at: datetime) -> dict[str, Any]:
    """The row of a message in its channel's table (MESSAGE_TABLES), every column of it named.
    Its payload is the JSON text of the payload as validated (pydantic-core writes it: the
    same JSON a reader got when it was written from a dict, at a tenth of the cost)."""
    envelope = message.envelope
    payload = message.payload
    row: dict[str, Any] = {
        "message_id": envelope.message_id,
        "site": message.topic.site,
        "kiosk": message.topic.kiosk,
        "seq": envelope.seq,
        "kiosk_time": envelope.kiosk_time,
        "kiosk_clock_trusted": envelope.kiosk_clock_trusted,
        "payload": payload.model_dump_json(),
        "received_at": received_at,
    }
    channel = message.topic.channel
    if channel is Channel.READINGS or channel is Channel.EVENTS:
        device = envelope.device
        row["device_model"] = device.model if device else None
        row["device_address"] = device.address if device else None
        row["device_firmware"] = device.firmware if device else None
        row["subject"] = getattr(payload, "subject", None)
        if channel is Channel.READINGS:
            row["kind"] = message.topic.name
            row["device_time"] = envelope.device_time.isoformat() if envelope.device_time else None
        else:
            row["type"] = message.topic.name
    elif channel is Channel.COMMAND_RESULTS:
        assert isinstance(payload, CommandResultPayload)
        row |= {"request_id": payload.request_id, "command": payload.command, "outcome": payload.outcome.value}
    return row


# SQLite's limit on one statement's parameters (SQLITE_MAX_VARIABLE_NUMBER, 32766 since 3.32).
_SQLITE_MAX_PARAMETERS = 32766


def _sqlite_uuid(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


def _sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError(f"a time without a zone: {value!r}")  # as UTCDateTime refuses it
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


# A value as SQLAlchemy's SQLite types bind it (tests/bridge/test_batch.py compares the two):
# Uuid as its 32 hex digits, UTCDateTime in UTC in DATETIME's storage format
# (YYYY-MM-DD HH:MM:SS.ffffff), Boolean as 0 or 1. Other types go as they are.
_SQLITE_CONVERT: dict[type[TypeEngine[Any]], Callable[[Any], Any]] = {
    Uuid: _sqlite_uuid, UTCDateTime: _sqlite_time, Boolean: _sqlite_bool,
}


class SqliteMessagesInsert:
    """insert_messages on SQLite: multi-row INSERT … ON CONFLICT DO NOTHING RETURNING on the
    driver, the values converted as SQLAlchemy binds them (_SQLITE_CONVERT). SQLAlchemy's
    executemany of the same (construct_params, a bind processor per value, insertmanyvalues)
    was about as much CPU as SQLite's own insert, on the worker thread a drain waits for."""

    def __init__(self, model: type[SQLModel], columns: Sequence[str]) -> None:
        table = table_of(model)
        quote = sqlite_dialect().identifier_preparer.quote
        self.columns = tuple(columns)
        self._values = itemgetter(*self.columns)
        self._convert = [(index, _SQLITE_CONVERT[type(table.c[name].type)]) for index, name in enumerate(self.columns)
                         if type(table.c[name].type) in _SQLITE_CONVERT]
        # The JSON payload is its text already (message_row), stored as it is; a JSON column
        # given anything else would go unserialised.
        assert all(not isinstance(table.c[name].type, JSON) for index, name in enumerate(self.columns)
                   if name != "payload"), "only the payload is JSON, and it comes as text"
        self._head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in self.columns)}) VALUES "
        self._row = "(" + ", ".join("?" * len(self.columns)) + ")"
        self._tail = " ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
        self._rows_per_statement = _SQLITE_MAX_PARAMETERS // len(self.columns)
        self._id_index = self.columns.index("message_id")

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> list[uuid.UUID]:
        """The ids stored now for the first time."""
        connection = session.connection()
        new: list[uuid.UUID] = []
        # The last value each converted column had, and what it became: the rows of a gulp
        # share their received_at, and a kiosk's readings often their device.
        last: dict[int, tuple[Any, Any]] = {}
        for start in range(0, len(rows), self._rows_per_statement):
            part = rows[start : start + self._rows_per_statement]
            values: list[Any] = []
            ids: dict[str, uuid.UUID] = {}  # as RETURNING gives them back
            for row in part:
                one = list(self._values(row))
                for index, convert in self._convert:
                    value = one[index]
                    before = last.get(index)
                    if before is not None and before[0] is value:
                        one[index] = before[1]
                    else:
                        one[index] = converted = convert(value)
                        last[index] = (value, converted)
                ids[one[self._id_index]] = row["message_id"]
                values += one
            sql = self._head + ", ".join([self._row] * len(part)) + self._tail
            new += [ids[stored] for (stored,) in connection.exec_driver_sql(sql, tuple(values))]
        return new


_SQLITE_MESSAGES = {channel: SqliteMessagesInsert(model, _COLUMNS_OF_CHANNEL[channel])
                    for channel, model in _TABLE_OF_CHANNEL.items()}


def insert_messages(session: Session, messages: Sequence[UpstreamMessage], received_at: datetime) -> set[uuid.UUID]:
    """Add valid messages to the session's transaction; a message id already stored is a no-op.
    Returns the ids stored now for the first time (a redelivery is not among them): one
    INSERT … ON CONFLICT DO NOTHING RETURNING per table, for the whole batch."""
    rows: dict[Channel, list[dict[str, Any]]] = {}
    for message in messages:
        rows.setdefault(message.topic.channel, []).append(message_row(message, received_at))
    new: set[uuid.UUID] = set()
    sqlite = session.get_bind().dialect.name == "sqlite"
    for channel, model in _TABLE_OF_CHANNEL.items():
        if channel not in rows:
            continue
        if sqlite:
            new.update(_SQLITE_MESSAGES[channel].execute(session, rows[channel]))
            continue
        table = table_of(model)
        statement = bulk_insert(
            session, f"messages:{channel}", model, _COLUMNS_OF_CHANNEL[channel],
            lambda insert, table=table: insert.on_conflict_do_nothing(index_elements=["message_id"])  # type: ignore[misc]
            .returning(table.c.message_id),
            written=frozenset({"payload"}),
        )
        new.update(statement.execute(session, rows[channel]).scalars())
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
