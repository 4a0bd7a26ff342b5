"""Alembic's environment for the bridge's schema: run by cloud_bridge.store.migrate, which hands
over an open connection (SQLite or PostgreSQL); there is no alembic.ini."""

from __future__ import annotations

from alembic import context

from cloud_bridge.schema import bridge_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=bridge_metadata(),
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
