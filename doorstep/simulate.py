"""`doorstep simulate`: a fleet of simulated kiosks in one process, each a real MQTT 5 connection.

What it is for: load-testing a broker and bridge before a district goes live, and the fleet
benchmark (benchmarks/fleet.py). Each simulated kiosk speaks the wire contract through
contract/, as the agent does: its own client id, a persistent session, a retained
"online" status with an "offline" Last Will, envelopes with message ids and per-kiosk sequence
numbers, readings sealed for the bridge when a payload key is given, and it keeps every message
until the bridge's ack confirms it, re-sending it (byte for byte) after `ack_timeout_s`, with
at most `window` unconfirmed messages at once.

It is not the agent: no SQLite outbox (the messages a kiosk owes live in memory), no devices.
One thread drives every connection through paho's external-loop API (`loop_read`,
`loop_write`, `loop_misc` on sockets from one selector), so 2,000 kiosks cost 2,000 sockets,
not 2,000 threads.

The mix per kiosk (`Mix`): telemetry every 30 s (the heartbeat), and at random (Poisson)
blood-pressure readings, laundry machine state changes and laundry vend steps.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import selectors
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel

from contract.codec import encode
from contract.envelope import Envelope
from contract.errors import ContractError
from contract.payloads import BloodPressurePayload, DeviceIdentity, LaundryMachineEvent, LaundryVendEvent
from contract.sealing import Sealer, public_key_from
from contract.status import KioskState, Status, decode_ack
from contract.telemetry import DeviceTelemetry, KioskTelemetry, OutboxDepth
from contract.topics import QOS_RELIABLE, QOS_TELEMETRY, EventType, KioskTopics, ReadingKind
from runtime.mqtt import SESSION_EXPIRY_S, BrokerSettings, no_delay

log = logging.getLogger(__name__)

CUFF = DeviceIdentity(model="omron-hem-7361t", address="A4:C1:38:12:34:56", firmware="1.2.0")
WASHERS = 6  # a laundry room of docs/laundry.md: units 1-6 washers, 7-8 dryers
MACHINES = 8
# How often every connection's keepalive and re-send deadlines are looked at.
MISC_EVERY_S = 1.0
# Kiosks connect at most this many a second: a district's kiosks coming back after a broker
# restart do not all knock at once either (their reconnects are jittered).
CONNECTS_PER_S = 200


@dataclass(frozen=True, slots=True)
class Mix:
    """What one kiosk sends, on average: the heartbeat on a schedule, the rest at random."""

    telemetry_every_s: float = 30.0
    reading_every_s: float = 300.0  # a busy health station: 12 residents an hour
    machine_event_every_s: float = 180.0  # a machine of the room changes state
    vend_every_s: float = 600.0  # a resident starts a machine

    def per_kiosk_per_s(self) -> float:
        return sum(1 / every for every in (self.telemetry_every_s, self.reading_every_s,
                                           self.machine_event_every_s, self.vend_every_s) if every > 0)


@dataclass(slots=True)
class _Owed:
    """A message the kiosk keeps until the bridge confirms it."""

    topic: str
    body: bytes
    qos: int
    first_sent: float = 0.0
    sent_at: float = 0.0
    sends: int = 0


@dataclass
class FleetStats:
    kiosks: int = 0
    connected: int = 0
    peak_connected: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # by channel, first sends
    resent: int = 0
    confirmed: int = 0
    refused: int = 0
    # (monotonic time of the ack, seconds from the first send to the bridge's ack)
    latencies_s: list[tuple[float, float]] = field(default_factory=list)
    message_ids: set[uuid.UUID] = field(default_factory=set)  # every id minted

    @property
    def minted(self) -> int:
        return sum(self.sent.values())

    @property
    def unconfirmed(self) -> int:
        return self.minted - self.confirmed - self.refused


class SimulatedKiosk:
    def __init__(self, fleet: Fleet, site: str, kiosk: str, rng: random.Random) -> None:
        self.fleet = fleet
        self.topics = KioskTopics(site, kiosk)
        self.rng = rng
        self.seq = itertools.count(1)
        # Each kiosk its own sessions, in session boxes, as a kiosk seals for a bridge whose
        # workers all open them (contract/sealing.py).
        self.sealer = Sealer(fleet.payload_key, session_boxes=lambda: True) if fleet.payload_key else None
        self.owed: dict[uuid.UUID, _Owed] = {}
        self.waiting: deque[uuid.UUID] = deque()  # owed, not in flight: sent when the window allows
        self.in_flight: set[uuid.UUID] = set()
        self.connected = False
        self.started = time.monotonic()
        self.machine_states = ["idle"] * MACHINES
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"doorstep-sim-{site}-{kiosk}", protocol=mqtt.MQTTv5)
        broker = fleet.broker
        if broker.username is not None:
            self.client.username_pw_set(broker.username, broker.password.get_secret_value() if broker.password else None)
        self.client.will_set(self.topics.status, encode(Status(state=KioskState.OFFLINE)), qos=QOS_RELIABLE, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda _c, _u, sock: fleet.watch(self, sock)
        self.client.on_socket_close = lambda _c, _u, sock: fleet.unwatch(sock)
        self.client.on_socket_register_write = lambda _c, _u, sock: fleet.want_write(self, sock, True)
        self.client.on_socket_unregister_write = lambda _c, _u, sock: fleet.want_write(self, sock, False)

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            self.client.connect(self.fleet.broker.host, self.fleet.broker.port, keepalive=self.fleet.broker.keepalive_s,
                                clean_start=False, properties=properties)
        except OSError as error:
            log.warning("%s: cannot connect (%s); trying again", self.topics.kiosk, error)
            self.fleet.later(self.rng.uniform(1, 5), self.connect)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("%s: broker refused the connection: %s", self.topics.kiosk, reason)
            return
        self.connected = True
        stats = self.fleet.stats
        stats.connected += 1
        stats.peak_connected = max(stats.peak_connected, stats.connected)
        client.publish(self.topics.status, encode(Status(state=KioskState.ONLINE, at=datetime.now(UTC))),
                       qos=QOS_RELIABLE, retain=True)
        client.subscribe(self.topics.acks, qos=QOS_RELIABLE)
        # Whatever was in flight over the last connection is sent again (the bridge dedupes).
        self.waiting.extendleft(reversed(sorted(self.in_flight, key=lambda m: self.owed[m].first_sent)))
        self.in_flight.clear()
        self.pump()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.connected:
            self.fleet.stats.connected -= 1
        self.connected = False
        if not self.fleet.stopping:
            log.warning("%s: disconnected (%s); reconnecting", self.topics.kiosk, reason)
            self.fleet.later(self.rng.uniform(1, 5), self._reconnect)

    def _reconnect(self) -> None:
        try:
            self.client.reconnect()
        except OSError:
            self.fleet.later(self.rng.uniform(1, 5), self._reconnect)

    # -- what a kiosk sends ----------------------------------------------------------------------

    def save(self, topic: str, payload: BaseModel, *, qos: int = QOS_RELIABLE, device: DeviceIdentity | None = None,
             seal: bool = False) -> uuid.UUID:
        """Mint an envelope, as the outbox does when a record is first saved, and owe it."""
        message_id = uuid.uuid4()
        data = payload.model_dump(mode="json")
        sealer = self.sealer if seal else None
        envelope = Envelope(message_id=message_id, seq=next(self.seq), kiosk_time=datetime.now(UTC), device=device,
                            payload=None if sealer is not None else data,
                            sealed=sealer.seal(data) if sealer is not None else None)
        self.owed[message_id] = _Owed(topic, encode(envelope), qos)
        self.waiting.append(message_id)
        stats = self.fleet.stats
        stats.sent[topic.split("/")[4]] += 1
        stats.message_ids.add(message_id)
        self.pump()
        return message_id

    def pump(self) -> None:
        """Send what the window allows; re-send what the bridge has not confirmed in time."""
        if not self.connected:
            return
        now = time.monotonic()
        for message_id in [m for m in self.in_flight if now - self.owed[m].sent_at >= self.fleet.ack_timeout_s]:
            self._send(message_id, now)
            self.fleet.stats.resent += 1
        while self.waiting and len(self.in_flight) < self.fleet.window:
            message_id = self.waiting.popleft()
            if message_id in self.owed:
                self._send(message_id, now)
                self.in_flight.add(message_id)

    def _send(self, message_id: uuid.UUID, now: float) -> None:
        owed = self.owed[message_id]
        self.client.publish(owed.topic, owed.body, qos=owed.qos)
        owed.sends += 1
        owed.first_sent = owed.first_sent or now
        owed.sent_at = now

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self.topics.acks:
            return  # commands: a simulated kiosk does not act on them
        try:
            ack = decode_ack(bytes(message.payload))
        except ContractError as error:
            log.warning("%s: malformed ack: %s", self.topics.kiosk, error.reason)
            return
        now = time.monotonic()
        stats = self.fleet.stats
        for message_id, refused in [*((m, False) for m in ack.message_ids), *((r.message_id, True) for r in ack.refused)]:
            owed = self.owed.pop(message_id, None)
            if owed is None:
                continue  # confirmed twice (a re-send raced the first ack)
            self.in_flight.discard(message_id)
            if refused:
                stats.refused += 1
            else:
                stats.confirmed += 1
                stats.latencies_s.append((now, now - owed.first_sent))
        self.pump()

    # -- the mix -----------------------------------------------------------------------------

    def telemetry(self) -> None:
        health = sum(1 for o in self.owed.values() if "/readings/" in o.topic)
        self.save(self.topics.telemetry, KioskTelemetry(
            uptime_s=time.monotonic() - self.started,
            outbox={"health": OutboxDepth(records=health), "event": OutboxDepth(records=len(self.owed) - health),
                    "telemetry": OutboxDepth(records=0)},
            outbox_bytes=sum(len(o.body) for o in self.owed.values()), outbox_budget_bytes=256 * 1024 * 1024,
            health_over_budget=False, disk_free_bytes=8 * 1024**3, cpu_temperature_c=round(self.rng.uniform(45, 60), 1),
            clock_synchronised=True,
            devices=[DeviceTelemetry(address=CUFF.address, model="omron")]
            + [DeviceTelemetry(address=f"modbus-unit-{u}", model=self._map(u), link="online") for u in range(1, MACHINES + 1)],
        ), qos=QOS_TELEMETRY)

    def reading(self) -> None:
        subject = None if self.rng.random() < 0.2 else f"{self.rng.getrandbits(256):064x}"
        payload = BloodPressurePayload(
            unit="mmHg", systolic=float(self.rng.randint(100, 170)), diastolic=float(self.rng.randint(60, 100)),
            mean_arterial_pressure=None, pulse_rate=float(self.rng.randint(55, 100)), subject=subject,
        )
        self.save(self.topics.reading(ReadingKind.BLOOD_PRESSURE), payload, device=CUFF, seal=True)

    def machine_event(self) -> None:
        unit = self.rng.randint(1, MACHINES)
        state = {"idle": "running", "running": "done", "done": "idle"}.get(self.machine_states[unit - 1], "idle")
        self.machine_states[unit - 1] = state
        self.save(self.topics.event(EventType.LAUNDRY_MACHINE), LaundryMachineEvent(
            unit=unit, state=state, link="online", program=1 if state == "running" else None,  # type: ignore[arg-type]
            remaining_seconds=2400 if state == "running" else None, cycle_count=self.rng.randint(100, 5000),
        ), device=DeviceIdentity(model=self._map(unit), address=f"modbus-unit-{unit}"))

    def vend(self) -> None:
        unit = self.rng.randint(1, MACHINES)
        free = self.rng.random() < 0.3
        self.save(self.topics.event(EventType.LAUNDRY_VEND), LaundryVendEvent(
            transaction_id=uuid.uuid4(), unit=unit, program=1, outcome="started", points_charged=0 if free else 3,
            free_reason="over_80" if free else None, subject=f"{self.rng.getrandbits(256):064x}",
        ), device=DeviceIdentity(model=self._map(unit), address=f"modbus-unit-{unit}"))

    @staticmethod
    def _map(unit: int) -> str:
        return "washer-retrofit-a" if unit <= WASHERS else "dryer-retrofit-b"

    def owed_messages(self) -> list[tuple[str, bytes]]:
        """What this kiosk owes, in the order it was minted (for load generators that publish
        the simulator's messages without its connections)."""
        return [(o.topic, o.body) for o in self.owed.values()]

    def go_offline(self) -> None:
        """A clean stop: say "offline" (a clean disconnect does not fire the Last Will)."""
        if self.connected:
            self.client.publish(self.topics.status, encode(Status(state=KioskState.OFFLINE, at=datetime.now(UTC))),
                                qos=QOS_RELIABLE, retain=True)


class Fleet:
    """N simulated kiosks and the one loop that drives them all."""

    def __init__(self, broker: BrokerSettings, kiosks: int, *, mix: Mix = Mix(), site: str = "sim",
                 kiosks_per_site: int = 50, payload_public_key: str | None = None, window: int = 20,
                 ack_timeout_s: float = 15.0, seed: int | None = None) -> None:
        self.broker = broker
        self.mix = mix
        self.window = window
        self.ack_timeout_s = ack_timeout_s
        self.payload_key = public_key_from(payload_public_key) if payload_public_key else None
        self.seed = random.randrange(2**32) if seed is None else seed
        self.stats = FleetStats(kiosks=kiosks)
        self.stopping = False
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        rng = random.Random(self.seed)
        self.kiosks = [
            SimulatedKiosk(self, f"{site}-{i // kiosks_per_site + 1}", f"kiosk-{i % kiosks_per_site + 1}",
                           random.Random(rng.getrandbits(64)))
            for i in range(kiosks)
        ]

    # -- the selector ------------------------------------------------------------------------

    def watch(self, kiosk: SimulatedKiosk, sock: Any) -> None:
        no_delay(sock)
        self._selector.register(sock, selectors.EVENT_READ, kiosk)

    def unwatch(self, sock: Any) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def want_write(self, kiosk: SimulatedKiosk, sock: Any, wanted: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wanted else 0)
        try:
            self._selector.modify(sock, events, kiosk)
        except (KeyError, ValueError):
            pass

    def later(self, delay_s: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._order), action))

    def _every(self, kiosk: SimulatedKiosk, mean_s: float, action: Callable[[], None], *, fixed: bool) -> None:
        """Schedule `action` again and again: every `mean_s` exactly (fixed), or at random with
        that mean (a Poisson process); the first at a random point, so kiosks do not march in step."""
        if mean_s <= 0:
            return

        def run() -> None:
            if self.stopping:
                return
            action()
            self.later(mean_s if fixed else kiosk.rng.expovariate(1 / mean_s), run)

        self.later(kiosk.rng.uniform(0, mean_s), run)

    # -- running -------------------------------------------------------------------------------

    def run(self, duration_s: float, *, drain_timeout_s: float = 120.0,
            on_tick: Callable[[Fleet, float], None] = lambda fleet, elapsed: None) -> FleetStats:
        """Connect every kiosk, send the mix for `duration_s`, then wait (up to
        `drain_timeout_s`) until the bridge has confirmed everything; disconnect cleanly."""
        for index, kiosk in enumerate(self.kiosks):
            self.later(index / CONNECTS_PER_S, kiosk.connect)
            mix = self.mix
            self._every(kiosk, mix.telemetry_every_s, kiosk.telemetry, fixed=True)
            self._every(kiosk, mix.reading_every_s, kiosk.reading, fixed=False)
            self._every(kiosk, mix.machine_event_every_s, kiosk.machine_event, fixed=False)
            self._every(kiosk, mix.vend_every_s, kiosk.vend, fixed=False)
        started = time.monotonic()
        self._loop(lambda: time.monotonic() - started >= duration_s, started, on_tick)
        self.stopping = True  # no new messages; what is owed is still re-sent until confirmed
        drain_until = time.monotonic() + drain_timeout_s
        self._loop(lambda: self.stats.unconfirmed == 0 or time.monotonic() >= drain_until, started, on_tick)
        for kiosk in self.kiosks:
            kiosk.go_offline()
        self._loop(lambda: True, started, on_tick, once=0.5)
        for kiosk in self.kiosks:
            kiosk.client.disconnect()
        self._loop(lambda: True, started, on_tick, once=0.5)
        for kiosk in self.kiosks:
            try:
                kiosk.client.loop_write()  # flush each DISCONNECT
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._selector.close()
        return self.stats

    def _loop(self, done: Callable[[], bool], started: float, on_tick: Callable[[Fleet, float], None],
              once: float | None = None) -> None:
        last_misc = 0.0
        until = time.monotonic() + once if once is not None else None
        while True:
            now = time.monotonic()
            if until is not None and now >= until:
                return
            if until is None and done():
                return
            while self._timers and self._timers[0][0] <= now:
                _, _, action = heapq.heappop(self._timers)
                action()
            timeout = min(0.05, max(0.0, self._timers[0][0] - now)) if self._timers else 0.05
            if self._selector.get_map():
                for key, events in self._selector.select(timeout):
                    kiosk: SimulatedKiosk = key.data
                    if events & selectors.EVENT_READ:
                        kiosk.client.loop_read(10)
                    if events & selectors.EVENT_WRITE:
                        kiosk.client.loop_write()
            else:
                time.sleep(timeout)
            if now - last_misc >= MISC_EVERY_S:
                last_misc = now
                for kiosk in self.kiosks:
                    kiosk.client.loop_misc()  # keepalive pings
                    kiosk.pump()  # re-send deadlines
                on_tick(self, now - started)


def summary(stats: FleetStats, elapsed_s: float) -> str:
    latencies = sorted(latency for _, latency in stats.latencies_s)

    def pct(p: float) -> str:
        return f"{latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000:.0f} ms" if latencies else "-"

    sent = ", ".join(f"{channel} {n}" for channel, n in sorted(stats.sent.items()))
    return (f"{stats.kiosks} kiosks for {elapsed_s:.0f} s: sent {stats.minted} messages ({sent}), "
            f"{stats.resent} re-sends; confirmed by the bridge {stats.confirmed}, refused {stats.refused}, "
            f"unconfirmed {stats.unconfirmed}; send-to-ack p50 {pct(50)}, p99 {pct(99)}")
