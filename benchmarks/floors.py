"""Floors: what the parts alone cost a record, against the time a goal leaves for all of it.

A ratio goal against the raw stack is a time budget: at 0.9 of raw paho's drain rate, the bridge
has 1 / (0.9 × that rate) seconds a record for everything it does; at 0.8 of a do-nothing
subscriber, the bridge's work (everything but receiving, which the subscriber does too) has
1 / (0.8 × its rate) minus the subscriber's own time a message. This measures, in one run, those
budgets (the raw stack, as Drain and Ingest measure it) and the CPU each indispensable step
costs alone, with the library that does it and no Doorstep code around it:

- reading the JSON (`json.loads`) and validating the envelope (pydantic-core);
- opening a sealed reading (libsodium's crypto_box_seal_open: an X25519 per box);
- validating the opened payload;
- writing the row into the bridge's own table, 1,000 a commit (sqlite3; psycopg COPY on
  PostgreSQL, as benchmarks/raw_pg.py: its wall time, the server's work included).

If the floors add up past the budget, no bridge built on these parts meets the goal on this
machine, however lean its own code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cloud_bridge.store import migrate
from contract.envelope import Envelope, SealedPayload, payload_model_of
from contract.payloads import BloodPressurePayload
from contract.sealing import Opener, Sealer, private_key_from_file
from contract.topics import parse_topic
from runtime.db import create_durable_engine

from benchmarks import load, raw_mqtt, raw_pg, stack
from benchmarks.backlog import backlog
from benchmarks.common import stop_cleanly_on_sigterm
from benchmarks.drain import KIOSK, drain_raw
from benchmarks.ingest import consume_raw
from benchmarks.machine import describe
from benchmarks.report import common_arguments, write_section
from benchmarks.save import RawSide
from edge_agent.store.outbox import Outbox



def cpu_us(items: Sequence[Any], step: Callable[[Any], object]) -> float:
    """CPU microseconds a item of `step` (process time: the machine's other work is not counted)."""
    began = time.process_time()
    for item in items:
        step(item)
    return (time.process_time() - began) / len(items) * 1e6


def sqlite_insert_us(directory: Path, rows: list[tuple[Any, ...]]) -> float:
    """CPU µs a row of a raw sqlite3 INSERT into the bridge's readings table (WAL, FULL), 1,000 a commit."""
    path = directory / "floor-bridge.sqlite3"
    migrate(create_durable_engine(f"sqlite:///{path}"))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    columns = raw_pg.COLUMNS["readings"]
    statement = f"INSERT INTO readings ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    began = time.process_time()
    for start in range(0, len(rows), 1000):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(statement, rows[start : start + 1000])
        db.execute("COMMIT")
    spent = time.process_time() - began
    db.close()
    return spent / len(rows) * 1e6


def save_floors(directory: Path, bodies: Sequence[bytes], payloads: Sequence[dict[str, Any]]) -> dict[str, float]:
    """A save's budget and floors, µs: the raw one-row commit, the fingerprint's row added to
    it (in turns of 100, as benchmarks/save.py takes turns), and sealing the payload."""
    schema_from = directory / "floor-outbox.sqlite3"
    Outbox(schema_from).close()
    with sqlite3.connect(schema_from) as source:
        fingerprints = source.execute("SELECT sql FROM sqlite_master WHERE name = 'device_readings_seen'").fetchone()[0]
    one, two = RawSide(directory / "floor-raw-1.sqlite3", schema_from), RawSide(directory / "floor-raw-2.sqlite3", schema_from)
    two.db.execute(fingerprints)
    alone: list[float] = []
    with_fingerprint: list[float] = []
    for first in range(0, len(bodies), 100):
        for i in range(first, min(len(bodies), first + 100)):
            alone.append(one.save(uuid.UUID(int=i).hex, "t", bodies[i]))
        for i in range(first, min(len(bodies), first + 100)):
            began = time.perf_counter()
            two.db.execute("BEGIN")
            two.db.execute("INSERT INTO outbox (message_id, topic, qos, body, state, record_class, clock_trusted, size, "
                           "created_at, saved_running_s) VALUES (?, 't', 1, ?, 'PENDING', 0, 1, ?, '', 0)",
                           (uuid.UUID(int=i).hex, bodies[i], len(bodies[i])))
            two.db.execute("INSERT INTO device_readings_seen (fingerprint, seq, seen_at, seen_running_s) VALUES (?, ?, '', 0)",
                           (hashlib.sha256(str(i).encode()).hexdigest(), i))
            two.db.execute("COMMIT")
            with_fingerprint.append(time.perf_counter() - began)
    sealer = Sealer.from_text(stack.payload_keys()[1])
    raw_us = statistics.fmean(alone) * 1e6
    return {"save raw": raw_us, "save budget": 0.25 * raw_us, "save seal": cpu_us(payloads, sealer.seal),
            "save fingerprint": max(0.0, statistics.fmean(with_fingerprint) * 1e6 - raw_us)}


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="drained readings, and ingested messages")
    common_arguments(parser, repeat=3)
    args = parser.parse_args(argv)
    key, _public = stack.payload_keys()
    opener = Opener([private_key_from_file(key)])
    found: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        found.setdefault(name, []).append(value)

    traffic = load.messages(args.records)
    with stack.workdir("floors") as directory, stack.databases(directory) as dbs:
        template = backlog(directory / "template.sqlite3", KIOSK, args.records)
        bodies = [body for _, body in raw_mqtt.outbox_messages(template)]
        for run in range(args.repeat):
            run_dir = directory / f"run-{run}"
            run_dir.mkdir()
            # The budgets: the raw stack as benchmarks 1 and 5 measure it, in this run.
            drain_rate = args.records / drain_raw(run_dir, template, 20)
            keep("drain budget", 1e6 / (0.9 * drain_rate))
            subscriber_us = consume_raw(run_dir, traffic) / len(traffic) * 1e6
            keep("ingest budget", 1e6 / (0.8 * 1e6 / subscriber_us) - subscriber_us)
            # A drained record: a sealed blood-pressure reading.
            keep("drain json", cpu_us(bodies, json.loads))
            envelopes = [Envelope.model_validate_json(body) for body in bodies]
            keep("drain envelope", cpu_us(bodies, Envelope.model_validate_json))
            sealed: list[SealedPayload] = [e.sealed for e in envelopes if e.sealed is not None]
            keep("drain open", cpu_us(sealed, opener.open))
            payloads = [json.loads(opener.open(s)) for s in sealed]  # open gives the payload's JSON
            keep("drain payload", cpu_us(payloads, BloodPressurePayload.model_validate))
            rows = [(e.message_id.hex, "bench-site", KIOSK, e.seq, e.kiosk_time.isoformat(), 1, json.dumps(p),
                     e.kiosk_time.isoformat(), "m", "a", "f", p.get("subject"), "blood_pressure", None)
                    for e, p in zip(envelopes, payloads, strict=True)]
            keep("drain store", sqlite_insert_us(run_dir, rows))
            for name, value in save_floors(run_dir, bodies[:3000], payloads[:3000]).items():
                keep(name, value)
            # An ingested message: the fleet mix (76 % telemetry; readings sealed).
            mix = [body for _, body in traffic]
            keep("ingest envelope", cpu_us(mix, Envelope.model_validate_json))
            mixed = [Envelope.model_validate_json(body) for body in mix]
            keep("ingest sealed share", sum(e.sealed is not None for e in mixed) / len(mixed))
            keep("ingest open", cpu_us(mixed, lambda e: opener.open(e.sealed) if e.sealed is not None else None))
            inside = [(payload_model_of(parse_topic(topic)), json.loads(opener.open(e.sealed)) if e.sealed is not None else e.payload)
                      for (topic, _), e in zip(traffic, mixed, strict=True)]
            keep("ingest payload", cpu_us(inside, lambda pair: pair[0].model_validate(pair[1])))
            written = raw_pg.store(dbs.new("postgresql"), traffic)
            keep("ingest store", written.cpu_s / len(traffic) * 1e6)
            keep("ingest store wall", written.seconds / len(traffic) * 1e6)
            print(f"run {run + 1}: drain budget {found['drain budget'][-1]:.0f} µs a record, "
                  f"ingest budget {found['ingest budget'][-1]:.0f} µs a message")
    write_section("floors", "Floors: the parts alone against the time a goal leaves", _section(found, args.records), args.docs)
    print(f"written to {args.docs}")
    return found


def _cell(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:,.1f}" if len(values) == 1 else f"{mean:,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def _section(found: dict[str, list[float]], records: int) -> str:
    def total(prefix: str, parts: Sequence[str]) -> list[float]:
        return [sum(values) for values in zip(*(found[f"{prefix} {p}"] for p in parts), strict=True)]

    drain_floor = total("drain", ("envelope", "open", "payload", "store"))
    save_floor = total("save", ("seal", "fingerprint"))
    ingest_floor = total("ingest", ("envelope", "open", "payload", "store"))
    rows = [
        "| step (the contract's models in pydantic-core, libsodium, the database driver: none of Doorstep's pipeline) "
        "| a drained sealed reading (µs) | an ingested message, fleet mix (µs) | a reading saved on the kiosk (µs) |",
        "| --- | ---: | ---: | ---: |",
        f"| read the JSON (`json.loads`), for scale: not counted below | {_cell(found['drain json'])} | - | - |",
        f"| validate the envelope (pydantic-core, from the bytes) | {_cell(found['drain envelope'])} | {_cell(found['ingest envelope'])} | - |",
        f"| seal the payload (libsodium crypto_box_seal) | - | - | {_cell(found['save seal'])} |",
        f"| open the sealed payload (libsodium crypto_box_seal_open) | {_cell(found['drain open'])} | {_cell(found['ingest open'])} "
        f"({statistics.fmean(found['ingest sealed share']):.0%} of them sealed) | - |",
        f"| validate the payload (pydantic, its topic's model) | {_cell(found['drain payload'])} | {_cell(found['ingest payload'])} | - |",
        f"| write the row, 1,000 a commit: this process's CPU | {_cell(found['drain store'])} (sqlite3) | {_cell(found['ingest store'])} "
        f"(psycopg COPY; {_cell(found['ingest store wall'])} wall, with the server's work) | - |",
        f"| the replay fingerprint's row in the same commit (sqlite3, wall, beyond the raw commit's {_cell(found['save raw'])}) | - | - | {_cell(found['save fingerprint'])} |",
        f"| **the floors together** | **{_cell(drain_floor)}** | **{_cell(ingest_floor)}** | **{_cell(save_floor)}** |",
        f"| **the time the goal leaves** | **{_cell(found['drain budget'])}** (1 / (0.9 × raw paho's drain rate)) "
        f"| **{_cell(found['ingest budget'])}** (1 / (0.8 × the subscriber's rate), less the subscriber's own time) "
        f"| **{_cell(found['save budget'])}** (a quarter of the raw commit: 0.8 of its throughput) |",
    ]
    notes = f"""
CPU time each (`time.process_time`) but where a row says wall, over {records:,} drained readings as benchmark 1
drains them and {records:,} fleet-mix messages as benchmark 5 ingests them, and {min(records, 3000):,} of those readings saved as benchmark 2 saves them; the budgets from the raw stack measured in the same run as those
benchmarks measure it (raw paho QoS 1 with a window of 20; a do-nothing paho subscriber; a raw sqlite3
one-row commit, WAL and synchronous=FULL, into the outbox's own table). A row's
floor leaves out everything else a worker must do and the raw stack does not: deduplication,
kiosk and device state, gaps, alerts, the ack and its PUBACK, and the MQTT receive itself in the
drain (raw paho's figure is the publisher's alone). The store floor is the cheapest write the
library offers (COPY has no ON CONFLICT, so it cannot deduplicate).
"""
    table = "\n".join(rows)
    return f"`python -m benchmarks.floors`. {describe()}\n\n{table}\n\n{notes.strip()}\n"


if __name__ == "__main__":
    main()
