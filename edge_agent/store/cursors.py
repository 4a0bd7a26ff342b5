"""How far each device's own memory has been read: a glucose meter's last sequence number, so
that the next session asks only for records after it."""

from __future__ import annotations

from sqlmodel import Field, Session, SQLModel

from edge_agent.store.database import KioskDatabase


class DeviceCursor(SQLModel, table=True):
    __tablename__ = "device_cursors"

    address: str = Field(primary_key=True, max_length=64)
    position: int


class DeviceCursors:
    def __init__(self, database: KioskDatabase) -> None:
        self._database = database

    def position(self, address: str) -> int | None:
        with Session(self._database.engine) as session:
            found = session.get(DeviceCursor, address)
            return None if found is None else found.position

    def set_position(self, address: str, position: int) -> None:
        with self._database.writing() as session:
            session.merge(DeviceCursor(address=address, position=position))
            session.commit()
