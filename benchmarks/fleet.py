"""Benchmark 6, fleet: N simulated kiosks (doorstep/simulate.py, each a real MQTT connection with
its own client id, in the realistic mix) against one real bridge worker process on PostgreSQL,
for M minutes: every message minted must be stored exactly once, and the bridge's CPU and memory
are reported (and Mosquitto's, and the simulator's own)."""

from __future__ import annotations

import argparse
import os
import time

from sqlalchemy import func
from sqlmodel import Session, col, select
from tqdm import tqdm

from cloud_bridge.store import Event, Reading, Telemetry
from runtime.db import create_durable_engine
from runtime.mqtt import BrokerSettings
from doorstep.simulate import Fleet, Mix, summary

from benchmarks import plots, stack
from benchmarks.common import percentile, stop_cleanly_on_sigterm
from benchmarks.procstat import Sampler
from benchmarks.report import Figure, common_arguments, publish

MB = 1024 * 1024
TABLES = (Reading, Event, Telemetry)


def check_exactly_once(url: str, minted: set) -> tuple[int, int, int]:  # type: ignore[type-arg]
    """(lost, duplicates, strays): minted ids not stored; rows beyond one per (kiosk, seq);
    stored ids never minted."""
    engine = create_durable_engine(url)
    stored_ids: set = set()  # type: ignore[type-arg]
    rows = distinct = 0
    with Session(engine) as session:
        for table in TABLES:
            stored_ids.update(session.exec(select(table.message_id).where(col(table.site).like("fleet-%"))))
            rows += session.exec(select(func.count()).select_from(table)).one()
            distinct += session.exec(select(func.count()).select_from(
                select(table.site, table.kiosk, table.seq).distinct().subquery())).one()
    engine.dispose()
    return len(minted - stored_ids), rows - distinct, len(stored_ids - minted)


def run_fleet(directory, kiosks: int, minutes: float, database: str, progress: bool) -> dict:  # type: ignore[no-untyped-def, type-arg]
    with stack.broker(directory) as mqtt, stack.databases(directory) as dbs:
        url = dbs.new(database)
        key, public = stack.payload_keys()
        with stack.bridge_workers(directory / "bridge", mqtt, url, key=key) as workers:
            bridge = workers[0].process
            assert bridge is not None and mqtt._process is not None  # noqa: SLF001 - its pid, to watch it
            samplers = {"bridge": Sampler(bridge.pid, every_s=2).start(),
                        "mosquitto": Sampler(mqtt._process.pid, every_s=2).start(),  # noqa: SLF001
                        "simulator": Sampler(os.getpid(), every_s=2).start()}
            fleet = Fleet(BrokerSettings(host=mqtt.host, port=mqtt.port, keepalive_s=60), kiosks, site="fleet",
                          payload_public_key=public, seed=2026)
            bar = tqdm(total=int(minutes * 60), desc=f"{kiosks} kiosks", unit="s", disable=not progress, leave=False)

            def tick(running: Fleet, elapsed: float) -> None:
                bar.n = min(int(elapsed), bar.total)
                bar.set_postfix(connected=running.stats.connected, sent=running.stats.minted,
                                owed=running.stats.unconfirmed, refresh=False)
                bar.refresh()

            began = time.monotonic()
            stats = fleet.run(minutes * 60, drain_timeout_s=180, on_tick=tick)
            elapsed = time.monotonic() - began
            bar.close()
            for sampler in samplers.values():
                sampler.stop()
            time.sleep(1)
        lost, duplicates, strays = check_exactly_once(url, stats.message_ids)
    print(summary(stats, elapsed))
    return {"stats": stats, "elapsed": elapsed, "lost": lost, "duplicates": duplicates, "strays": strays,
            "samplers": samplers}


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--database", choices=stack.DATABASES, default="postgresql")
    common_arguments(parser, repeat=1)
    args = parser.parse_args(argv)
    f = {name: Figure(name, unit, goal=goal, judge=judge, higher_is_better=False) for name, unit, goal, judge in [
        ("messages lost", "messages", "0", lambda v, _r: v == 0),
        ("messages stored twice", "messages", "0", lambda v, _r: v == 0),
        ("kiosks connected at once", "kiosks", "", None),
        ("messages sent (first sends)", "msgs/s", "", None),
        ("re-sends", "messages", "", None),
        ("send → bridge ack, p50", "ms", "", None),
        ("send → bridge ack, p99", "ms", "", None),
        ("bridge worker CPU", "% of a core", "", None),
        ("bridge worker memory, peak", "MB", "", None),
        ("Mosquitto CPU", "% of a core", "", None),
        ("Mosquitto memory, peak", "MB", "", None),
        ("simulator CPU", "% of a core", "", None),
    ]}
    runs = []
    with stack.workdir("fleet") as directory:
        for run in range(args.repeat):
            result = run_fleet(directory / f"run-{run}", args.kiosks, args.minutes, args.database, not args.no_progress)
            stats, samplers = result["stats"], result["samplers"]
            latencies = [latency for _, latency in stats.latencies_s] or [0.0]
            for name, value in [
                ("messages lost", result["lost"] + stats.unconfirmed), ("messages stored twice", result["duplicates"]),
                ("kiosks connected at once", stats.peak_connected),
                ("messages sent (first sends)", stats.minted / (args.minutes * 60)), ("re-sends", stats.resent),
                ("send → bridge ack, p50", percentile(latencies, 50) * 1e3),
                ("send → bridge ack, p99", percentile(latencies, 99) * 1e3),
                ("bridge worker CPU", samplers["bridge"].cpu_share * 100),
                ("bridge worker memory, peak", samplers["bridge"].peak_rss / MB),
                ("Mosquitto CPU", samplers["mosquitto"].cpu_share * 100),
                ("Mosquitto memory, peak", samplers["mosquitto"].peak_rss / MB),
                ("simulator CPU", samplers["simulator"].cpu_share * 100),
            ]:
                f[name].doorstep.append(float(value))
            runs.append(result)
    last = runs[-1]
    bridge = last["samplers"]["bridge"].samples
    cpu_plot = plots.lines(
        args.plots / "fleet-bridge.png", f"One bridge worker under {args.kiosks:,} kiosks ({args.database})",
        "seconds", "% of a core / MB",
        [("CPU, % of a core", [t for t, _, _ in bridge[1:]],
          [100 * (c1 - c0) / (t1 - t0) for (t0, c0, _), (t1, c1, _) in zip(bridge, bridge[1:], strict=False)]),
         ("resident memory, MB", [t for t, _, _ in bridge], [r / MB for _, _, r in bridge])])
    acks = sorted(last["stats"].latencies_s)
    first = acks[0][0] if acks else 0.0
    latency_plot = plots.lines(args.plots / "fleet-latency.png", "Send to bridge ack, every message of the last run",
                               "seconds", "ms (log)", [("send → ack", [t - first for t, _ in acks],
                                                        [v * 1e3 for _, v in acks])], logy=True)
    mix = Mix()
    notes = f"""
`doorstep simulate`'s fleet ({args.kiosks:,} kiosks, 50 to a site, each its own MQTT 5 connection, client id and
persistent session, all driven from one process and one thread) for {args.minutes:g} minutes against one
`doorstep bridge` worker process on {args.database} and one Mosquitto; readings sealed. Each kiosk sends
telemetry every {mix.telemetry_every_s:.0f} s, and at random a blood-pressure reading every {mix.reading_every_s:.0f} s, a laundry
machine change every {mix.machine_event_every_s:.0f} s and a vend step every {mix.vend_every_s:.0f} s on average
({mix.per_kiosk_per_s() * 60:.1f} messages a minute a kiosk), at most 20 unconfirmed, re-sent after 15 s without the bridge's
ack. After the minutes, what was owed was drained (up to 3 minutes). Lost: minted and not stored, or never
confirmed; stored twice: rows beyond one per (kiosk, seq). CPU is each process's own time over the
wall time; the simulator, Mosquitto, the bridge and PostgreSQL share the machine's 2 cores.
"""
    publish("fleet", "6. Fleet: simulated kiosks against one bridge", "python -m benchmarks.fleet", list(f.values()),
            notes, [cpu_plot, latency_plot], args.docs)
    return list(f.values())


if __name__ == "__main__":
    main()
