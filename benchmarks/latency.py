"""Benchmark 4, latency: a reading from a simulated cuff to the bridge's database commit, p50
and p99, at rest and under a background load of 1,000 msg/s from other kiosks.

The real agent process reads simulated cuffs (the bleak backend of drivers/ble/simulated, the
production code path) and saves each reading; an observer on the broker notes each reading's
`kiosk_time` (minted in the outbox transaction, just before the commit that says "saved") and
the moment the bridge's ack for it arrives (the bridge acks right after its commit). Against the
raw stack: paho publishing to a paho subscriber through the same broker under the same load.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from contract.topics import KioskTopics

from benchmarks import agents, load, plots, raw_mqtt, stack
from benchmarks.backlog import SITE
from benchmarks.common import percentile, stop_cleanly_on_sigterm
from benchmarks.report import Figure, common_arguments, publish

CUFFS = 4
# How long the agent may take to start and save its first reading.
START_UP_S = 60.0
BACKGROUND_PER_S = 1000


class Observer:
    """Readings' kiosk times and their acks' arrival, by message id, from the broker."""

    def __init__(self, host: str, port: int, kiosk: str) -> None:
        topics = KioskTopics(SITE, kiosk)
        self.saved: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self._acks = topics.acks
        self.client = raw_mqtt.client(f"latency-observer-{kiosk}")
        self.client.on_message = self._on_message
        raw_mqtt.connect(self.client, host, port)
        self.client.subscribe([(topics.acks, 1), (topics.reading("+"), 1)])  # type: ignore[arg-type]

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        now = time.time()
        body = json.loads(message.payload)
        if message.topic == self._acks:
            for message_id in body.get("message_ids", []):
                self.acked.setdefault(message_id, now)
        else:
            self.saved.setdefault(body["message_id"], datetime.fromisoformat(body["kiosk_time"]).timestamp())

    def latencies(self) -> list[tuple[float, float]]:
        """(kiosk time, seconds to the ack), in order of saving."""
        return sorted((at, self.acked[m] - at) for m, at in self.saved.items() if m in self.acked)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Background:
    """Publishes `per_s` messages a second (other kiosks' readings) until stopped."""

    def __init__(self, host: str, port: int, per_s: int, messages: list[tuple[str, bytes]]) -> None:
        self.per_s, self.messages, self.sent = per_s, messages, 0
        self._client = raw_mqtt.client("background-load")
        self._client.max_inflight_messages_set(1000)
        raw_mqtt.connect(self._client, host, port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="background-load")

    def start(self) -> Background:
        self._thread.start()
        return self

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.is_set() and self.sent < len(self.messages):
            due = int((time.monotonic() - began) * self.per_s)
            while self.sent < min(due, len(self.messages)):
                topic, body = self.messages[self.sent]
                self._client.publish(topic, body, qos=1)
                self.sent += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._client.disconnect()
        self._client.loop_stop()


def doorstep_latencies(directory: Path, seconds: float, background: list[tuple[str, bytes]] | None,
                       progress: bool) -> list[tuple[float, float]]:
    kiosk = "kiosk-latency"
    with stack.broker(directory) as mqtt, stack.databases(directory) as dbs:
        key, public = stack.payload_keys()
        with stack.bridge_workers(directory / "bridge", mqtt, dbs.new("sqlite"), key=key):
            observer = Observer(mqtt.host, mqtt.port, kiosk)
            load_thread = Background(mqtt.host, mqtt.port, BACKGROUND_PER_S, background).start() if background else None
            config = agents.write_config(
                directory / "agent.yaml", kiosk, directory / "outbox.sqlite3", mqtt, payload_public_key=public,
                # Residents one after another at each cuff: a session about every second.
                devices=[{"address": f"SIM:CU:FF:00:00:0{i}", "model": "simulated", "simulated": True,
                          "reconnect_interval_s": 1.0, "idle_timeout_s": 0.3} for i in range(1, CUFFS + 1)],
            )
            agent = agents.start(config, directory / "agent.log")
            try:
                # The window opens at the first reading: the agent's start-up is not measured,
                # and a slow start on a busy machine does not leave a short run with none.
                started = time.monotonic()
                while not observer.saved and time.monotonic() - started < START_UP_S:
                    if agent.poll() is not None:
                        raise RuntimeError(f"the agent exited; see {directory / 'agent.log'}")
                    time.sleep(0.1)
                for _ in tqdm(range(int(seconds)), desc="latency" + (" under load" if background else ""), unit="s",
                              disable=not progress, leave=False):
                    time.sleep(1)
                    if agent.poll() is not None:
                        raise RuntimeError(f"the agent exited; see {directory / 'agent.log'}")
            finally:
                agents.stop(agent)
                if load_thread is not None:
                    load_thread.stop()
            # The last readings' acks: the agent has published them; the bridge may be behind.
            catch_up = time.monotonic() + 60
            while time.monotonic() < catch_up and set(observer.saved) - set(observer.acked):
                time.sleep(0.2)
            observer.stop()
            return observer.latencies()


def raw_latencies(directory: Path, count: int, background: list[tuple[str, bytes]] | None) -> list[float]:
    """paho publish -> paho subscriber, one message at a time, through the same broker."""
    with stack.broker(directory / "raw") as mqtt:
        arrived = threading.Event()
        receiver = raw_mqtt.client("raw-latency-receiver")
        receiver.on_message = lambda *_a: arrived.set()
        raw_mqtt.connect(receiver, mqtt.host, mqtt.port)
        receiver.subscribe("raw/latency", qos=1)
        sink = raw_mqtt.NullSubscriber(mqtt.host, mqtt.port, "$share/bridge/doorstep/v1/#").start() if background else None
        load_thread = Background(mqtt.host, mqtt.port, BACKGROUND_PER_S, background).start() if background else None
        sender = raw_mqtt.client("raw-latency-sender")
        raw_mqtt.connect(sender, mqtt.host, mqtt.port)
        time.sleep(0.5)
        out = []
        for _ in range(count):
            arrived.clear()
            began = time.perf_counter()
            sender.publish("raw/latency", b"x" * 700, qos=1)
            if arrived.wait(5):
                out.append(time.perf_counter() - began)
            time.sleep(0.02)
        for c in (sender, receiver):
            c.disconnect()
            c.loop_stop()
        if load_thread is not None:
            load_thread.stop()
        if sink is not None:
            sink.stop()
        return out


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the cuffs measure, per condition")
    common_arguments(parser)
    args = parser.parse_args(argv)
    # Readings of 100 other kiosks: the bridge's cheapest message, so 1,000/s stays within what
    # one worker stores (benchmarks/ingest.py) and the load is the broker's and the bridge's work.
    background = load.messages(int(BACKGROUND_PER_S * (args.seconds + 15)), kiosks=100,
                               mix=load.Mix(telemetry_every_s=0, machine_event_every_s=0, vend_every_s=0))
    conditions = {"at rest": None, f"under {BACKGROUND_PER_S:,} msg/s": background}
    figures: dict[str, tuple[Figure, Figure]] = {}
    traces = []
    for name in conditions:
        goal = "< 50 ms" if name == "at rest" else ""
        figures[name] = (Figure(f"cuff reading → bridge commit, p50, {name}", "ms", higher_is_better=False),
                         Figure(f"cuff reading → bridge commit, p99, {name}", "ms", goal=goal, higher_is_better=False,
                                judge=(lambda v, _r: v < 50) if goal else None))
    with stack.workdir("latency") as directory:
        for run in range(args.repeat):
            for name, traffic in conditions.items():
                where = directory / f"run-{run}-{name.split()[0]}"
                ours = doorstep_latencies(where, args.seconds, traffic, not args.no_progress)
                if not ours:
                    raise RuntimeError(f"no reading was acknowledged ({name}); see {where}")
                raw = raw_latencies(where, 200, traffic)
                values = [latency for _, latency in ours]
                p50, p99 = figures[name]
                p50.doorstep.append(percentile(values, 50) * 1e3)
                p99.doorstep.append(percentile(values, 99) * 1e3)
                p50.raw.append(percentile(raw, 50) * 1e3)
                p99.raw.append(percentile(raw, 99) * 1e3)
                start = ours[0][0]
                traces.append((f"{name}, run {run + 1}", [t - start for t, _ in ours], [v * 1e3 for v in values]))
                print(f"run {run + 1} {name}: {len(values)} readings, p50 {p50.doorstep[-1]:.1f} ms, "
                      f"p99 {p99.doorstep[-1]:.1f} ms; raw p50 {p50.raw[-1]:.2f} ms, p99 {p99.raw[-1]:.2f} ms")
    plot = plots.lines(args.plots / "latency.png", "A cuff's reading to the bridge's commit, over time",
                       "seconds", "ms (log)", traces, logy=True)
    notes = f"""
A real `doorstep agent` process with {CUFFS} simulated cuffs (the bleak backend of drivers/ble/simulated,
so the production session code runs), each measured about once a second, for {args.seconds:.0f} s per
condition; one `doorstep bridge` worker on SQLite; readings sealed. From the reading's `kiosk_time`
(minted in the outbox transaction, just before the commit after which the kiosk says "saved") to
the arrival of the bridge's ack at an observer on the broker (the bridge acks right after its
commit); so the figure includes the kiosk's own durable commit. Background: other kiosks' readings
published at {BACKGROUND_PER_S:,} msg/s by a raw paho client (readings only: the full mix's telemetry costs
the bridge far more, see Ingest). Raw: a 700-byte QoS 1 message from one paho client to another through
the same broker, under the same load.
"""
    publish("latency", "4. Latency: a cuff's reading to the bridge's commit", "python -m benchmarks.latency",
            [f for pair in figures.values() for f in pair], notes, [plot], args.docs)
    return [f for pair in figures.values() for f in pair]


if __name__ == "__main__":
    main()
