"""Scale-out: bridge workers (real `doorstep bridge` processes, tests/bridge/workers.py) sharing
one MQTT 5 shared subscription on one Mosquitto and one PostgreSQL.

1. Throughput with 1, 2 and 3 workers taking the same backlog (benchmarks/ingest.py's method),
   with the machine's CPU while they do: where the sum stops growing, and what is the limit.
2. A worker SIGKILLed while the fleet simulator's kiosks send: every message stored once,
   every kiosk told, nothing lost (the kiosks re-send what the dead worker took with it).
"""

from __future__ import annotations

import argparse
import threading
import time

from runtime.mqtt import BrokerSettings
from doorstep.simulate import Fleet, Mix, summary

from benchmarks import load, plots, raw_pg, stack
from benchmarks.common import stop_cleanly_on_sigterm
from benchmarks.fleet import check_exactly_once
from benchmarks.ingest import consume_doorstep
from benchmarks.report import Figure, common_arguments, publish


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def kill_test(directory, url: str, kiosks: int, seconds: float, kill_after_s: float) -> dict:  # type: ignore[no-untyped-def, type-arg]
    key, public = stack.payload_keys()
    with stack.broker(directory) as mqtt, stack.bridge_workers(directory / "bridge", mqtt, url, count=3,
                                                              key=key) as workers:
        # A busy district, fast: every kiosk a reading every 10 s besides its telemetry, and a
        # short ack timeout so the re-sends that make up for the dead worker come soon.
        fleet = Fleet(BrokerSettings(host=mqtt.host, port=mqtt.port), kiosks, site="fleet", payload_public_key=public,
                      seed=7, ack_timeout_s=5.0, mix=Mix(reading_every_s=10.0))
        killed = threading.Timer(kill_after_s, workers[0].kill)
        killed.start()
        began = time.monotonic()
        stats = fleet.run(seconds, drain_timeout_s=180)
        elapsed = time.monotonic() - began
        killed.cancel()
    lost, duplicates, strays = check_exactly_once(url, stats.message_ids)
    print(summary(stats, elapsed))
    return {"stats": stats, "lost": lost + stats.unconfirmed, "duplicates": duplicates, "strays": strays,
            "drained_s": elapsed - seconds}


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000, help="the backlog each set of workers takes")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kiosks", type=int, default=300, help="kiosks sending during the kill test")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long they send during the kill test")
    common_arguments(parser)
    args = parser.parse_args(argv)
    traffic = load.messages(args.messages)
    rate = {n: Figure(f"{n} worker{'s' if n > 1 else ''} store", "msgs/s") for n in args.workers}
    cores = {n: Figure(f"{n} worker{'s' if n > 1 else ''}: workers' CPU", "cores") for n in args.workers}
    busy = {n: Figure(f"{n} worker{'s' if n > 1 else ''}: machine busy", "% of 2 cores") for n in args.workers}
    lost = Figure("killed worker: messages lost", "messages", goal="0", judge=lambda v, _r: v == 0, higher_is_better=False)
    twice = Figure("killed worker: messages stored twice", "messages", goal="0", judge=lambda v, _r: v == 0,
                   higher_is_better=False)
    drained = Figure("killed worker: drain after the kiosks stopped", "s", higher_is_better=False)
    with stack.workdir("scale-out") as directory, stack.databases(directory) as dbs:
        for run in range(args.repeat):
            # The database's own limit in this run: the same backlog written by psycopg alone.
            database_alone = args.messages / raw_pg.store(dbs.new("postgresql"), traffic).seconds
            print(f"run {run + 1}, PostgreSQL alone: {database_alone:,.0f} msgs/s")
            for n in args.workers:
                b0, t0 = machine_busy()
                consumed = consume_doorstep(directory / f"run-{run}-{n}", traffic, dbs.new("postgresql"), workers=n)
                b1, t1 = machine_busy()
                rate[n].doorstep.append(consumed.per_second())
                rate[n].raw.append(database_alone)
                cores[n].doorstep.append(consumed.cpu_cores)
                busy[n].doorstep.append(100 * (b1 - b0) / (t1 - t0))
                print(f"run {run + 1}, {n} worker(s): {rate[n].doorstep[-1]:,.0f} msgs/s, workers {consumed.cpu_cores:.2f} cores")
            result = kill_test(directory / f"run-{run}-kill", dbs.new("postgresql"), args.kiosks, args.seconds,
                               args.seconds / 3)
            lost.doorstep.append(result["lost"])
            twice.doorstep.append(result["duplicates"])
            drained.doorstep.append(result["drained_s"])
    plot = plots.lines(args.plots / "scale-out.png", "Bridge workers on one PostgreSQL: throughput by worker count",
                       "workers", "msgs/s", [("stored", list(args.workers), [sum(rate[n].doorstep) / len(rate[n].doorstep)
                                                                           for n in args.workers])])
    notes = f"""
Throughput: a backlog of {args.messages:,} messages in the fleet simulator's mix (as in Ingest) queued at Mosquitto for
the workers' shared subscription while they were stopped, then taken by {', '.join(map(str, args.workers))} `doorstep bridge`
processes started together on one fresh PostgreSQL database (fsync on); timed from the first to the last stored
message. The raw stack is PostgreSQL alone, the database's own limit: the same backlog written to a fresh
bridge database (the same tables and indexes) by psycopg directly, bodies read with `json.loads`, rows COPYed
1,000 a commit (benchmarks/raw_pg.py). "Machine busy" is all CPU time of the machine (both cores, everything on it, the colleagues' work included)
over that time. Kill test: {args.kiosks} simulated kiosks (a reading every 10 s each besides the usual mix, ack timeout
5 s) send for {args.seconds:.0f} s to 3 workers; the first is SIGKILLed after {args.seconds / 3:.0f} s and not restarted; then
the kiosks stop minting and re-send until everything is confirmed. tests/bridge/test_scale_out.py proves the same
with real agents on SQLite and PostgreSQL.
"""
    figures = [*rate.values(), *cores.values(), *busy.values(), lost, twice, drained]
    publish("scale-out", "Scale-out: three workers, one PostgreSQL", "python -m benchmarks.scale_out", figures, notes,
            [plot], args.docs)
    return figures


if __name__ == "__main__":
    main()
