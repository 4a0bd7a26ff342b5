"""The database alone: kiosks' messages written to the bridge's own tables by psycopg directly.

No Doorstep code between the bytes and PostgreSQL: each body is read with `json.loads` (not
validated, sealed readings not opened), its row goes to its channel's table with COPY, and
every `batch` rows are one commit, as the bridge's batches are. The tables, their indexes and
the cluster (fsync on) are the bridge's, so this is what PostgreSQL itself costs a message on
this machine: the limit under any bridge worker, and under any number of them (scale-out).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import make_url

from cloud_bridge.store import migrate
from runtime.db import create_durable_engine

_KIOSK = ("message_id", "site", "kiosk", "seq", "kiosk_time", "kiosk_clock_trusted", "payload", "received_at")
_DEVICE = (*_KIOSK, "device_model", "device_address", "device_firmware", "subject")
# Each table's columns that a kiosk's message fills (the bridge's schema, cloud_bridge/store.py).
COLUMNS = {
    "readings": (*_DEVICE, "kind", "device_time"),
    "events": (*_DEVICE, "type"),
    "telemetry": _KIOSK,
}


def _row(table: str, site: str, kiosk: str, name: str, body: dict[str, Any], received_at: datetime) -> tuple[Any, ...]:
    payload = body.get("payload") or body.get("sealed") or {}
    row = [body["message_id"], site, kiosk, body["seq"], body["kiosk_time"], body.get("kiosk_clock_trusted", True),
           json.dumps(payload), received_at]
    if table != "telemetry":
        device = body.get("device") or {}
        row += [device.get("model"), device.get("address"), device.get("firmware"), payload.get("subject"), name]
        if table == "readings":
            row.append(body.get("device_time"))
    return tuple(row)


@dataclass(frozen=True, slots=True)
class Stored:
    seconds: float  # wall: the server's work included
    cpu_s: float  # this process's alone: what a worker could not hand to the server


def store(url: str, messages: Sequence[tuple[str, bytes]], batch: int = 1000) -> Stored:
    """Write every message, `batch` a commit, into a fresh bridge database at `url`."""
    engine = create_durable_engine(url)
    migrate(engine)  # the bridge's schema: the same tables and indexes
    engine.dispose()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        began, cpu_began = time.perf_counter(), time.process_time()
        for start in range(0, len(messages), batch):
            rows: dict[str, list[tuple[Any, ...]]] = {}
            received_at = datetime.now(UTC)
            for topic, body in messages[start : start + batch]:
                _root, _v, site, kiosk, channel, *name = topic.split("/")
                rows.setdefault(channel, []).append(_row(channel, site, kiosk, name[0] if name else "", json.loads(body),
                                                         received_at))
            with connection.cursor() as cursor:
                for table, found in rows.items():  # a channel's name is its table's
                    with cursor.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                        for row in found:
                            copy.write_row(row)
            connection.commit()
        return Stored(time.perf_counter() - began, time.process_time() - cpu_began)
