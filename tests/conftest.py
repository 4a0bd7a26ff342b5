"""Real parts for the tests: a Mosquitto process, SQLite files, a PostgreSQL cluster, in-process
bridge workers. Every test that stores through the bridge runs on SQLite and on PostgreSQL."""

from __future__ import annotations

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


@pytest.fixture
def bridge_engine(bridge_database: str) -> Iterator[Engine]:
    """A migrated bridge database (SQLite or PostgreSQL), with no worker running."""
    engine = create_durable_engine(bridge_database)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def bridge_factory(bridge_database: str) -> Iterator[Callable[..., Bridge]]:
    """Start in-process bridge workers (ingest, jobs, webhook sender: cloud_bridge/service.py)
    on one migrated database; all are stopped afterwards."""
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
