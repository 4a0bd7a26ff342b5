"""Real parts for the tests: a Mosquitto process, SQLite files, a PostgreSQL cluster, in-process
bridge workers. Every test that stores through the bridge runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from cloud_bridge.service import running_worker
from cloud_bridge.settings import BridgeSettings
from cloud_bridge.store import migrate
from broker_admin.mosquitto import MosquittoProcess
from runtime.db import create_durable_engine
from runtime.mqtt import BrokerSettings
from tests import bluez_mock
from tests.postgres import PostgresCluster
from tests.support import Bridge
from tests.support import broker_settings as default_broker_settings


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A real mosquitto on a free loopback port with a generated config."""
    process = MosquittoProcess.on_free_port(tmp_path / "broker")
    yield process
    process.stop()


@pytest.fixture
def system_bus(tmp_path: Path) -> Iterator[str]:
    """A private system bus with python-dbusmock's BlueZ on it (tests/bluez_mock.py); its address
    is in DBUS_SYSTEM_BUS_ADDRESS meanwhile, where the kiosk's pairing looks."""
    why_not = bluez_mock.available()
    if why_not is not None:
        pytest.fail(why_not)
    with bluez_mock.system_bus_with_bluez(tmp_path) as address:
        yield address


@pytest.fixture
def running_broker(broker: MosquittoProcess) -> MosquittoProcess:
    broker.start()
    return broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway cluster for the whole run; each test gets a database of its own."""
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def bridge_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The bridge's database URL: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.sqlite3'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplates]:
    """Each database migrated once per run; bridge_engine and bridge_factory start from a copy."""
    templates = MigratedTemplates(tmp_path_factory.mktemp("migrated"))
    yield templates
    templates.close()


class MigratedTemplates:
    """Alembic's whole history takes ~0.2 s per database, and hundreds of tests want a migrated
    one: each gets a byte-for-byte copy of a database migrated once (SQLite: the file;
    PostgreSQL: CREATE DATABASE ... TEMPLATE). migrate() still runs on the copy, as a worker's
    start-up does on an existing database. Migrating an empty database is what
    tests/test_bridge_migrations.py tests, on bridge_database itself."""

    _PG_TEMPLATE = "doorstep_migrated_template"

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._sqlite: Path | None = None
        self._postgres: PostgresCluster | None = None

    def fill(self, request: pytest.FixtureRequest, url: str) -> None:
        """Make the empty database at `url` (from bridge_database) a migrated one."""
        if url.startswith("sqlite:///"):
            shutil.copyfile(self._sqlite_template(), url.removeprefix("sqlite:///"))
            return
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        if self._postgres is None:
            self._postgres = cluster
            cluster.execute(f'CREATE DATABASE "{self._PG_TEMPLATE}"')
            _migrate_once(cluster.url(self._PG_TEMPLATE))
        name = url.rsplit("/", 1)[1]
        cluster.execute(f'DROP DATABASE "{name}"')
        cluster.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._PG_TEMPLATE}"')

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            self._sqlite = self._directory / "bridge.sqlite3"
            _migrate_once(f"sqlite:///{self._sqlite}")
            # The last connection closed checkpoints the WAL into the file and removes it.
            assert not self._sqlite.with_name(self._sqlite.name + "-wal").exists()
        return self._sqlite

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.unlink()


def _migrate_once(url: str) -> None:
    engine = create_durable_engine(url)
    migrate(engine)
    engine.dispose()


@pytest.fixture
def bridge_engine(
    request: pytest.FixtureRequest, bridge_database: str, migrated_templates: MigratedTemplates
) -> Iterator[Engine]:
    """A migrated bridge database (SQLite or PostgreSQL), with no worker running."""
    migrated_templates.fill(request, bridge_database)
    engine = create_durable_engine(bridge_database)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def bridge_factory(
    request: pytest.FixtureRequest, bridge_database: str, migrated_templates: MigratedTemplates
) -> Iterator[Callable[..., Bridge]]:
    """Start in-process bridge workers (ingest, jobs, webhook sender: cloud_bridge/service.py)
    on one migrated database; all are stopped afterwards."""
    migrated_templates.fill(request, bridge_database)
    engine = create_durable_engine(bridge_database)
    migrate(engine)
    with ExitStack() as workers:

        def start(
            broker: MosquittoProcess,
            client_id: str | None = None,
            broker_settings: BrokerSettings | None = None,
            **settings: Any,
        ) -> Bridge:
            broker_settings = broker_settings or default_broker_settings(broker)
            bridge_settings = BridgeSettings(
                database_url=bridge_database,
                broker=broker_settings,
                # With an account, the client id is its username (BridgeSettings.worker_id).
                client_id=client_id or (None if broker_settings.username else "bridge-test-1"),
                environment="development",
                **settings,
            )
            worker = workers.enter_context(running_worker(bridge_settings, engine))
            return Bridge(engine, worker.ingest, worker)

        yield start
    engine.dispose()
