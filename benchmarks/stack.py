"""The real parts a benchmark runs against: a Mosquitto process, bridge worker processes, a
SQLite file or a throwaway PostgreSQL cluster. The tests' own helpers start them
(broker_admin/mosquitto.py, tests/postgres.py, tests/bridge/workers.py), so a benchmark measures
exactly what the tests check."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contract.sealing import encode_key, private_key_from_file, write_key_pair

from broker_admin.mosquitto import MosquittoProcess
from tests.bridge.workers import WorkerProcess, worker_processes
from tests.postgres import PostgresCluster

DATABASES = ("sqlite", "postgresql")


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"doorstep-bench-{prefix}-") as path:
        yield Path(path)


@contextmanager
def broker(directory: Path) -> Iterator[MosquittoProcess]:
    """A fresh Mosquitto 2 with the tests' configuration (queues big enough for a backlog)."""
    process = MosquittoProcess.on_free_port(directory / "broker")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """With fsync on: a benchmark must pay for durability as production does."""
    cluster = PostgresCluster(durable=True)
    try:
        yield cluster
    finally:
        cluster.stop()


class Databases:
    """Fresh bridge databases of either kind; the PostgreSQL cluster is started on first use."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._cluster: PostgresCluster | None = None
        self._made = 0

    def new(self, kind: str) -> str:
        self._made += 1
        if kind == "sqlite":
            return f"sqlite:///{self._directory / f'bridge-{self._made}.sqlite3'}"
        if kind != "postgresql":
            raise ValueError(f"no database kind {kind!r}; one of {', '.join(DATABASES)}")
        if self._cluster is None:
            self._cluster = PostgresCluster(durable=True)
        return self._cluster.new_database()

    @property
    def cluster(self) -> PostgresCluster | None:
        return self._cluster

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()


@contextmanager
def databases(directory: Path) -> Iterator[Databases]:
    made = Databases(directory)
    try:
        yield made
    finally:
        made.close()


# Kept between runs, like the cached backlogs sealed for it (benchmarks/backlog.py).
CACHE = Path(tempfile.gettempdir()) / "doorstep-bench-cache"


def payload_keys() -> tuple[Path, str]:
    """The bridge's private payload key (a file) and its public key for kiosks: readings are
    sealed in production, so every benchmark seals them (contract/sealing.py)."""
    key = CACHE / "keys" / "payload.key"
    if key.exists():
        return key, encode_key(private_key_from_file(key).public_key)
    return write_key_pair(CACHE / "keys")


@contextmanager
def bridge_workers(directory: Path, mqtt: MosquittoProcess, database_url: str, count: int = 1,
                   key: Path | None = None, **settings: Any) -> Iterator[list[WorkerProcess]]:
    """`doorstep bridge` processes on one database, serving and subscribed when this yields."""
    directory.mkdir(parents=True, exist_ok=True)
    if key is not None:
        settings["payload_keys"] = [str(key)]
    workers = worker_processes(directory, mqtt, database_url, count, **settings)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_serving(timeout=60)
        time.sleep(0.5)  # each worker's subscription in place (it subscribes on connect)
        yield workers
    finally:
        for worker in workers:
            worker.stop()
