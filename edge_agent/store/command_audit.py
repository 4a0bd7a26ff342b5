"""The kiosk's local audit of remote commands (edge_agent/remote.py): who asked what, when,
and what came of it. A request id is written here before anything is done, so a redelivered
command is recognised and not done again."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class CommandAudit(SQLModel, table=True):
    __tablename__ = "command_audit"

    request_id: str = Field(primary_key=True, max_length=64)
    command: str = Field(max_length=64)
    issued_by: str | None = Field(default=None, max_length=64)
    issued_at: datetime | None = None
    received_at: datetime
    outcome: str | None = Field(default=None, max_length=16, description="null while it runs")
    detail: str | None = None
    finished_at: datetime | None = None
