"""Ingest: take kiosks' messages from the broker, validate, store once, then confirm to the kiosk.

The order is the whole point: the ack goes out only after the database commit, so a kiosk
forgets a record only once it is stored. Everything before the commit may be lost (paho has
already PUBACKed the message to the broker when on_message returns; the broker itself may lose
it): the kiosk re-sends whatever is not confirmed, and the unique message id makes that a no-op.

A worker keeps no state outside the database, so any number of them can share the MQTT 5
shared subscription.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from doorstep.mqtt import BrokerSettings, connect_in_background, make_client
from doorstep.wire import (
    MAX_ACK_IDS,
    QOS_RELIABLE,
    TOPIC_ROOT,
    Ack,
    Channel,
    ContractError,
    KioskTopics,
    UpstreamMessage,
    encode,
    validate_upstream,
)

from cloud_bridge.store import DEAD_LETTER_RAW_LIMIT, DeadLetter, store_batch

log = logging.getLogger(__name__)

SUBSCRIPTIONS = (
    f"{TOPIC_ROOT}/+/+/{Channel.READINGS}/+",
    f"{TOPIC_ROOT}/+/+/{Channel.EVENTS}/+",
    f"{TOPIC_ROOT}/+/+/{Channel.TELEMETRY}",
    f"{TOPIC_ROOT}/+/+/{Channel.COMMAND_RESULTS}/+",
)


@dataclass(frozen=True, slots=True)
class _Received:
    topic: str
    body: bytes


class Ingest:
    def __init__(
        self,
        engine: Engine,
        broker: BrokerSettings,
        *,
        client_id: str,
        share_group: str,
        batch_max: int = 200,
        batch_wait_s: float = 0.02,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._subscriptions = [f"$share/{share_group}/{topic}" for topic in SUBSCRIPTIONS]
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_s
        self._clock = clock
        self._inbox: queue.Queue[_Received] = queue.Queue()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="ingest-worker", daemon=True)
        self._client = make_client(client_id, broker)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._connected = threading.Event()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        self._worker.start()
        connect_in_background(self._client, self._broker)

    def stop(self) -> None:
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._worker.join(timeout=10)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the bridge's connection: %s", reason)
            return
        client.subscribe([(topic, QOS_RELIABLE) for topic in self._subscriptions])
        self._connected.set()
        log.info("bridge connected, subscribed to %s", ", ".join(self._subscriptions))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connected.clear()
        log.warning("bridge disconnected from broker: %s", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # noqa: SLF001 - the raw bytes are the only honest name
        self._inbox.put(_Received(topic, bytes(message.payload)))

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                first = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            try:
                while len(batch) < self._batch_max:
                    batch.append(self._inbox.get(timeout=self._batch_wait_s))
            except queue.Empty:
                pass
            try:
                self.process(batch)
            except Exception:
                # A bug must not stop ingest for every kiosk; nothing was acked, so nothing is lost.
                log.exception("a batch of %d messages failed; kiosks will re-send", len(batch))

    def process(self, batch: list[_Received]) -> None:
        received_at = self._clock()
        valid: list[UpstreamMessage] = []
        refused: list[DeadLetter] = []
        for item in batch:
            try:
                valid.append(validate_upstream(item.topic, item.body))
            except ContractError as error:
                log.warning("refused a message on %s: %s", item.topic, error.reason)
                refused.append(
                    DeadLetter(
                        received_at=received_at,
                        topic=item.topic[:512],
                        reason=error.reason[:2000],
                        raw=item.body[:DEAD_LETTER_RAW_LIMIT],
                        raw_size=len(item.body),
                    )
                )
        try:
            store_batch(self._engine, valid, refused, received_at)
        except SQLAlchemyError:
            # Nothing is confirmed, so every kiosk will send these again.
            log.exception("could not store a batch of %d messages; kiosks will re-send", len(valid))
            return
        self._confirm(valid)

    def _confirm(self, stored: list[UpstreamMessage]) -> None:
        by_kiosk: dict[KioskTopics, list[UpstreamMessage]] = defaultdict(list)
        for message in stored:
            by_kiosk[message.topic.kiosk_topics].append(message)
        for topics, messages in by_kiosk.items():
            ids = list(dict.fromkeys(m.envelope.message_id for m in messages))
            for start in range(0, len(ids), MAX_ACK_IDS):
                ack = Ack(message_ids=ids[start : start + MAX_ACK_IDS])
                self._client.publish(topics.acks, encode(ack), qos=QOS_RELIABLE)
