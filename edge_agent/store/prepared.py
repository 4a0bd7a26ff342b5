"""Statements compiled once for SQLite and run on the DBAPI cursor, for the hot paths (a save).

A save through the Session, a Core statement at a time, cost more than SQLite itself: 0.6 of
its 1.0 ms of CPU went to the Session's transaction bookkeeping, the compiled cache's lookup
and result objects (benchmarks/save.py, cProfile).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

DIALECT = sqlite_dialect()


class Prepared:
    """A statement of the models' own tables compiled once, run with the columns' own bind
    processing (enums stored by name, aware datetimes in UTC)."""

    __slots__ = ("sql", "_binds")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=DIALECT)
        assert isinstance(compiled, SQLCompiler)  # a statement, not DDL
        self.sql = str(compiled)
        # (name, processor, whether it must be given, else the value bound in the statement).
        # The type's SQLite form does the processing (a datetime stored as SQLAlchemy's text).
        self._binds = tuple(
            (name, bind.type.dialect_impl(DIALECT).bind_processor(DIALECT), bind.required, bind.value)
            for name, bind in ((name, compiled.binds[name]) for name in compiled.positiontup or ())
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        found = []
        for name, process, required, default in self._binds:
            value = values[name] if required else values.get(name, default)  # KeyError: a value not given
            found.append(value if process is None else process(value))
        return tuple(found)

    def run(self, cursor: DBAPICursor, values: Mapping[str, Any] = MappingProxyType({})) -> DBAPICursor:
        parameters = self.parameters(values)
        try:
            cursor.execute(self.sql, parameters)
        except sqlite3.Error as error:
            raise as_sqlalchemy_error(error, self.sql, parameters) from error
        return cursor

    def run_many(self, cursor: DBAPICursor, rows: Iterable[Mapping[str, Any]]) -> None:
        parameters = [self.parameters(values) for values in rows]
        try:
            cursor.executemany(self.sql, parameters)
        except sqlite3.Error as error:
            raise as_sqlalchemy_error(error, self.sql, parameters) from error


def as_sqlalchemy_error(error: sqlite3.Error, sql: str, parameters: Any) -> StatementError:
    """SQLite's error as SQLAlchemy raises it (OperationalError for a full disk, IntegrityError,
    ...): what callers of the outbox, and of its `unit_of_work`, catch."""
    return DBAPIError.instance(sql, parameters, error, sqlite3.Error, dialect=DIALECT)
