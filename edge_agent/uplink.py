"""The kiosk's MQTT session: drains the outbox to the broker and applies the bridge's acks.

paho runs its network in its own thread; its callbacks only put what happened on queues, and
`pump()` (called from the agent's loop) does everything else, so the outbox has one writer here
and no lock is held across a paho call (paho calls on_publish holding its own message lock).

paho keeps messages published while disconnected in memory only, so nothing is handed to it
unless connected: the outbox, not paho's queue, is the source of truth.

A backlog goes many records to a message (docs/protocol.md, Batches): one record per message
drained it at 1,870 records/s where raw paho publishes 14,000 messages/s (benchmarks/drain.py,
window 20), every record paying a PUBACK, a broker delivery and a bridge wake-up of its own.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from broker_admin.check import check_broker
from contract.alarms import Alarms
from contract.batch import BATCH_CONTAINER_BYTES, MAX_BATCH_RECORDS, batch_entry, batched_channel, encode_batch
from contract.codec import MAX_MESSAGE_BYTES, encode
from contract.desired import DesiredConfig, decode_desired
from contract.errors import ContractError
from contract.sealing import OPENS_PROPERTY
from contract.status import Ack, KioskState, Status, decode_ack
from contract.topics import BRIDGE_STATUS_FILTER, BRIDGE_STATUS_ROOT, QOS_RELIABLE, KioskTopics
from runtime.mqtt import BrokerSettings, PubAck, connect_in_background, make_client, release, user_properties
from edge_agent.bridge_workers import BridgeWorkers
from edge_agent.store.outbox import Outbox, PendingRecord

log = logging.getLogger(__name__)

# Ack timeouts in a row, with no ack in between, after which the bridge is taken to be away.
SILENT_BEFORE_PROBING = 3
# PUBACKs are written to the outbox together, at most this often. "Published" is information
# (doctor, telemetry), not a state anything waits on, and a commit per PUBACK (an fsync each)
# held the bridge's acks back behind it: with a window of 20 a backlog drained at ~200 records/s,
# every window waiting out 20 commits (benchmarks/drain.py).
PUBLISHED_EVERY_S = 0.25
# A failed connection is diagnosed (broker_admin/check.py) the first time and
# then every this many attempts, so a kiosk offline for a day does not log a check a second.
DIAGNOSE_EVERY = 20
# Records read from the outbox at a time to be sent next (at least what the windows allow).
NEXT_PAGE = 100
# After the broker refuses a batch (an ACL written before batches lacks the batch topic: PUBACK
# 0x87), records go one by one for this long before a batch is tried again: a refused batch
# costs a round trip, and its records are sent again singly.
BATCH_REFUSED_HOLD_S = 3600.0


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    request_id: str  # the topic's last level, not yet validated
    body: bytes


@dataclass(slots=True)
class _Upload:
    """A message published outside the outbox (Uplink.upload), waiting for its PUBACK."""

    done: threading.Event
    refusal: str | None = None


@dataclass(slots=True)
class _InFlight:
    """A record sent and not yet confirmed by the bridge."""

    seq: int
    mid: int  # of the message it went in: alone, or in a batch with others
    topic: str
    sent_at: float  # monotonic: a wall-clock jump must not make records look overdue or fresh


@dataclass(frozen=True, slots=True)
class _Message:
    """A message published and not yet acknowledged by the broker: a record alone, or a batch."""

    topic: str  # the record's own topic, or the batch topic
    seqs: tuple[int, ...]
    message_ids: tuple[uuid.UUID, ...]


class Uplink:
    def __init__(
        self,
        outbox: Outbox,
        topics: KioskTopics,
        broker: BrokerSettings,
        *,
        window: int,
        ack_timeout_s: float,
        publish_window: int = 20,
        batch_records: int = 100,
        resend_max_s: float = 300.0,
        wake: Callable[[], object] = lambda: None,  # its return value is ignored
        monotonic: Callable[[], float] = time.monotonic,
        bridge_workers: BridgeWorkers | None = None,
    ) -> None:
        self._outbox = outbox
        self._bridge_workers = bridge_workers or BridgeWorkers()
        self._topics = topics
        # Two windows: records the bridge has not confirmed (its commit and ack take a round trip
        # of tens of ms, so a backlog drains `window` records per round trip), and messages the
        # broker has not PUBACKed (paho rescans its in-flight queue on every PUBACK: a large one
        # is slow). With one window of 20 for both, a backlog drained at ~530 records/s, waiting
        # out a bridge commit every 20 (benchmarks/drain.py). A message holds one record, or a
        # batch of up to `batch_records` (1: never a batch).
        self._window = window
        self._publish_window = min(publish_window, window)
        self._batch_records = max(1, min(batch_records, MAX_BATCH_RECORDS))
        self._batch_refusal_logged = False
        # Records to send next, read from the outbox a page at a time: looking them up for
        # every pump, past every record in flight, cost more than sending them. Dropped when
        # what is in flight changes other than by confirmation (expiry, refusal, re-send).
        self._next: deque[PendingRecord] = deque()
        self._ack_timeout_s = ack_timeout_s
        self._resend_max_s = max(resend_max_s, ack_timeout_s)
        # Ack timeouts in a row with no ack at all in between. From SILENT_BEFORE_PROBING on,
        # the bridge (not one message) is taken to be away: only one record is in flight, as a
        # probe, and its timeout doubles up to resend_max_s. A district of kiosks must not fill
        # the broker's queue for an absent bridge with a window of re-sends every ack_timeout_s
        # (115,000 a kiosk a day); a lost message or a dead worker among live ones, though, is
        # re-sent at the usual pace.
        self._silent_timeouts = 0
        self._wake = wake
        self._monotonic = monotonic
        self._connected = threading.Event()
        self._pubacks: queue.SimpleQueue[PubAck] = queue.SimpleQueue()
        self._acks: queue.SimpleQueue[Ack] = queue.SimpleQueue()
        self._commands: queue.SimpleQueue[ReceivedCommand] = queue.SimpleQueue()
        self._desired: queue.SimpleQueue[DesiredConfig] = queue.SimpleQueue()
        self._resend = threading.Event()
        self._bridge_back = threading.Event()
        self._in_flight: dict[uuid.UUID, _InFlight] = {}
        self._awaiting_puback: dict[int, _Message] = {}  # by paho's message id
        # Topics the broker refused (MQTT 5 PUBACK reason >= 0x80, e.g. "not authorized" by its
        # ACL) -> monotonic time until which nothing more of them is sent. Their records wait,
        # in order; the other streams go on instead of queueing behind them. The batch topic
        # held means records go one by one.
        self._held: dict[str, float] = {}
        # Records the broker PUBACKed, not yet marked published in the outbox.
        self._published: list[int] = []
        self._published_written_at = monotonic()
        self._client = make_client(f"doorstep-agent-{topics.site}-{topics.kiosk}", broker)
        self._client.max_inflight_messages_set(self._publish_window)
        self._client.will_set(topics.status, encode(Status(state=KioskState.OFFLINE)), qos=QOS_RELIABLE, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_connect_fail = self._on_connect_fail
        self._broker = broker
        self._failed_attempts = 0
        # The kiosk's alarms (docs/protocol.md, Alarms): the newest set, published retained on
        # every connect before anything else, and by `pump` when it changes. Never in the outbox.
        self._alarms: Alarms | None = None
        self._alarms_changed = threading.Event()
        # Uploads waiting for their PUBACK, by paho's message id. The lock is held while one is
        # published and registered, so its PUBACK (applied by pump, on another thread) cannot
        # be looked for in between; paho's own thread never takes it.
        self._uploads: dict[int, _Upload] = {}
        self._upload_lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def awaiting_puback(self) -> int:
        """The messages (a record each, or a batch) the broker has not acknowledged yet, as far as applied."""
        return len(self._awaiting_puback)

    def start(self) -> None:
        connect_in_background(self._client, self._broker)

    def stop(self, timeout: float = 2.0) -> None:
        """Say "offline" ourselves (a clean disconnect does not fire the Last Will), then leave."""
        if self.connected:
            info = self._client.publish(
                self._topics.status, encode(Status(state=KioskState.OFFLINE, at=datetime.now(UTC))), QOS_RELIABLE, retain=True
            )
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        release(self._client)  # an uplink replaced for a new broker is garbage now

    # -- called from paho's thread: record and wake, nothing else --------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            # A wrong password or certificate must be loud, never a silent retry loop.
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected to broker")
        self._failed_attempts = 0
        client.publish(
            self._topics.status, encode(Status(state=KioskState.ONLINE, at=datetime.now(UTC))), QOS_RELIABLE, retain=True
        )
        # Before `connected` is set, so before any record: paho sends in the order published.
        self._alarms_changed.clear()
        self._publish_alarms(client)
        # The desired configuration is retained: the broker sends the newest on every subscribe.
        client.subscribe([(self._topics.acks, QOS_RELIABLE), (self._topics.command("+"), QOS_RELIABLE),
                          (self._topics.desired, QOS_RELIABLE), (BRIDGE_STATUS_FILTER, QOS_RELIABLE)])
        self._connected.set()
        self._wake()

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        # paho says only that it failed; find out why (TLS, refused, unreachable), loudly, now
        # and then: at the first failure and every DIAGNOSE_EVERY after.
        if self._failed_attempts % DIAGNOSE_EVERY == 0:
            threading.Thread(target=self._diagnose, name="broker-check", daemon=True).start()
        self._failed_attempts += 1

    def _diagnose(self) -> None:
        check = check_broker(self._broker, f"doorstep-agent-{self._topics.site}-{self._topics.kiosk}")
        if not check.ok:
            log.error("cannot connect to the broker: %s", check.detail)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connected.clear()
        # A disconnect we asked for is news; any other is a warning.
        log.log(logging.WARNING if reason.is_failure else logging.INFO, "disconnected from broker: %s", reason)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._pubacks.put(PubAck.of(mid, reason))
        self._wake()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic.startswith(BRIDGE_STATUS_ROOT + "/"):
            worker = message.topic[len(BRIDGE_STATUS_ROOT) + 1:]
            try:
                online = Status.model_validate_json(message.payload).state is KioskState.ONLINE
            except ValueError:
                log.warning("ignored a malformed bridge status on %s", message.topic)
                return
            if online:
                opens = frozenset(user_properties(message.properties).get(OPENS_PROPERTY, "").split())
                self._bridge_workers.online(worker, opens)
                self._bridge_back.set()
                self._wake()
            else:
                self._bridge_workers.offline(worker)
            return
        if message.topic == self._topics.desired:
            try:
                self._desired.put(decode_desired(bytes(message.payload)))
            except ContractError as error:
                log.warning("ignored a malformed desired configuration: %s", error.reason)
                return
            self._wake()
            return
        if message.topic != self._topics.acks:
            # A command: the agent parses, audits and answers it (edge_agent/remote.py).
            self._commands.put(ReceivedCommand(message.topic.rsplit("/", 1)[-1], bytes(message.payload)))
            self._wake()
            return
        try:
            ack = decode_ack(bytes(message.payload))
        except ContractError as error:
            log.warning("ignored a malformed ack on %s: %s", message.topic, error.reason)
            return
        self._acks.put(ack)
        self._wake()

    def _publish_alarms(self, client: mqtt.Client) -> None:
        alarms = self._alarms
        if alarms is not None:
            # Its PUBACK is not waited for: lost, the next connect publishes the set again.
            client.publish(self._topics.alarms, encode(alarms), QOS_RELIABLE, retain=True)

    # -- called from the agent's loop ---------------------------------------------------------

    def set_alarms(self, alarms: Alarms) -> None:
        """The kiosk's alarms changed: published at the next pump, ahead of what waits. Any thread."""
        self._alarms = alarms
        self._alarms_changed.set()
        self._wake()

    def take_commands(self) -> list[ReceivedCommand]:
        taken = []
        while not self._commands.empty():
            taken.append(self._commands.get_nowait())
        return taken

    def upload(self, topic: str, body: bytes, timeout_s: float) -> str | None:
        """Publish one message outside the outbox, at QoS 1, and wait for the broker's PUBACK:
        None once the broker has it, else why not (MQTT 5 says "not authorized" for a topic its
        ACL refuses). For what is asked for and not kept (a support bundle): it is not sent
        again, the technician asks again. Blocks: call it from a thread."""
        if not self.connected:
            return "not connected to the broker"
        waiter = _Upload(threading.Event())
        with self._upload_lock:
            info = self._client.publish(topic, body, qos=QOS_RELIABLE)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return f"not sent: {mqtt.error_string(info.rc)}"
            self._uploads[info.mid] = waiter
        if not waiter.done.wait(timeout_s):
            with self._upload_lock:
                self._uploads.pop(info.mid, None)
            return f"the broker did not acknowledge it within {timeout_s:.0f} s"
        return waiter.refusal

    def take_desired(self) -> DesiredConfig | None:
        """The newest desired configuration received since the last call, if any."""
        newest = None
        while not self._desired.empty():
            newest = self._desired.get_nowait()
        return newest

    def request_resend(self) -> None:
        """At the next pump, forget what is in flight, so every unconfirmed record is sent again
        at once (same ids: the bridge dedupes). Safe from any thread."""
        self._resend.set()
        self._wake()

    def pump(self) -> int:
        """Apply acks, expire overdue sends, publish what the window allows; returns how many were sent."""
        self._apply_pubacks()
        self._apply_acks()
        self._write_published()
        if self._bridge_back.is_set():
            self._bridge_back.clear()
            if self.probing:  # a worker is subscribed again: what waits for a probe goes now
                log.info("a bridge worker is back: sending what is unconfirmed again, with the whole window")
                self._resend.set()
        if self._resend.is_set():
            self._resend.clear()
            self._in_flight.clear()
            self._awaiting_puback.clear()
            self._next.clear()
            self._silent_timeouts = 0  # asked for: the whole window, now
        self._expire_overdue()
        if not self.connected:
            return 0
        if self._alarms_changed.is_set():
            self._alarms_changed.clear()
            self._publish_alarms(self._client)
        room = self._window_now - len(self._in_flight)  # records
        messages = self._publish_window - len(self._awaiting_puback)
        if room <= 0 or messages <= 0:
            return 0
        now = self._monotonic()
        held = {topic: until for topic, until in self._held.items() if until > now}
        if held.keys() != self._held.keys():
            self._next.clear()  # a topic held or let go: what is next changes
        self._held = held
        # Read again while fewer are next than one message could take: a record left over from
        # the last page must not go alone while the rest of the backlog waits in the outbox.
        if len(self._next) < min(room, self._batch_records):
            page = max(room, NEXT_PAGE) if not self.probing else room
            self._next.clear()
            self._next.extend(self._outbox.due(page, exclude=[f.seq for f in self._in_flight.values()],
                                               exclude_topics=list(self._held)))
        sent = 0
        while self._next and room > 0 and messages > 0:
            records, entries = self._compose(room)
            if entries:
                topic, body, qos = self._topics.batch, encode_batch(entries), QOS_RELIABLE
            else:
                topic, body, qos = records[0].topic, records[0].body, records[0].qos
            info = self._client.publish(topic, body, qos=qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.info("publish of seq %d deferred: %s", records[0].seq, mqtt.error_string(info.rc))
                break
            sent_at = self._monotonic()
            for record in records:
                self._next.popleft()
                self._in_flight[record.message_id] = _InFlight(record.seq, info.mid, record.topic, sent_at)
            self._awaiting_puback[info.mid] = _Message(topic, tuple(r.seq for r in records),
                                                       tuple(r.message_id for r in records))
            sent += len(records)
            room -= len(records)
            messages -= 1
        return sent

    def _compose(self, room: int) -> tuple[list[PendingRecord], list[bytes]]:
        """The records of the next message, from the head of what is next, and their batch
        entries: as many as may share a batch, in order (up to batch_records, the room in the
        window and MAX_MESSAGE_BYTES), or the first alone with no entries. A record alone goes on
        its own topic: a reading at rest is one message, as it was before batches."""
        first = self._next[0]
        limit = min(room, self._batch_records)
        if limit < 2 or self._topics.batch in self._held:
            return [first], []
        records: list[PendingRecord] = []
        entries: list[bytes] = []
        size = BATCH_CONTAINER_BYTES
        for record in itertools.islice(self._next, limit):
            channel = batched_channel(self._topics, record.topic) if record.qos == QOS_RELIABLE else None
            if channel is None:
                break  # telemetry (QoS 0) goes alone, and so the order of what is next is kept
            entry = batch_entry(channel, record.body)
            size += len(entry) + (1 if entries else 0)  # and a comma
            if size > MAX_MESSAGE_BYTES:
                break
            records.append(record)
            entries.append(entry)
        return (records, entries) if len(records) >= 2 else ([first], [])

    def _apply_pubacks(self) -> None:
        accepted: list[int] = []
        while not self._pubacks.empty():
            puback = self._pubacks.get_nowait()
            message = self._awaiting_puback.pop(puback.mid, None)
            if message is None:
                self._upload_acked(puback)  # or the online status, or a send we already gave up on
                continue
            if not puback.failed:
                accepted += message.seqs
                continue
            # MQTT 5 tells us when the broker refuses (e.g. "not authorized" by its ACL): the
            # records stay in the outbox, their topic is held and then tried again, and their
            # window slots go to the other streams meanwhile.
            for message_id in message.message_ids:
                self._in_flight.pop(message_id, None)
            self._next.clear()  # what is next changes (a refused batch's records go again first, in order)
            if message.topic == self._topics.batch:
                # An ACL from before batches. Its records go again at once, one by one. Said once
                # (the batches in flight with it are refused too, and so is one an hour later).
                self._held[message.topic] = self._monotonic() + BATCH_REFUSED_HOLD_S
                log.log(logging.DEBUG if self._batch_refusal_logged else logging.WARNING,
                        "broker refused a batch of %d records on %s: %s (sending records one by one, a batch "
                        "again in %.0f s; `doorstep broker` rewrites the ACL with the batch topic)",
                        len(message.seqs), message.topic, puback.reason, BATCH_REFUSED_HOLD_S)
                self._batch_refusal_logged = True
            else:
                self._held[message.topic] = self._monotonic() + self._ack_timeout_s
                log.error("broker refused record seq %d on %s: %s (held, tried again in %.0f s)",
                          message.seqs[0], message.topic, puback.reason, self._ack_timeout_s)
        self._published += accepted

    def _upload_acked(self, puback: PubAck) -> None:
        with self._upload_lock:
            waiter = self._uploads.pop(puback.mid, None)
        if waiter is not None:
            waiter.refusal = f"the broker refused it: {puback.reason}" if puback.failed else None
            waiter.done.set()

    def _write_published(self) -> None:
        now = self._monotonic()
        if self._published and now - self._published_written_at >= PUBLISHED_EVERY_S:
            self._outbox.mark_published(self._published)  # a delivered record stays delivered
            self._published = []
            self._published_written_at = now

    def _apply_acks(self) -> None:
        confirmed: list[uuid.UUID] = []
        refused: dict[uuid.UUID, str] = {}
        while not self._acks.empty():
            ack = self._acks.get_nowait()
            confirmed.extend(ack.message_ids)
            refused.update((r.message_id, r.reason) for r in ack.refused)
        if not confirmed and not refused:
            return
        if self.probing:
            log.info("the bridge answers again: sending with the whole window")
        self._silent_timeouts = 0
        for message_id in [*confirmed, *refused]:
            done = self._in_flight.pop(message_id, None)
            if done is not None:
                # The bridge has it, so the broker took its message (a batch too): no PUBACK to wait for.
                self._awaiting_puback.pop(done.mid, None)
        if confirmed:
            delivered = self._outbox.mark_delivered(confirmed)
            log.debug("bridge confirmed %d records (%d newly)", len(confirmed), delivered)
        if refused:
            # A bug in this kiosk (or a newer contract at the bridge): sending again cannot help.
            newly = self._outbox.mark_refused(refused)
            if newly:
                reason = next(iter(refused.values()))
                log.error("the bridge REFUSED %d record(s) as breaking the contract (kept here, not sent again; "
                          "see doorstep doctor): %s", newly, reason)

    @property
    def _window_now(self) -> int:
        """Records that may await the bridge's ack now. After a timeout with no ack at all, no
        more than `publish_window` records: a district's kiosks must not each queue `window`
        records at the broker for a bridge that is away, which the bridge would then wade
        through as duplicates when it is back."""
        if self.probing:
            return 1
        return self._publish_window if self._silent_timeouts else self._window

    @property
    def probing(self) -> bool:
        """Whether the bridge seems away: one record at a time, each waiting longer."""
        return self._silent_timeouts >= SILENT_BEFORE_PROBING

    @property
    def resend_after_s(self) -> float:
        """How long a record in flight waits for its ack before it is sent again."""
        doublings = max(0, self._silent_timeouts - SILENT_BEFORE_PROBING + 1)
        return min(self._resend_max_s, self._ack_timeout_s * 2 ** min(doublings, 32))

    def _expire_overdue(self) -> None:
        timeout = self.resend_after_s
        deadline = self._monotonic() - timeout
        overdue = []
        for message_id, in_flight in self._in_flight.items():  # in the order sent: oldest first
            if in_flight.sent_at > deadline:
                break
            overdue.append(message_id)
        for message_id in overdue:  # a batch's records were sent together, and expire together
            expired = self._in_flight.pop(message_id)
            self._awaiting_puback.pop(expired.mid, None)
            log.info("no confirmation for seq %d within %.0f s: will send again", expired.seq, timeout)
        if overdue:
            self._next.clear()  # the overdue go again first, in order
            self._silent_timeouts += 1
            if self._silent_timeouts == SILENT_BEFORE_PROBING:
                log.warning("no confirmation from the bridge within %.0f s: probing with one record at a time, "
                            "waiting up to %.0f s, until it answers", timeout, self._resend_max_s)
