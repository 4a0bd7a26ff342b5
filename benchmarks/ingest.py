"""Benchmark 5, ingest: messages per second one bridge worker stores (validated, readings
opened, deduplicated, committed with everything they imply, acked) from Mosquitto, on SQLite and
on PostgreSQL, against a raw paho subscriber that does nothing with them.

Both consume a backlog queued at the broker for their persistent session (published while they
were away), so each is timed on consumption alone, not on how fast a publisher can go.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from cloud_bridge.settings import BridgeSettings
from cloud_bridge.store import Event, Reading, Telemetry
from runtime.db import create_durable_engine

from benchmarks import load, plots, raw_mqtt, raw_pg, stack
from benchmarks.common import stop_cleanly_on_sigterm
from benchmarks.procstat import Sampler
from benchmarks.report import Figure, common_arguments, publish

SHARED = "$share/bridge/doorstep/v1/#"
DEFAULTS = BridgeSettings.model_fields
TABLES = (Reading, Event, Telemetry)


@dataclass
class Consumed:
    seconds: float
    cpu_cores: float  # the workers' CPU time over the wall time, summed over workers
    curve: list[tuple[float, int]]
    # Messages stored within `seconds`: all but the last gulp's (see consume_doorstep).
    timed: int = 0

    def per_second(self) -> float:
        return self.timed / self.seconds


def stored(url: str) -> tuple[int, float | None, float | None]:
    """Messages stored, and the first and last received_at (epoch seconds)."""
    engine = create_durable_engine(url)
    count, first, last = 0, None, None
    with Session(engine) as session:
        for table in TABLES:
            n, lo, hi = session.exec(select(func.count(), func.min(table.received_at), func.max(table.received_at))).one()
            count += n
            if lo is not None:
                lo_s, hi_s = lo.timestamp(), hi.timestamp()
                first = lo_s if first is None else min(first, lo_s)
                last = hi_s if last is None else max(last, hi_s)
    engine.dispose()
    return count, first, last


def last_gulp(url: str) -> int:
    """The messages of the last gulp stored: those received (stored) at the newest received_at."""
    engine = create_durable_engine(url)
    with Session(engine) as session:
        newest = max(at for table in TABLES if (at := session.exec(select(func.max(table.received_at))).one()) is not None)
        found = sum(session.exec(select(func.count()).where(table.received_at == newest)).one() for table in TABLES)
    engine.dispose()
    return found


def consume_doorstep(directory: Path, messages: list[tuple[str, bytes]], url: str, workers: int = 1) -> Consumed:
    """`workers` bridge processes take a backlog queued for them while they were stopped."""
    key, _public = stack.payload_keys()
    with stack.broker(directory) as mqtt, stack.bridge_workers(directory / "bridge", mqtt, url, count=workers,
                                                              key=key) as running:
        for worker in running:  # away: their persistent sessions queue the backlog
            worker.stop()
        raw_mqtt.publish(messages, mqtt.host, mqtt.port, window=100, client_id="load-publisher")
        for worker in running:
            worker.start()
        assert all(w.process is not None for w in running)
        samplers = [Sampler(w.process.pid, every_s=0.5).start() for w in running if w.process is not None]
        curve: list[tuple[float, int]] = []
        began = time.monotonic()
        deadline = began + max(300, len(messages) / 50)
        while True:
            count, first, last = stored(url)
            curve.append((time.monotonic() - began, count))
            if count >= len(messages):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count} of {len(messages)} stored")
            time.sleep(0.25)
        cores = sum(s.stop().cpu_share for s in samplers)
    if count != len(messages):
        raise RuntimeError(f"{count} stored of {len(messages)}: duplicates or strays")
    assert first is not None and last is not None
    # Timed from the first gulp's start (received_at) to the last's: the gulps before the last
    # were stored in that span, so the last gulp's messages are not counted. Counted, they
    # overstated the rate by one gulp in the number of gulps: 4 % at gulps of 1,000, 15 % at 3,000.
    # (A backlog of one gulp has no span: all of it is counted, over a millisecond.)
    if last > first:
        return Consumed(last - first, cores, curve, timed=count - last_gulp(url))
    return Consumed(1e-3, cores, curve, timed=count)


def consume_raw(directory: Path, messages: list[tuple[str, bytes]]) -> float:
    with stack.broker(directory / "raw") as mqtt:
        away = raw_mqtt.NullSubscriber(mqtt.host, mqtt.port, SHARED, client_id="raw-ingest", persistent=True).start()
        away.stop()
        raw_mqtt.publish(messages, mqtt.host, mqtt.port, window=100, client_id="load-publisher")
        back = raw_mqtt.NullSubscriber(mqtt.host, mqtt.port, SHARED, client_id="raw-ingest", persistent=True)
        back.mark()
        back.start()
        try:
            return back.wait(len(messages))
        finally:
            back.stop()


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--databases", nargs="+", choices=stack.DATABASES, default=list(stack.DATABASES))
    common_arguments(parser)
    args = parser.parse_args(argv)
    traffic = load.messages(args.messages)
    figures = {db: Figure(f"one worker stores, {db}", "msgs/s", goal="ratio ≥ 0.8" if db == "postgresql" else "",
                          judge=(lambda _v, r: r is not None and r >= 0.8) if db == "postgresql" else None)
               for db in args.databases}
    cpu = {db: Figure(f"worker CPU while storing, {db}", "cores") for db in args.databases}
    # The same worker against PostgreSQL alone writing the same rows (benchmarks/raw_pg.py): how
    # far a worker is from the database's own limit, as the do-nothing subscriber is the broker's.
    database_alone = Figure("one worker stores, postgresql, against PostgreSQL alone (psycopg COPY)", "msgs/s",
                            goal="ratio ≥ 0.4 (issue 17)", judge=lambda _v, r: r is not None and r >= 0.4)
    curves = []
    with stack.workdir("ingest") as directory, stack.databases(directory) as dbs:
        for run in range(args.repeat):
            raw_s = consume_raw(directory / f"run-{run}", traffic)
            for db in args.databases:
                consumed = consume_doorstep(directory / f"run-{run}-{db}", traffic, dbs.new(db))
                figures[db].doorstep.append(consumed.per_second())
                figures[db].raw.append(args.messages / raw_s)
                cpu[db].doorstep.append(consumed.cpu_cores)
                if db == "postgresql":
                    database_alone.doorstep.append(consumed.per_second())
                    database_alone.raw.append(args.messages / raw_pg.store(dbs.new(db), traffic).seconds)
                curves.append((f"{db}, run {run + 1}", consumed.curve))
                print(f"run {run + 1} {db}: {consumed.per_second():,.0f} msgs/s stored "
                      f"({consumed.cpu_cores:.2f} cores); raw subscriber {args.messages / raw_s:,.0f} msgs/s")
    plot = plots.lines(args.plots / "ingest.png", f"One bridge worker taking a backlog of {args.messages:,} messages",
                       "seconds since the worker started", "messages stored",
                       [(label, [t for t, _ in c], [n for _, n in c]) for label, c in curves])
    share = statistics.fmean([1 if "/telemetry" in t else 0 for t, _ in traffic])
    notes = f"""
{args.messages:,} messages from 200 simulated kiosks in the fleet simulator's mix (doorstep/simulate.py:
{share:.0%} telemetry, the rest readings sealed for the bridge (each kiosk in session boxes of its own) and laundry events; bodies of
{statistics.fmean(len(b) for _, b in traffic):,.0f} bytes on average), queued at a fresh Mosquitto for the
subscriber's persistent session while it was away, then consumed. Doorstep: one `doorstep bridge`
process (default `gulp_max` {DEFAULTS['gulp_max'].default:,}, `gulp_wait_s` {DEFAULTS['gulp_wait_s'].default}), timed from its first gulp's start to its last's
(`received_at`) and counted without the last gulp (stored after that span), every message checked stored once;
its CPU is its own process's. Raw: a paho
subscriber on the same shared subscription that only counts, timed from its reconnect to the last
message. PostgreSQL is a throwaway cluster with fsync on. "PostgreSQL alone" is the same messages written to
a fresh bridge database (the same tables and indexes) by psycopg directly: each body read with `json.loads`,
not validated nor opened, its row COPYed to its table, 1,000 a commit (benchmarks/raw_pg.py).
"""
    measured = [*figures.values(), *([database_alone] if database_alone.raw else []), *cpu.values()]
    publish("ingest", "5. Ingest: one bridge worker", "python -m benchmarks.ingest", measured, notes, [plot], args.docs)
    return measured


if __name__ == "__main__":
    main()
