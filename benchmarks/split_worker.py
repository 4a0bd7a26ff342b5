"""An experiment for issue 17's ingest goal (one worker at 0.4 of PostgreSQL alone): a bridge
worker split in two processes, to measure whether a worker that is not held to one core by its
GIL reaches it on this machine. Not a design Doorstep runs.

The receiving process is paho alone: it subscribes as a worker does (its persistent session, the
shared subscriptions), PUBACKs what it receives as the worker's paho thread does, and hands each
bunch of (topic, body, time) over a pipe. The storing process decodes them on a thread (as the
worker's decode thread does), stores gulps of up to 1,000 with the worker's own store_gulp, and
publishes the acks. It leaves out what a worker does besides (metrics, dead letters, commands),
so it is a bound on what the split could give, not a worker.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks import load, raw_pg, stack
from benchmarks.common import stop_cleanly_on_sigterm
from benchmarks.report import Figure, common_arguments, publish

CLIENT_ID = "split-worker"
# A bunch goes over the pipe at this many messages, or after this long.
BUNCH_MESSAGES = 200
BUNCH_S = 0.002


def receive(host: str, port: int, pipe: Connection, subscribed: Any) -> None:
    """The receiving process: paho, handing bunches of received messages over `pipe`."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from cloud_bridge.ingest import subscriptions
    from cloud_bridge.settings import BridgeSettings

    bunch: list[tuple[str, bytes, datetime]] = []
    sent_at = time.monotonic()

    def hand_over() -> None:
        nonlocal sent_at
        pipe.send_bytes(pickle.dumps(bunch, protocol=5))
        bunch.clear()
        sent_at = time.monotonic()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        bunch.append((message.topic, bytes(message.payload), datetime.now(UTC)))
        if len(bunch) >= BUNCH_MESSAGES:
            hand_over()

    def on_connect(client: mqtt.Client, *_args: Any) -> None:
        group = BridgeSettings.model_fields["share_group"].default
        client.subscribe([(topic, 1) for topic in subscriptions(group)])
        subscribed.set()

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=CLIENT_ID,
                         protocol=mqtt.MQTTv5)
    client.on_message, client.on_connect = on_message, on_connect
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect(host, port, clean_start=False, properties=properties)
    while True:
        client.loop(timeout=BUNCH_S)
        if bunch and time.monotonic() - sent_at > BUNCH_S:
            hand_over()


@dataclass(frozen=True, slots=True)
class Split:
    seconds: float  # from the first gulp's start to the last gulp's end
    store_cores: float
    store_us: float  # the storing process's CPU a message
    receive_us: float  # the receiving process's CPU a message


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def consume_split(directory: Path, traffic: list[tuple[str, bytes]], url: str) -> Split:
    import paho.mqtt.client as mqtt

    from cloud_bridge.alert_rules import AlertRules
    from cloud_bridge.decode import Decoded, Inbound, Refused, classify_all
    from cloud_bridge.fleet import DeviceRows
    from cloud_bridge.gulp import store_gulp
    from cloud_bridge.store import migrate
    from contract.codec import encode
    from contract.sealing import Opener, private_key_from_file
    from contract.status import MAX_ACK_IDS, Ack
    from runtime.db import create_durable_engine

    opener = Opener([private_key_from_file(stack.payload_keys()[0])])
    engine = create_durable_engine(url)
    migrate(engine)
    spawn = multiprocessing.get_context("spawn")
    with stack.broker(directory) as broker:
        # Subscribed once and gone: the broker queues the backlog for the session, as for a worker away.
        _out, pipe = spawn.Pipe(duplex=False)
        subscribed = spawn.Event()
        first_time = spawn.Process(target=receive, args=(broker.host, broker.port, pipe, subscribed), daemon=True)
        first_time.start()
        subscribed.wait(30)
        time.sleep(0.3)
        first_time.kill()
        first_time.join()
        from benchmarks import raw_mqtt

        raw_mqtt.publish(traffic, broker.host, broker.port, window=100, client_id="load-publisher")
        acks = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"{CLIENT_ID}-acks",
                           protocol=mqtt.MQTTv5)
        acks.connect(broker.host, broker.port)
        acks.loop_start()
        received, pipe = spawn.Pipe(duplex=False)
        subscribed = spawn.Event()  # held here until the child has it: a semaphore freed first is gone
        receiver = spawn.Process(target=receive, args=(broker.host, broker.port, pipe, subscribed), daemon=True)
        decoded: queue.Queue[Decoded] = queue.Queue()

        def decode_all() -> None:
            while True:
                try:
                    bunch = pickle.loads(received.recv_bytes())
                except EOFError:
                    return
                item = Decoded()
                for topic, body, at in bunch:
                    for classified in classify_all(Inbound(topic, body), at, opener):
                        if not isinstance(classified, Refused):
                            item.add(classified)
                decoded.put(item)

        receiver.start()
        subscribed.wait(60)
        assert receiver.pid is not None
        receiver_started_cpu = _cpu_s(receiver.pid)  # its imports and connecting are not the messages'
        started_cpu = time.process_time()
        threading.Thread(target=decode_all, daemon=True, name="decode").start()
        devices, rules = DeviceRows(), AlertRules()
        stored, first, last = 0, 0.0, 0.0
        try:
            while stored < len(traffic):
                gulp = Decoded()
                item = decoded.get(timeout=30)
                while True:
                    gulp.valid += item.valid
                    gulp.statuses += item.statuses
                    if len(gulp.valid) + len(gulp.statuses) >= 1000:
                        break
                    try:
                        item = decoded.get(timeout=0.005)
                    except queue.Empty:
                        break
                began = time.monotonic()
                first = first or began
                outcome = store_gulp(engine, gulp, rules=rules, notify=False, received_at=datetime.now(UTC),
                                     devices=devices)
                by_kiosk: dict[Any, list[Any]] = defaultdict(list)
                for message in outcome.valid:
                    by_kiosk[message.topic.kiosk_topics].append(message.envelope.message_id)
                for kiosk, ids in by_kiosk.items():
                    for start in range(0, len(ids), MAX_ACK_IDS):
                        acks.publish(kiosk.acks, encode(Ack(message_ids=ids[start : start + MAX_ACK_IDS])), qos=1)
                stored += len(gulp.valid) + len(gulp.statuses)
                last = time.monotonic()
            store_cpu = time.process_time() - started_cpu
            receive_cpu = _cpu_s(receiver.pid) - receiver_started_cpu
        finally:
            receiver.kill()
            receiver.join()
            acks.loop_stop()
            acks.disconnect()
            engine.dispose()
    seconds = max(last - first, 1e-3)
    return Split(seconds, store_cpu / seconds, store_cpu / len(traffic) * 1e6, receive_cpu / len(traffic) * 1e6)


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    common_arguments(parser)
    args = parser.parse_args(argv)
    traffic = load.messages(args.messages)
    rate = Figure("split worker stores, postgresql, against PostgreSQL alone (psycopg COPY)", "msgs/s",
                  goal="ratio ≥ 0.4", judge=lambda _v, r: r is not None and r >= 0.4)
    cores = Figure("storing process CPU", "cores")
    store_us = Figure("storing process CPU a message", "µs")
    receive_us = Figure("receiving process CPU a message", "µs")
    with stack.workdir("split-worker") as directory, stack.databases(directory) as dbs:
        for run in range(args.repeat):
            split = consume_split(directory / f"run-{run}", traffic, dbs.new("postgresql"))
            alone = raw_pg.store(dbs.new("postgresql"), traffic).seconds
            rate.doorstep.append(args.messages / split.seconds)
            rate.raw.append(args.messages / alone)
            cores.doorstep.append(split.store_cores)
            store_us.doorstep.append(split.store_us)
            receive_us.doorstep.append(split.receive_us)
            print(f"run {run + 1}: {args.messages / split.seconds:,.0f} msgs/s stored, PostgreSQL alone "
                  f"{args.messages / alone:,.0f}; storing {split.store_us:.0f} µs a message ({split.store_cores:.2f} "
                  f"cores), receiving {split.receive_us:.0f} µs")
    notes = f"""
The same {args.messages:,} fleet-mix messages as benchmark 5, queued at a fresh Mosquitto for the worker's
persistent session, consumed by a worker split in two processes (benchmarks/split_worker.py): one receives
(paho, PUBACKs) and hands bunches of raw messages over a pipe; the other decodes them on a thread and
stores them with the worker's own `store_gulp`, publishing the acks. It leaves out metrics, dead letters
and commands, so it bounds what the split could give. Timed from its first gulp's start to its last
gulp's end. "PostgreSQL alone" as in benchmark 5.
"""
    measured = [rate, cores, store_us, receive_us]
    publish("split-worker", "Issue 17's experiment: a worker in two processes", "python -m benchmarks.split_worker",
            measured, notes, [], args.docs)
    return measured


if __name__ == "__main__":
    # As a worker sets its collector (cloud_bridge/service.py); here, not in main(), which the
    # smoke test runs inside pytest's own process.
    from runtime.heap import collect_less_often, freeze_start_up_objects

    freeze_start_up_objects()
    collect_less_often()
    main()
