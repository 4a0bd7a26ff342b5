"""The bridge's tables and the one function that writes messages to them, exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Engine, Index, MetaData
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel

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
    )


class EventPublic(EventBase):
    pass


class Telemetry(KioskMessageBase, table=True):
    __tablename__ = "telemetry"
    __table_args__ = (Index("ix_telemetry_kiosk_time", "site", "kiosk", "kiosk_time"),)


class TelemetryPublic(KioskMessageBase):
    pass


class CommandResultBase(KioskMessageBase):
    request_id: str = Field(max_length=64, index=True)
    command: str = Field(max_length=64)
    outcome: str = Field(max_length=16)


class CommandResult(CommandResultBase, table=True):
    __tablename__ = "command_results"
    __table_args__ = (Index("ix_command_results_kiosk_time", "site", "kiosk", "kiosk_time"),)


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


BRIDGE_TABLES = [
    model.__table__  # type: ignore[attr-defined, union-attr]
    for model in (Reading, Event, Telemetry, CommandResult, DeadLetter)
]  # type: ignore[attr-defined]


def bridge_metadata() -> MetaData:
    """The bridge's tables alone (SQLModel's shared metadata also holds the agent's)."""
    metadata = MetaData()
    for table in BRIDGE_TABLES:
        table.to_metadata(metadata)
    return metadata


def migration_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema with Alembic (cloud_bridge/migrations/)."""
    config = migration_config()
    with engine.begin() as connection:
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


def store_batch(
    engine: Engine,
    messages: Sequence[UpstreamMessage],
    refused: Sequence[DeadLetter],
    received_at: datetime,
) -> None:
    """Store valid messages (a message id already stored is a no-op) and dead letters, in one commit."""
    readings = [reading_row(m, received_at) for m in messages if m.topic.channel is Channel.READINGS]
    events = [event_row(m, received_at) for m in messages if m.topic.channel is Channel.EVENTS]
    telemetry = [telemetry_row(m, received_at) for m in messages if m.topic.channel is Channel.TELEMETRY]
    results = [command_result_row(m, received_at) for m in messages if m.topic.channel is Channel.COMMAND_RESULTS]
    insert = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with Session(engine) as session:
        for table, rows in ((Reading, readings), (Event, events), (Telemetry, telemetry), (CommandResult, results)):
            if rows:
                statement = insert(table).values(rows).on_conflict_do_nothing(index_elements=["message_id"])
                session.execute(statement)
        session.add_all(refused)
        session.commit()
