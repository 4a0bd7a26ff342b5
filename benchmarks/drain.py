"""Benchmark 1, drain: a kiosk's backlog of N readings (the real outbox file, the real agent
process) through a real Mosquitto to a real bridge worker process, in records per second until
the bridge has confirmed every one; against raw paho-mqtt publishing the same bodies at QoS 1
with the same in-flight window to the same broker (with a subscriber doing nothing, where the
bridge would be), until the last PUBACK.

The raw stack stops at the broker's PUBACK; Doorstep goes on to the bridge's commit and its
ack, because a PUBACK is not storage (docs/protocol.md). That round trip is the price of the
promise, and this benchmark says how big it is. Raw paho publishes each body as a message of
its own (the issue's definition of raw); Doorstep sends a backlog in batches, as it does in
production (docs/protocol.md, Batches).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select
from tqdm import tqdm

from cloud_bridge.store import Reading
from contract.batch import BATCH_CONTAINER_BYTES, batch_entry
from contract.codec import MAX_MESSAGE_BYTES
from runtime.db import create_durable_engine
from edge_agent.settings import AgentSettings

from benchmarks import agents, plots, raw_mqtt, stack
from benchmarks.backlog import backlog
from benchmarks.common import stop_cleanly_on_sigterm
from benchmarks.report import Figure, common_arguments, publish

KIOSK = "kiosk-drain"
POLL_S = 0.1
# Counting the records by state takes 16 ms on a backlog of 100,000 (a scan of the state index),
# which every 0.1 s took a sixth of a core from the agent and the bridge on a 2-core machine, and
# the raw stack pays nothing like it. Whether any record is left unsent is one index probe, so
# that is what is polled; the curve is counted once a second.
COUNT_EVERY_S = 1.0


DEFAULT_INFLIGHT_WINDOW: int = AgentSettings.model_fields["inflight_window"].default
DEFAULT_BATCH_RECORDS: int = AgentSettings.model_fields["batch_records"].default


def unconfirmed_window(publish_window: int) -> int:
    """The agent's inflight_window for a row: its default, or twice a larger PUBACK window."""
    return max(DEFAULT_INFLIGHT_WINDOW, 2 * publish_window)


def drain_doorstep(directory: Path, template: Path, records: int, window: int, database: str,
                   progress: bool) -> tuple[float, list[tuple[float, int]]]:
    """Seconds from the bridge's first message to the last record confirmed; the curve."""
    with stack.broker(directory) as mqtt, stack.databases(directory) as dbs:
        url = dbs.new(database)
        key, public = stack.payload_keys()
        with stack.bridge_workers(directory / "bridge", mqtt, url, key=key):
            outbox = directory / "outbox.sqlite3"
            outbox.write_bytes(template.read_bytes())
            config = agents.write_config(directory / "agent.yaml", KIOSK, outbox, mqtt, publish_window=window,
                                         inflight_window=unconfirmed_window(window), payload_public_key=public)
            engine = create_durable_engine(url)
            agent = agents.start(config, directory / "agent.log")
            curve: list[tuple[float, int]] = []
            bar = tqdm(total=records, desc=f"drain (window {window})", unit="rec", disable=not progress, leave=False)
            try:
                deadline = time.monotonic() + max(600, records / 20)
                counted_at = 0.0
                while agents.outbox_has_unsent(outbox):
                    if agent.poll() is not None:
                        raise RuntimeError(f"the agent exited with {agent.returncode}; see {directory / 'agent.log'}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"drain stalled at {bar.n} of {records}")
                    if time.monotonic() - counted_at >= COUNT_EVERY_S:
                        counted_at = time.monotonic()
                        delivered = agents.outbox_states(outbox).get("delivered", 0)
                        curve.append((time.time(), delivered))
                        bar.update(delivered - bar.n)
                    time.sleep(POLL_S)
                finished = time.time()
                delivered = agents.outbox_states(outbox).get("delivered", 0)
                if delivered != records:
                    raise RuntimeError(f"{delivered} of {records} delivered, the rest refused or given up")
                curve.append((finished, delivered))
            finally:
                bar.close()
                agents.stop(agent)
            with Session(engine) as session:
                first = session.exec(select(func.min(Reading.received_at))).one()
                stored = session.exec(select(func.count()).select_from(Reading)).one()
            engine.dispose()
    if stored != records:
        raise RuntimeError(f"the bridge holds {stored} readings, not {records}")
    assert first is not None
    started = first.replace(tzinfo=UTC).timestamp() if first.tzinfo is None else first.timestamp()
    return finished - started, [(t - started, n) for t, n in curve if t >= started]


def drain_raw(directory: Path, template: Path, window: int) -> float:
    import json
    import subprocess
    import sys

    with stack.broker(directory / "raw") as mqtt:
        subscriber = raw_mqtt.NullSubscriber(mqtt.host, mqtt.port, "$share/bridge/doorstep/v1/#").start()
        try:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.raw_mqtt", "publish", "--outbox", str(template),
                 "--port", str(mqtt.port), "--window", str(window)],
                capture_output=True, text=True, check=True, timeout=3600,
            ).stdout
        finally:
            subscriber.stop()
    return float(json.loads(out)["seconds"])


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--windows", type=int, nargs="+", default=[20, 1000],
                        help="in-flight (PUBACK) windows to measure: the agent's publish_window and raw paho's (20: the default)")
    parser.add_argument("--database", choices=stack.DATABASES, default="sqlite")
    common_arguments(parser)
    args = parser.parse_args(argv)
    rates = {w: Figure(f"drain rate, window {w}", "records/s", goal="ratio ≥ 0.9", judge=lambda _v, r: r is not None and r >= 0.9)
             for w in args.windows}
    curves = []
    with stack.workdir("drain") as directory:
        bar = tqdm(total=args.records, desc="building the backlog", unit="rec", disable=args.no_progress, leave=False)
        template = backlog(directory / "template.sqlite3", KIOSK, args.records, bar.update)
        bar.close()
        body = body_bytes(template)
        per_batch = records_per_batch(template)
        for run in range(args.repeat):
            for window in args.windows:
                run_dir = directory / f"run-{run}-{window}"
                run_dir.mkdir()
                raw_s = drain_raw(run_dir, template, window)
                doorstep_s, curve = drain_doorstep(run_dir, template, args.records, window, args.database,
                                                   not args.no_progress)
                rates[window].raw.append(args.records / raw_s)
                rates[window].doorstep.append(args.records / doorstep_s)
                curves.append((f"window {window}, run {run + 1}", curve))
                print(f"run {run + 1}, window {window}: Doorstep {args.records / doorstep_s:,.0f} records/s, "
                      f"raw paho {args.records / raw_s:,.0f}/s")
    plot = plots.lines(
        args.plots / "drain.png", f"Drain of a {args.records:,}-reading backlog (bridge on {args.database})",
        "seconds since the bridge's first message", "records confirmed by the bridge",
        [(label, [t for t, _ in c], [n for _, n in c]) for label, c in curves],
    )
    notes = f"""
{args.records:,} blood-pressure readings (with a resident pseudonym, sealed for the bridge in session boxes: {body} bytes a body) in the
outbox of a real `doorstep agent` process with `publish_window` (messages awaiting the broker's PUBACK) as the row says (20 is
the default) and `inflight_window` (records awaiting the bridge's ack) at its default of {DEFAULT_INFLIGHT_WINDOW:,}, or twice a larger
`publish_window`. The agent sends the backlog in batches (`batch_records` {DEFAULT_BATCH_RECORDS}, its default, within the 64 KiB
body limit: {per_batch} of these records a message); one `doorstep bridge` worker process on {args.database}, which unpacks,
validates, opens (sealed) and dedupes each record; one Mosquitto. Timed from the bridge's first stored message to the moment the
outbox holds no record unsent (the bridge's ack applied; then checked: every record delivered). Raw: paho-mqtt publishing the same
bodies at QoS 1, each a message of its own, with `max_inflight_messages_set` to the same window and a new publish only per
PUBACK, to a fresh Mosquitto with a subscriber that does nothing on the bridge's shared subscription; timed to the
last PUBACK. Every reading was checked stored exactly once.
"""
    publish("drain", "1. Drain: a backlog to the bridge", "python -m benchmarks.drain", list(rates.values()), notes, [plot],
            args.docs)
    return list(rates.values())


def records_per_batch(outbox: Path) -> int:
    """How many of the backlog's first records one batch message holds, as the agent packs them
    (edge_agent/uplink.py): up to batch_records, within MAX_MESSAGE_BYTES."""
    size, count = BATCH_CONTAINER_BYTES, 0
    for topic, body in raw_mqtt.outbox_messages(outbox)[:DEFAULT_BATCH_RECORDS]:
        size += len(batch_entry(topic.split("/", 4)[4], body)) + (1 if count else 0)
        if size > MAX_MESSAGE_BYTES:
            break
        count += 1
    return count


def body_bytes(outbox: Path) -> int:
    messages = raw_mqtt.outbox_messages(outbox)
    return round(sum(len(body) for _, body in messages) / len(messages))


if __name__ == "__main__":
    main()
