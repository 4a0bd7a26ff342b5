"""A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl on a free port, torn down after.

Debian's postgresql package keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin. They
refuse to run as root, so as root the cluster belongs to the package's `postgres` user and is
run through runuser.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from broker_admin.mosquitto import free_port


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def postgres_available() -> bool:
    return _tool("initdb") is not None and _tool("pg_ctl") is not None


class PostgresCluster:
    def __init__(self, *, durable: bool = False) -> None:
        """`durable`: fsync on, as in production (the benchmarks); the tests need no power-cut
        safety and run faster without it."""
        initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL is not installed (./dev setup installs the postgresql package)")
        self._pg_ctl = pg_ctl
        self.port = free_port()
        # Not under pytest's tmp_path: the `postgres` user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="doorstep-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.root.chmod(0o755)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._start = [pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "postgres.log"), "-w", "start"]
        self.start()

    def start(self) -> None:
        self._run(self._start)

    def halt(self) -> None:
        """Stop the server as a crash would, keeping its data: start() brings it back."""
        self._run([self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def _run(self, command: list[str]) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:1])} failed: {result.stderr or result.stdout}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def execute(self, statement: str) -> None:
        """One statement outside a transaction (CREATE and DROP DATABASE must be)."""
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(statement)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
