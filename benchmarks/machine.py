"""What a figure was measured on: the machine, the versions of every real part, the date."""

from __future__ import annotations

import os
import platform
import re
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version

from tests.postgres import _tool


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
        return kib / 1024 / 1024
    except (OSError, ValueError, IndexError):
        return 0.0


def _mosquitto_version() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
    except OSError:
        return "not installed"
    found = re.search(r"version (\S+)", out)
    return found.group(1) if found else "unknown"


def _postgres_version() -> str:
    postgres = _tool("postgres")
    if postgres is None:
        return "not installed"
    out = subprocess.run([postgres, "--version"], capture_output=True, text=True, timeout=5).stdout
    found = re.search(r"\) (\d+(?:\.\d+)*)", out)  # "postgres (PostgreSQL) 15.18 (Debian …)"
    return found.group(1) if found else "unknown"


def describe() -> str:
    """One paragraph for docs/performance.md."""
    load = os.getloadavg()
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {_cpu_model()}, {os.cpu_count()} cores, "
        f"{_memory_gib():.0f} GiB, Linux {platform.release()}; load average {load[0]:.1f} at the start "
        f"(a shared machine). Python {platform.python_version()}, paho-mqtt {version('paho-mqtt')}, "
        f"Mosquitto {_mosquitto_version()}, SQLite {sqlite3.sqlite_version}, PostgreSQL {_postgres_version()}, "
        f"SQLAlchemy {version('sqlalchemy')}, SQLModel {version('sqlmodel')}, pydantic {version('pydantic')}, "
        f"psycopg {version('psycopg')}."
    )
