"""Technicians' commands to kiosks, tracked from request to result.

    pending ──broker PUBACK──▶ delivered ──kiosk's result──▶ succeeded │ failed │ refused │ timed_out
       └───────────── no result by expires_at + RESULT_GRACE ─────────▶ timed_out

A command is a row first: the API commits it and any worker publishes it (at once when the API
runs in a worker, else on the next sweep). "Delivered" means the broker accepted it for the
kiosk's persistent session; a kiosk that is away gets it when it comes back, unless it has
expired by then (the kiosk refuses a command past `expires_at`). Publishing again is safe: the
kiosk acts on a request id once. A result always wins, even after a timed_out: it is what
happened.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, update
from sqlmodel import Field, Session, SQLModel, col, select

from contract.codec import encode
from contract.commands import CommandName, CommandOutcome, CommandResultPayload, KioskCommand, validate_args
from contract.envelope import UpstreamMessage
from contract.errors import ContractError
from contract.topics import KioskTopics

# A command with no result this long after it expired is timed out: the kiosk would have
# refused it by then, so no result is coming.
RESULT_GRACE = timedelta(seconds=30)
# A pending command is published again this long after the last try.
REPUBLISH_AFTER = timedelta(seconds=5)


class CommandStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    TIMED_OUT = "timed_out"


_STATUS_OF_OUTCOME = {
    CommandOutcome.SUCCEEDED: CommandStatus.SUCCEEDED,
    CommandOutcome.FAILED: CommandStatus.FAILED,
    CommandOutcome.REFUSED: CommandStatus.REFUSED,
    CommandOutcome.TIMED_OUT: CommandStatus.TIMED_OUT,
}


class CommandBase(SQLModel):
    request_id: str = Field(primary_key=True, max_length=64)
    site: str = Field(max_length=32)
    kiosk: str = Field(max_length=32)
    command: str = Field(max_length=64)
    args: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    issued_by: str = Field(max_length=64)
    issued_at: datetime
    expires_at: datetime
    status: str = Field(default=CommandStatus.PENDING.value, max_length=16, index=True)
    published_at: datetime | None = Field(default=None, description="last time a worker published it")
    delivered_at: datetime | None = Field(default=None, description="the broker accepted it for the kiosk")
    finished_at: datetime | None = None
    detail: str | None = Field(default=None, max_length=2000, description="the kiosk's words, or why it timed out")
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, description="what the kiosk answered")


class Command(CommandBase, table=True):
    __tablename__ = "commands"


class CommandPublic(CommandBase):
    pass


class CommandArgsError(ValueError):
    pass


def new_request_id(command: CommandName) -> str:
    return f"{secrets.token_hex(8)}-{command.value.replace('_', '-')}"[:64]


def check_args(command: CommandName, args: dict[str, Any]) -> dict[str, Any]:
    """The command's arguments, validated by the contract's model; CommandArgsError says why not."""
    try:
        return validate_args(command, args).model_dump(mode="json")
    except ContractError as error:
        raise CommandArgsError(error.reason) from None


def create(
    session: Session,
    *,
    site: str,
    kiosk: str,
    command: CommandName,
    args: dict[str, Any],
    issued_by: str,
    now: datetime,
    ttl: timedelta,
    request_id: str | None = None,
) -> Command:
    """A new command row (the caller commits); `request_id` one the caller minted with
    new_request_id, when it must name the command before creating it."""
    row = Command(
        request_id=request_id or new_request_id(command),
        site=site,
        kiosk=kiosk,
        command=command.value,
        args=check_args(command, args),
        issued_by=issued_by,
        issued_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    return row


def message_of(row: Command) -> tuple[str, bytes]:
    """The topic and body that carry this command to its kiosk."""
    body = KioskCommand(
        command=CommandName(row.command),
        args=row.args,
        issued_by=row.issued_by,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
    )
    return KioskTopics(row.site, row.kiosk).command(row.request_id), encode(body)


def due_for_publishing(session: Session, now: datetime, limit: int = 100) -> list[Command]:
    """Pending, unexpired commands not published in the last REPUBLISH_AFTER."""
    return list(
        session.exec(
            select(Command)
            .where(
                col(Command.status) == CommandStatus.PENDING.value,
                col(Command.expires_at) > now,
                (col(Command.published_at).is_(None)) | (col(Command.published_at) <= now - REPUBLISH_AFTER),
            )
            .order_by(col(Command.issued_at))
            .limit(limit)
        )
    )


def mark_published(session: Session, request_ids: Sequence[str], now: datetime) -> None:
    session.execute(update(Command).where(col(Command.request_id).in_(list(request_ids))).values(published_at=now))


def mark_delivered(session: Session, request_id: str, now: datetime) -> None:
    session.execute(
        update(Command)
        .where(col(Command.request_id) == request_id, col(Command.status) == CommandStatus.PENDING.value)
        .values(status=CommandStatus.DELIVERED.value, delivered_at=now)
    )


def apply_results(session: Session, results: Sequence[UpstreamMessage]) -> int:
    """Kiosks' answers (newly stored command_results) close their commands; returns how many."""
    closed = 0
    for message in results:
        payload = message.payload
        assert isinstance(payload, CommandResultPayload)
        result = session.execute(
            update(Command)
            .where(
                col(Command.request_id) == payload.request_id,
                col(Command.site) == message.topic.site,
                col(Command.kiosk) == message.topic.kiosk,
            )
            .values(
                status=_STATUS_OF_OUTCOME[payload.outcome].value,
                finished_at=message.envelope.kiosk_time,
                detail=payload.detail,
                data=payload.data,
            )
        )
        closed += int(result.rowcount)  # type: ignore[attr-defined]
    return closed


def time_out_overdue(session: Session, now: datetime) -> int:
    """Commands with no result long after they expired are timed out."""
    result = session.execute(
        update(Command)
        .where(
            col(Command.status).in_([CommandStatus.PENDING.value, CommandStatus.DELIVERED.value]),
            col(Command.expires_at) < now - RESULT_GRACE,
        )
        .values(
            status=CommandStatus.TIMED_OUT.value,
            finished_at=now,
            detail="no result from the kiosk before the command expired",
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
