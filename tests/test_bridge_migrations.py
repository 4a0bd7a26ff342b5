"""Alembic owns the bridge's schema: the migrations build exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cloud_bridge.schema import bridge_metadata
from cloud_bridge.store import migrate
from runtime.db import create_durable_engine


def test_migrations_match_the_models(bridge_database: str) -> None:
    engine = create_durable_engine(bridge_database)
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, bridge_metadata()) == []
    engine.dispose()


def test_migrating_twice_changes_nothing(bridge_database: str) -> None:
    engine = create_durable_engine(bridge_database)
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    migrate(engine)
    assert set(inspect(engine).get_table_names()) == tables
    assert {"readings", "events", "telemetry", "command_results", "dead_letters", "alembic_version"} <= tables
    engine.dispose()
