"""Ingest: take kiosks' messages from the broker, store them once, then confirm to the kiosk.

The order is the whole point: the ack goes out only after the database commit, so a kiosk
forgets a record only once it is stored. Everything before the commit may be lost (paho has
already PUBACKed the message to the broker when on_message returns; the broker itself may lose
it): the kiosk re-sends whatever is not confirmed, and the unique message id makes that a no-op.

A worker keeps no state outside the database, so any number of them can share its MQTT 5
shared subscriptions, one per channel a kiosk sends up but its status (`wire.UPSTREAM_CHANNELS`):
`$share/{group}/doorstep/v1/+/+/readings/+`, `…/events/+`, `…/telemetry`,
`…/command_results/+`, `…/batch` and `…/support_bundles/+`. Each message matches exactly one of them, so it goes to one worker of
the group. They name only what kiosks send up: one `$share/{group}/doorstep/v1/#` also brought
back what the bridge itself sends down, about 0.3 acks per message at 1,000-message batches,
each read and PUBACKed by paho for nothing. Each worker also subscribes on its own to the
kiosks' retained status topics, which a shared subscription never delivers on subscribing
(MQTT 5.0, 4.8.2), so a worker started after a kiosk learns whether it is online.

A worker's persistent session may still hold the `#` subscription of a bridge from before
(7 days, runtime/mqtt.py), with acks queued for it: the worker unsubscribes it when it finds
its session resumed, and drops anything downstream by topic before it is parsed.

The stages, each a function a reader can follow (cloud_bridge/__init__.py tells the whole):
receive (`_on_message`, on paho's network thread: it only queues the topic, the bytes and when
they came), decode (`_decode`, on a thread of its own: cloud_bridge/decode.py; a support bundle,
an archive a technician asked for and nothing the kiosk waits to have confirmed, skips the
pipeline and is stored on its own: cloud_bridge/support_bundles.py), then on the
worker thread store (`process`: cloud_bridge/gulp.py, one transaction for a gulp of messages)
and confirm (`_confirm`: the acks, after the commit). Valid messages (and kiosks' statuses) join the next
gulp; refused ones wait in a queue of their own and fill only what room a gulp has left, so a
flood of garbage never delays a kiosk's readings. Past REFUSED_BACKLOG
refused messages waiting, further ones are counted and logged, not kept: they are garbage, and
keeping every one would let a flood exhaust the bridge's memory.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session

from contract.clinical import BloodPressureGuideline
from contract.codec import encode
from contract.envelope import UpstreamMessage
from contract.errors import ContractError
from contract.status import MAX_ACK_IDS, Ack, KioskState, RefusedMessage, Status
from contract.topics import (
    BRIDGE_STATUS_ROOT,
    QOS_RELIABLE,
    TOPIC_ROOT,
    RETAINED_CHANNELS,
    UPSTREAM_CHANNELS,
    Channel,
    KioskTopics,
    ParsedTopic,
    bridge_status_topic,
    channel_filter,
    parse_topic,
)
from runtime.mqtt import BrokerSettings, PubAck, connect_in_background, make_client, publish_properties, release

from cloud_bridge import commands
from cloud_bridge import support_bundles
from cloud_bridge import webhook
from cloud_bridge.alert_rules import AlertRules, DisconnectWatch, Raise
from cloud_bridge.alerts import apply_signals
from cloud_bridge.broker_link import BrokerLink
from cloud_bridge.decode import Inbound, Decoded, Refused, classify_all
from cloud_bridge.fleet import DeviceRows
from cloud_bridge.gulp import GulpOutcome, store_isolating, store_gulp
from cloud_bridge.metrics import BridgeMetrics
from contract.sealing import OPENS, OPENS_PROPERTY, Opener

log = logging.getLogger(__name__)

STATUS_SUBSCRIPTION = channel_filter(Channel.STATUS)
# The kiosks' alarms (docs/protocol.md, Alarms), retained like their statuses. A broker whose
# rules predate it refuses it (SUBACK 0x87): the worker then runs without alarms, saying so,
# until `doorstep broker update-rules`, rather than not at all.
ALARMS_SUBSCRIPTION = channel_filter(Channel.ALARMS)
# What the bridge publishes itself: none of its subscriptions matches it, but a session held
# over from a bridge that subscribed to `#` brings it (see the module's docstring).
_DOWNSTREAM_ENDINGS = (f"/{Channel.ACKS}", f"/{Channel.DESIRED}")
_DOWNSTREAM_LEVEL = f"/{Channel.COMMANDS}/"
# A failed gulp is tried again this many times (a PostgreSQL deadlock, a locked SQLite file)
# before it is given up to the kiosks' re-sends.
GULP_ATTEMPTS = 3
# Refused messages waiting to become dead letters, at most; and stored per gulp, at most.
REFUSED_BACKLOG = 50_000
REFUSED_PER_GULP = 1_000
# Refused messages are logged one by one up to this many a second; past it they are counted,
# and the count is told in the next line logged (a flood must not become a flood of log lines).
REFUSALS_LOGGED_PER_S = 10


# Shared by the workers: every upstream channel but the retained ones, which each worker hears itself.
SHARED_CHANNELS: Final = UPSTREAM_CHANNELS - RETAINED_CHANNELS


def subscriptions(group: str) -> list[str]:
    """A worker's subscriptions: one shared per upstream channel (a channel added to
    UPSTREAM_CHANNELS is subscribed with it), and its own to the kiosks' statuses and alarms."""
    return [*(f"$share/{group}/{channel_filter(channel)}" for channel in sorted(SHARED_CHANNELS)),
            STATUS_SUBSCRIPTION, ALARMS_SUBSCRIPTION]


def legacy_subscription(group: str) -> str:
    """The one shared subscription of a bridge from before subscriptions(): it heard its acks."""
    return f"$share/{group}/{TOPIC_ROOT}/#"


def is_downstream(topic: str) -> bool:
    """What the bridge itself publishes: acks, commands, desired configurations, and its workers' own status."""
    if topic.startswith(BRIDGE_STATUS_ROOT + "/"):
        return True
    tail = topic[len(TOPIC_ROOT) :]
    return tail.endswith(_DOWNSTREAM_ENDINGS) or _DOWNSTREAM_LEVEL in tail


# A worker behind (BEHIND_WAITING: messages come faster than it stores them) gathers its next
# gulp for as long as the last one took to store, this many times over (at most GATHER_MAX_S):
# a gulp's fixed work (each kiosk's row and devices, the statements, the commit) is then paid
# once for what a backlog brings meanwhile, not once per little gulp (docs/performance.md,
# benchmark 5). A worker keeping up gathers for gulp_wait_s, so no reading waits on a backlog
# that is not there.
GATHER_PER_STORE: Final = 2.0
GATHER_MAX_S: Final = 1.0
# Behind: at least this many messages waited when a gulp was stored. A backlog leaves
# hundreds; a steady 1,000 msg/s that the worker keeps up with, a handful. (Behind as "more
# waited than the gulp held" caught that handful after every small gulp, and gathering on for
# them doubled the p50 from reading to commit under that load: benchmarks/latency.py.)
BEHIND_WAITING: Final = 500


def gather_seconds(*, streaming: bool, behind: bool, wait_s: float, last_store_s: float) -> float:
    """How long a gulp gathers once its first message is in: not at all after a quiet spell (the
    first message is stored at once); while messages stream in, gulp_wait_s, and while the
    worker is behind, longer after a gulp that took longer to store (GATHER_PER_STORE)."""
    if not streaming:
        return 0.0
    if not behind:
        return wait_s
    return max(wait_s, min(last_store_s * GATHER_PER_STORE, GATHER_MAX_S))


# Messages received while one was being decoded that are decoded together and handed to the
# worker as one item: a backlog's gulp gathers in tens of hand-overs, not a thousand.
DECODED_TOGETHER = 100


@dataclass(frozen=True, slots=True)
class _Received:
    """A message as paho handed it over, and when."""

    inbound: Inbound
    at: datetime


@dataclass(frozen=True, slots=True)
class _BundleArrived:
    """A kiosk's support bundle: not a record of the pipeline (no envelope, no ack), stored on
    its own by the worker thread (cloud_bridge/support_bundles.py)."""

    topic: ParsedTopic
    body: bytes
    at: datetime


def _support_bundle(received: _Received) -> _BundleArrived | None:
    if f"/{Channel.SUPPORT_BUNDLES}/" not in received.inbound.topic:
        return None
    try:
        topic = parse_topic(received.inbound.topic)
    except ContractError:
        return None  # refused as any topic outside the tree is
    if topic.channel is not Channel.SUPPORT_BUNDLES:
        return None
    return _BundleArrived(topic, received.inbound.body, received.at)


@dataclass(frozen=True, slots=True)
class _LinkAlert:
    """An alert about this worker's own connection, raised from paho's thread, stored by the worker's."""

    signal: Raise


class Ingest:
    def __init__(
        self,
        engine: Engine,
        broker: BrokerSettings,
        *,
        client_id: str,
        share_group: str,
        rules: AlertRules | None = None,
        guideline: BloodPressureGuideline | None = None,
        notify: bool = False,
        opener: Opener | None = None,
        metrics: BridgeMetrics | None = None,
        support_bundles_kept: int = support_bundles.DEFAULT_KEPT,
        gulp_max: int = 8000,
        gulp_wait_s: float = 0.005,
        on_committed: Callable[[GulpOutcome], None] = lambda outcome: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._subscriptions = subscriptions(share_group)
        self._legacy_subscription = legacy_subscription(share_group)
        self._rules = rules or AlertRules()
        self._guideline = guideline or BloodPressureGuideline()
        self._notify = notify
        self._opener = opener
        self.metrics = metrics or BridgeMetrics()
        self._support_bundles_kept = support_bundles_kept
        self._gulp_max = gulp_max
        self._gulp_wait_s = gulp_wait_s
        # When the last gulp was stored (monotonic). Gathering pays only while messages stream
        # in (a gulp of one costs ~2-3 ms of CPU, of 1,000 ~0.4 ms a message); after a quiet
        # spell the first message is stored at once: at rest, gathering was 20 ms of a
        # cuff-to-commit p50 of 38 ms (benchmarks/latency.py).
        self._stored_at = -math.inf
        self._stored_in_s = 0.0  # how long the last gulp took to store and confirm
        # Messages the decode thread handed over (written by it alone) and the worker thread took
        # (by it alone): what waits for the worker is the difference.
        self._handed = 0
        self._taken = 0
        # Whether BEHIND_WAITING messages waited when the last gulp was stored (gather_seconds).
        self._behind = False
        self._on_committed = on_committed
        self._clock = clock
        # The device rows this worker last wrote, so that a gulp leaves out those its reports
        # do not change (fleet.DeviceRows): only the worker thread stores.
        self._devices = DeviceRows()
        # Receive -> decode -> store and confirm, each on its own thread, so that a gulp is
        # decoded (its sealed payloads opened: libsodium releases the GIL) while the one before
        # is stored (the database's work releases it too).
        # SimpleQueues (C): a queue.Queue's locking, in Python, cost about 4 µs a hand-over
        # (a SimpleQueue's, 0.1), paid for every message paho receives.
        self._received: queue.SimpleQueue[_Received | None] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[Decoded | PubAck | _LinkAlert | _BundleArrived] = queue.SimpleQueue()
        self._refused: deque[Refused] = deque()
        self._refusals_unlogged = 0
        self._refusal_second = 0
        self._refusals_this_second = 0
        self._stopping = threading.Event()
        self._decoder = threading.Thread(target=self._decode_all, name="ingest-decode", daemon=True)
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self._client = make_client(client_id, broker)
        self._client_id = client_id
        self._disconnects = DisconnectWatch(client_id)
        # Set once a connection succeeds, cleared on its disconnect: a refused CONNECT (a wrong
        # password) is logged by _on_connect and is not a disconnect.
        self._was_connected = False
        self._status_topic = bridge_status_topic(client_id)
        self._client.will_set(self._status_topic, encode(Status(state=KioskState.OFFLINE)), qos=QOS_RELIABLE, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        # Connected and subscribed, since when: for this worker, the API and the jobs.
        self.link = BrokerLink(clock)
        # What this worker published and the broker has not PUBACKed yet: paho message id ->
        # the command's request id, or None for an ack. A PUBACK may beat publish() back to
        # us (paho's network thread is another thread): such a one waits in _early_pubacks.
        self._in_flight: dict[int, str | None] = {}
        self._early_pubacks: dict[int, PubAck] = {}
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self.link.state.connected

    def start(self) -> None:
        self._decoder.start()
        self._worker.start()
        connect_in_background(self._client, self._broker)

    def stop(self) -> None:
        self._stopping.set()
        if self.connected:  # a clean disconnect does not fire the Last Will
            offline = Status(state=KioskState.OFFLINE, at=datetime.now(UTC))
            info = self._client.publish(self._status_topic, encode(offline), qos=QOS_RELIABLE, retain=True)
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        release(self._client)
        self._received.put(None)
        self._decoder.join(timeout=10)
        self._worker.join(timeout=10)

    # --- paho's thread: only hand over ---------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the bridge's connection: %s", reason)
            return
        self._was_connected = True
        client.subscribe([(topic, QOS_RELIABLE) for topic in self._subscriptions])
        if flags.session_present:
            # It may hold the `#` of an older bridge (a filter it does not hold is a no-op, 0x11).
            # Only now, subscribed: in between, a message would match neither.
            client.unsubscribe(self._legacy_subscription)
        log.info("bridge connected, subscribed to %s", ", ".join(self._subscriptions))

    def _on_subscribe(self, client: mqtt.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        refused = {topic: str(r) for topic, r in zip(self._subscriptions, reasons, strict=False) if r.is_failure}
        if refused.pop(ALARMS_SUBSCRIPTION, None) is not None:
            log.error("the broker refused the subscription to the kiosks' alarms (%s): its rules predate them; "
                      "run `doorstep broker update-rules`. Running without alarms meanwhile", ALARMS_SUBSCRIPTION)
        if refused:
            log.error("the broker refused the bridge's subscriptions: %s",
                      ", ".join(f"{topic}: {reason}" for topic, reason in refused.items()))
            return
        self.link.connected()
        # Only now, subscribed, may kiosks waiting for the bridge send their backlog.
        online = Status(state=KioskState.ONLINE, at=datetime.now(UTC))
        client.publish(self._status_topic, encode(online), qos=QOS_RELIABLE, retain=True,
                       properties=publish_properties({OPENS_PROPERTY: " ".join(OPENS)}))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.link.lost()
        was_connected, self._was_connected = self._was_connected, False
        if self._stopping.is_set() or not was_connected:
            log.info("bridge disconnected from broker: %s", reason)
            return
        # Unexpected: counted, and loud when it says someone else holds this worker's session
        # (issue 16: a kiosk took the bridge's client id; now only the bridge's own account can).
        self.metrics.disconnects.labels(str(reason)).inc()
        log.warning("bridge %s disconnected from broker: %s", self._client_id, reason)
        signal = self._disconnects.disconnected(reason.value, str(reason), time.monotonic(), self._clock())
        if signal is not None:
            log.error("%s", signal.title)
            self._inbox.put(_LinkAlert(signal))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        """Receive: hand the message over, as it came, to the worker thread, which decodes it."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # noqa: SLF001 - the raw bytes are the only honest name
        self._received.put(_Received(Inbound(topic, bytes(message.payload)), self._clock()))

    def _refuse(self, refused: Refused) -> None:
        if len(self._refused) < REFUSED_BACKLOG:
            self._refused.append(refused)
        else:
            self.metrics.dead_letters_dropped.inc()
        second = int(time.monotonic())
        if second != self._refusal_second:
            self._refusal_second, self._refusals_this_second = second, 0
        if self._refusals_this_second >= REFUSALS_LOGGED_PER_S:
            self._refusals_unlogged += 1
            return
        self._refusals_this_second += 1
        more = f" (and {self._refusals_unlogged} more refused, not logged)" if self._refusals_unlogged else ""
        log.warning("refused a message on %s: %s%s", refused.topic[:200], refused.reason[:500], more)
        self._refusals_unlogged = 0

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        # Called with paho's message lock held: no lock of ours is taken here.
        self._inbox.put(PubAck.of(mid, reason))

    # --- commands down -----------------------------------------------------------------

    def publish_command(self, request_id: str, topic: str, body: bytes) -> bool:
        """Hand a command to the broker; its PUBACK marks it delivered. False if not connected
        (it stays pending and is published again by the next sweep)."""
        if not self.connected:
            return False
        with self._lock:
            info = self._client.publish(topic, body, qos=QOS_RELIABLE)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            self._in_flight[info.mid] = request_id
            early = self._early_pubacks.pop(info.mid, None)
        self.metrics.commands.inc()
        if early is not None:
            self._inbox.put(early)
        return True

    def publish_retained(self, topic: str, body: bytes) -> bool:
        """Hand a retained message (a kiosk's desired configuration) to the broker at QoS 1; its
        PUBACK is only checked for a refusal. False if not connected: the caller tries again."""
        if not self.connected:
            return False
        with self._lock:
            info = self._client.publish(topic, body, qos=QOS_RELIABLE, retain=True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            self._in_flight[info.mid] = None  # as an ack's: a refusal is logged
            early = self._early_pubacks.pop(info.mid, None)
        if early is not None:
            self._inbox.put(early)
        return True

    def _command_puback(self, ack: PubAck) -> None:
        with self._lock:
            if ack.mid not in self._in_flight:
                # Bounded: PUBACKs of what paho queued while disconnected are never claimed.
                if len(self._early_pubacks) >= 10_000:
                    self._early_pubacks.clear()
                self._early_pubacks[ack.mid] = ack
                return
            request_id = self._in_flight.pop(ack.mid)
        if request_id is None:
            if ack.failed:
                log.error("the broker refused an ack or a desired configuration: %s (an ack: the kiosk will re-send "
                          "and be confirmed again)", ack.reason)
            return
        if ack.failed:
            log.error("the broker refused command %s: %s (it stays pending)", request_id, ack.reason)
            return
        with Session(self._engine) as session:
            commands.mark_delivered(session, request_id, self._clock())
            session.commit()

    # --- the worker thread: store, then confirm ---------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                first: Decoded | PubAck | _LinkAlert | _BundleArrived | None = self._inbox.get(
                    timeout=0.2 if not self._refused else 0)
            except queue.Empty:
                first = None
            gulp = Decoded()
            pubacks: list[PubAck] = []
            link_alerts: list[_LinkAlert] = []
            bundles: list[_BundleArrived] = []
            item = first
            # While messages stream in, a gulp gathers for gulp_wait_s in all, not per message:
            # at 1,000 msg/s every message came within 5 ms of the one before, so a gulp waited
            # to be full (gulp_max), and a reading under load waited about a second for it
            # (benchmarks/latency.py). A backlog still fills a gulp at once, from the queue.
            # Behind a backlog, for longer (gather_seconds).
            streaming = time.monotonic() - self._stored_at < self._gulp_wait_s
            deadline = time.monotonic() + gather_seconds(streaming=streaming, behind=self._behind,
                                                         wait_s=self._gulp_wait_s, last_store_s=self._stored_in_s)
            try:
                while item is not None:
                    if isinstance(item, Decoded):
                        self._taken += len(item.valid) + len(item.statuses)
                        gulp.valid += item.valid
                        gulp.statuses += item.statuses
                        gulp.alarms += item.alarms
                        gulp.unopenable += item.unopenable
                    elif isinstance(item, PubAck):
                        pubacks.append(item)
                    elif isinstance(item, _BundleArrived):
                        bundles.append(item)
                    else:
                        link_alerts.append(item)
                    if len(gulp.valid) + len(gulp.statuses) >= self._gulp_max:
                        break
                    item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pass
            # Dead letters fill what room the gulp has left; alone, a gulp takes a big share.
            room = REFUSED_PER_GULP if not (gulp.valid or gulp.statuses) else max(0, self._gulp_max - len(gulp.valid))
            while room > 0 and self._refused:
                gulp.refused.append(self._refused.popleft())
                room -= 1
            try:
                if link_alerts:
                    self._raise_link_alerts([alert.signal for alert in link_alerts])
                for ack in pubacks:
                    self._command_puback(ack)
                for bundle in bundles:
                    self._store_bundle(bundle)
                if gulp.valid or gulp.statuses or gulp.alarms or gulp.refused or gulp.unopenable:
                    began = time.monotonic()
                    self.process(gulp)
                    self._stored_at = time.monotonic()
                    self._stored_in_s = self._stored_at - began
                    # What waits: received and not yet decoded (paho's thread is often ahead of
                    # the decode thread while a gulp is stored), and decoded and not yet taken.
                    self._behind = self._received.qsize() + self._handed - self._taken >= BEHIND_WAITING
            except Exception:
                # A bug must not stop ingest for every kiosk; nothing was acked, so nothing is lost.
                log.exception("a gulp of %d messages failed; kiosks will re-send", len(gulp.valid))

    # --- the decode thread ------------------------------------------------------------------

    def _decode_all(self) -> None:
        while (received := self._received.get()) is not None:
            # What else has come meanwhile is decoded with it and handed over as one item: a
            # hand-over a message woke the worker thread (and handed it the GIL) for each.
            taken = [received]
            if self._behind:
                # A backlog streams in: paho receives more before this thread takes them. Woken
                # for each one, it traded the GIL with paho's thread at every message (paho gives
                # the GIL up at each socket call), and fed the worker thread small gulps.
                time.sleep(self._gulp_wait_s)
            stop = False
            while len(taken) < DECODED_TOGETHER:
                try:
                    more = self._received.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                taken.append(more)
            item = Decoded()
            for one in taken:
                try:
                    self._decode(one, item)
                except Exception:
                    # A bug must not stop ingest: nothing was acked, so the kiosk sends it again.
                    log.exception("decoding a message on %s failed", one.inbound.topic[:200])
            if item.valid or item.statuses or item.alarms or item.unopenable:
                self._handed += len(item.valid) + len(item.statuses)
                self._inbox.put(item)
            if stop:
                return

    def _decode(self, received: _Received, item: Decoded) -> None:
        """Decode: a received message into `item`, for the next gulp (a batch's records join the
        same one), its refusals into their own queue, a support bundle straight to the worker."""
        if is_downstream(received.inbound.topic):
            return
        bundle = _support_bundle(received)
        if bundle is not None:
            self._inbox.put(bundle)
            return
        for classified in classify_all(received.inbound, received.at, self._opener):
            if isinstance(classified, Refused):
                self._refuse(classified)
            else:
                item.add(classified)

    def _store_bundle(self, arrived: _BundleArrived) -> None:
        """A support bundle, in a transaction of its own. Nothing is acked: a lost one is asked
        for again by the technician, not re-sent by the kiosk."""
        where = f"{arrived.topic.site}/{arrived.topic.kiosk}"
        try:
            with Session(self._engine) as session:
                bundle = support_bundles.store(session, arrived.topic, arrived.body, arrived.at,
                                               kept=self._support_bundles_kept)
                session.commit()
        except support_bundles.BundleRefused as refusal:
            self.metrics.messages.labels(Channel.SUPPORT_BUNDLES.value, "refused").inc()
            log.warning("refused a support bundle of %d bytes from %s as %s: %s", len(arrived.body), where,
                        arrived.topic.name, refusal)
            return
        except IntegrityError:  # another worker stored the same delivery first
            self.metrics.messages.labels(Channel.SUPPORT_BUNDLES.value, "duplicate").inc()
            return
        self.metrics.messages.labels(Channel.SUPPORT_BUNDLES.value, "stored").inc()
        log.info("stored the support bundle %s of %s (%d bytes)", bundle.request_id, where, bundle.size_bytes)

    def _raise_link_alerts(self, signals: list[Raise]) -> None:
        """Alerts about this worker's connection, in the alerts table technicians watch (and to the
        webhook), like any other: a bridge that cannot keep its session is losing kiosks' time."""
        with Session(self._engine) as session:
            changes = apply_signals(session, signals)
            if self._notify:
                webhook.enqueue(session, changes, self._clock())
            session.commit()
        for change in changes:
            self.metrics.alerts.labels(change.alert.kind).inc()
        if changes:
            self._on_committed(GulpOutcome(alert_changes=changes))

    def process(self, gulp: Decoded) -> None:
        """Store a gulp in one transaction, then confirm it to its kiosks (never before the commit)."""
        started = time.perf_counter()
        outcome: GulpOutcome | None = None
        for attempt in range(1, GULP_ATTEMPTS + 1):
            try:
                outcome = store_gulp(self._engine, gulp, rules=self._rules, guideline=self._guideline,
                                     notify=self._notify, received_at=self._clock(), devices=self._devices)
                break
            except Exception as error:
                transient = isinstance(error, SQLAlchemyError)
                if transient and attempt < GULP_ATTEMPTS:
                    log.warning("storing a gulp failed (%s); trying again", type(error).__name__)
                    time.sleep(0.05 * attempt)
                    continue
                if not isinstance(error, OperationalError):
                    # The database refuses something in the gulp itself: store the rest, and
                    # dead-letter what it refuses, rather than fail the same gulp at every re-send.
                    log.error("the database refused a gulp of %d messages (%s: %s); storing it in parts",
                              len(gulp.valid) + len(gulp.statuses), type(error).__name__, str(error).splitlines()[0][:200])
                    try:
                        outcome = store_isolating(self._engine, gulp, rules=self._rules, guideline=self._guideline,
                                                  notify=self._notify, received_at=self._clock(), devices=self._devices)
                        break
                    except Exception:  # noqa: BLE001 - logged below, like any gulp that cannot be stored
                        pass
                # Nothing is confirmed, so every kiosk will send these again.
                self.metrics.gulp_failures.inc()
                log.exception("could not store a gulp of %d messages; kiosks will re-send", len(gulp.valid))
                return
        assert outcome is not None
        self.metrics.gulp_seconds.observe(time.perf_counter() - started)
        self.metrics.gulp_size.observe(len(gulp.valid) + len(gulp.statuses) + len(gulp.refused))
        for (channel, result), count in outcome.counts().items():
            self.metrics.messages.labels(channel, result).inc(count)
        if gulp.unopenable:
            self.metrics.unopenable.inc(len(gulp.unopenable))
            log.error("%d reading(s) sealed for payload key(s) %s, which this bridge does not hold: not stored; "
                      "their kiosks send them again (add the key to payload_keys)",
                      len(gulp.unopenable), ", ".join(sorted({u.key_id for u in gulp.unopenable})))
        if outcome.refused:
            self.metrics.dead_letters.inc(outcome.refused)
            self.metrics.messages.labels("unknown", "refused").inc(outcome.refused)
        for change in outcome.alert_changes:
            if change.event == "opened":
                self.metrics.alerts.labels(change.alert.kind).inc()
                log.warning("alert %s at %s/%s: %s", change.alert.kind, change.alert.site, change.alert.kiosk, change.alert.title)
        self._confirm(outcome.valid, outcome.refusals)
        self._on_committed(outcome)

    def _confirm(self, stored: list[UpstreamMessage], refused: list[Refused]) -> None:
        """Tell each kiosk what is now stored, and what was refused (kept as a dead letter)."""
        ids: dict[KioskTopics, list[uuid.UUID]] = defaultdict(list)
        refusals: dict[KioskTopics, list[RefusedMessage]] = defaultdict(list)
        for message in stored:
            ids[message.topic.kiosk_topics].append(message.envelope.message_id)
        for refusal in refused:
            if refusal.kiosk is not None:
                refusals[refusal.kiosk] += [RefusedMessage(message_id=message_id, reason=refusal.reason[:500])
                                            for message_id in refusal.message_ids]
        for topics in ids.keys() | refusals.keys():
            confirmed = list(dict.fromkeys(ids.get(topics, [])))
            refused_here = refusals.get(topics, [])
            for start in range(0, max(len(confirmed), len(refused_here)), MAX_ACK_IDS):
                ack = Ack(message_ids=confirmed[start : start + MAX_ACK_IDS], refused=refused_here[start : start + MAX_ACK_IDS])
                with self._lock:
                    info = self._client.publish(topics.acks, encode(ack), qos=QOS_RELIABLE)
                    if info.rc == mqtt.MQTT_ERR_SUCCESS:
                        self._in_flight[info.mid] = None
                        self._early_pubacks.pop(info.mid, None)
                self.metrics.acks.inc()
