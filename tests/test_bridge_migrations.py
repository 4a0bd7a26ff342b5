"""Alembic owns the bridge's schema: the migrations build exactly what the models describe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, insert, inspect, table
from sqlmodel import Session, select

from cloud_bridge.fleet import Device, Kiosk
from cloud_bridge.schema import bridge_metadata
from cloud_bridge.store import migrate, migration_config, table_of
from doorstep.db import create_durable_engine


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


def test_migrating_clears_the_fleet_stamps_a_kiosk_clock_far_ahead_froze(bridge_database: str) -> None:
    """Revision 0005: rows an older bridge froze with a time far ahead (issue 16, finding 7)
    take the next report again, and their kiosk is flagged."""
    engine = create_durable_engine(bridge_database)
    config = migration_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    now = datetime.now(UTC)
    frozen, fine = datetime(8999, 6, 1, tzinfo=UTC), now - timedelta(minutes=5)
    # The tables as revision 0004 left them (no clock_ahead_at): the columns written, typed as
    # the models type them, so the stamps are stored as the bridge stores them.
    kiosks_0004 = table_of(Kiosk).c
    kiosks_table = table("kiosks", *(column(name, kiosks_0004[name].type) for name in (
        "site", "kiosk", "status", "first_seen_at", "last_seen_at", "last_seq", "seq_checked_through", "telemetry_at",
        "backlog_rising", "health_over_budget")))
    devices_table = table("devices", *(column(name, table_of(Device).c[name].type) for name in (
        "site", "kiosk", "address", "link_at", "state_at", "last_reading_at")))
    with engine.begin() as connection:
        for kiosk, stamp in (("frozen", frozen), ("fine", fine)):
            connection.execute(insert(kiosks_table).values(
                site="s", kiosk=kiosk, status="online", first_seen_at=now, last_seen_at=now, last_seq=1,
                seq_checked_through=0, telemetry_at=stamp, backlog_rising=0, health_over_budget=False))
            connection.execute(insert(devices_table).values(site="s", kiosk=kiosk, address="unit-1", link_at=stamp,
                                                      state_at=stamp, last_reading_at=stamp))
    migrate(engine)
    with Session(engine) as session:
        kiosks = {k.kiosk: k for k in session.exec(select(Kiosk))}
        devices = {d.kiosk: d for d in session.exec(select(Device))}
    assert kiosks["frozen"].telemetry_at is None and kiosks["frozen"].clock_ahead_at is not None
    assert (devices["frozen"].link_at, devices["frozen"].state_at, devices["frozen"].last_reading_at) == (None, None, None)
    assert kiosks["fine"].telemetry_at == fine and kiosks["fine"].clock_ahead_at is None
    assert devices["fine"].link_at == fine
    engine.dispose()
