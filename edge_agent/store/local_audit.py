"""The kiosk's own audit log of what its technician does on the spot: each use of the local PIN
(accepted or refused) and each admin action, kept in the kiosk's database beside the remote
commands' audit (edge_agent/store/command_audit.py). Who is "the technician at this kiosk": the PIN is
shared, so the log says when and what, not which person."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel, col, select

from edge_agent.store.database import KioskDatabase


class LocalAuditEntry(SQLModel, table=True):
    __tablename__ = "local_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime
    action: str = Field(max_length=32, description="technician_pin, open_account, ...")
    result: str = Field(max_length=16, description="ok, or why not (wrong_pin, pin_locked, ...)")
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class LocalAudit:
    def __init__(self, database: KioskDatabase) -> None:
        self._database = database

    def record(self, action: str, result: str, **detail: Any) -> None:
        with self._database.writing() as session:
            session.add(LocalAuditEntry(at=datetime.now(UTC), action=action, result=result, detail=detail))
            session.commit()

    def entries(self, limit: int = 100) -> list[LocalAuditEntry]:
        with self._database.writing() as session:
            return list(session.exec(select(LocalAuditEntry).order_by(col(LocalAuditEntry.id).desc()).limit(limit)))
