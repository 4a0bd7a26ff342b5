"""The raw MQTT stack Doorstep is measured against: paho-mqtt used directly, no Doorstep code.

- `publish`: QoS 1 publishing of given (topic, body) pairs through an in-flight window of W
  messages (a new publish only when a PUBACK frees a slot: what a careful raw client does; a
  paho queue of 100,000 would be rescanned on every PUBACK), timed until the last PUBACK.
- `NullSubscriber`: subscribes and only counts what arrives.

Run as a process (`python -m benchmarks.raw_mqtt publish --outbox FILE ...`), so it pays for its
own interpreter like the agent does.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def client(client_id: str) -> mqtt.Client:
    """paho as it comes, but for TCP_NODELAY, which Doorstep's clients set too (runtime/mqtt.py):
    the raw stack must not be measured slower for a socket option. Set here, not imported from
    Doorstep, so that the raw process loads no Doorstep code (Footprint measures its memory)."""
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_socket_open = lambda _c, _u, sock: _no_delay(sock)
    return c


def _no_delay(sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect(c: mqtt.Client, host: str, port: int, *, persistent: bool = False) -> None:
    """Connect and wait for CONNACK (loop started)."""
    connected = threading.Event()
    c.on_connect = lambda *_args: connected.set()
    properties = None
    if persistent:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
    c.connect(host, port, clean_start=not persistent, properties=properties)
    c.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"no CONNACK from {host}:{port}")


def publish(messages: Sequence[tuple[str, bytes]], host: str, port: int, window: int, client_id: str = "raw-publisher") -> float:
    """Seconds from the first publish to the last PUBACK."""
    c = client(client_id)
    c.max_inflight_messages_set(window)
    slots = threading.Semaphore(window)
    done = threading.Event()
    acked = 0

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1
        slots.release()
        if acked == len(messages):
            done.set()

    c.on_publish = on_publish
    connect(c, host, port)
    started = time.perf_counter()
    for topic, body in messages:
        slots.acquire()
        c.publish(topic, body, qos=1)
    if not done.wait(3600):
        raise RuntimeError("raw publish did not finish")
    elapsed = time.perf_counter() - started
    c.disconnect()
    c.loop_stop()
    return elapsed


class NullSubscriber:
    """Counts messages on `topic`; `wait(n)` returns the seconds from `mark()` to the n-th."""

    def __init__(self, host: str, port: int, topic: str, client_id: str = "raw-subscriber", persistent: bool = False) -> None:
        self.count = 0
        self._host, self._port, self._topic, self._persistent = host, port, topic, persistent
        self._client = client(client_id)
        self._client.on_message = self._on_message
        self._lock = threading.Condition()
        self._marked = time.perf_counter()
        self._last = self._marked

    def _on_message(self, *_args: Any) -> None:
        with self._lock:
            self.count += 1
            self._last = time.perf_counter()
            self._lock.notify_all()

    def start(self) -> NullSubscriber:
        subscribed = threading.Event()
        self._client.on_subscribe = lambda *_args: subscribed.set()
        connect(self._client, self._host, self._port, persistent=self._persistent)
        self._client.subscribe(self._topic, qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK")
        return self

    def mark(self) -> None:
        with self._lock:
            self._marked = time.perf_counter()

    def wait(self, n: int, timeout: float = 3600) -> float:
        with self._lock:
            if not self._lock.wait_for(lambda: self.count >= n, timeout):
                raise RuntimeError(f"only {self.count} of {n} messages arrived")
            return self._last - self._marked

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def outbox_messages(path: Path) -> list[tuple[str, bytes]]:
    """The records of an outbox file in the order the agent sends them, read with sqlite3."""
    with sqlite3.connect(path) as db:
        return [(t, bytes(b)) for t, b in db.execute("SELECT topic, body FROM outbox ORDER BY record_class, seq")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="publish an outbox file's records with a window; print JSON")
    pub.add_argument("--outbox", type=Path, required=True)
    pub.add_argument("--host", default="127.0.0.1")
    pub.add_argument("--port", type=int, required=True)
    pub.add_argument("--window", type=int, default=20)
    idle = sub.add_parser("idle", help="connect and stay idle (the floor of a process's footprint)")
    idle.add_argument("--host", default="127.0.0.1")
    idle.add_argument("--port", type=int, required=True)
    idle.add_argument("--seconds", type=float, default=3600)
    args = parser.parse_args()
    if args.command == "idle":
        c = client("raw-idle")
        connect(c, args.host, args.port)
        time.sleep(args.seconds)
        c.disconnect()
        c.loop_stop()
        return
    messages = outbox_messages(args.outbox)
    seconds = publish(messages, args.host, args.port, args.window)
    print(json.dumps({"messages": len(messages), "seconds": seconds}))


if __name__ == "__main__":
    main()
