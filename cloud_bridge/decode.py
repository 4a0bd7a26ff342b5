"""Decode: what the bridge received, as the contract reads it (the second stage of ingest; see
cloud_bridge/__init__.py).

Each message is read once: an envelope on its own topic by one pass of pydantic over its body
(validate_envelope), a kiosk's batch by one pass over the whole container with each record's
envelope typed for its channel (contract/batch.py, read_batch), a sealed payload
opened once and its JSON validated once. What breaks the contract becomes a Refused (a dead
letter to be), with the reason it would have alone; a reading sealed for a key this bridge does
not hold, an Unopenable.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache

from contract.alarms import Alarms, decode_alarms
from contract.batch import (
    BatchRecord, BatchRefused, ReadRecord, check_batched, read_batch, split_batch, untyped_record,
)
from contract.codec import MAX_MESSAGE_BYTES
from contract.envelope import SealedPayload, UpstreamMessage, open_envelope, validate_envelope
from contract.errors import ContractError
from contract.sealing import Opener, UnknownPayloadKey
from contract.status import Status, decode_status
from contract.topics import ENVELOPE_CHANNELS, RETAINED_CHANNELS, Channel, KioskTopics, ParsedTopic, parse_topic

from cloud_bridge.store import DEAD_LETTER_RAW_LIMIT


@lru_cache(maxsize=16_384)
def _topic(topic: str) -> ParsedTopic:
    """parse_topic, remembered: a fleet sends on a few topics per kiosk, again and again (an
    error is raised each time, never remembered)."""
    return parse_topic(topic)


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    body: bytes


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A kiosk's retained status (contract.status.Status) as received on its …/status
    topic, which names the kiosk; an UpstreamMessage's counterpart."""

    site: str
    kiosk: str
    status: Status


@dataclass(frozen=True, slots=True)
class AlarmsMessage:
    """A kiosk's retained alarms (contract.alarms.Alarms): the conditions that hold now."""

    site: str
    kiosk: str
    alarms: Alarms


@dataclass(frozen=True, slots=True)
class Refused:
    """A message that breaks the contract, as it will be kept in dead_letters."""

    topic: str
    reason: str
    raw: bytes  # the first DEAD_LETTER_RAW_LIMIT bytes
    raw_size: int
    received_at: datetime
    # Whose it is, when the topic and an envelope's message_id can still be read: that kiosk is
    # told (Ack.refused) so it stops sending it again.
    kiosk: KioskTopics | None = None
    message_id: uuid.UUID | None = None
    # A batch refused as a whole: its records' ids, when every one could be read, told refused too.
    batch_ids: tuple[uuid.UUID, ...] = ()

    @property
    def message_ids(self) -> list[uuid.UUID]:
        """The ids its kiosk is told are refused."""
        return [*([self.message_id] if self.message_id is not None else []), *self.batch_ids]


def _sender_of(topic: str, body: bytes) -> tuple[KioskTopics | None, uuid.UUID | None]:
    """The kiosk and message id of a refused message, if they can be read at all."""
    try:
        parsed = parse_topic(topic)
    except ContractError:
        return None, None
    if parsed.channel not in ENVELOPE_CHANNELS or len(body) > MAX_MESSAGE_BYTES:
        return parsed.kiosk_topics, None
    try:
        data = json.loads(body)
        return parsed.kiosk_topics, uuid.UUID(str(data["message_id"])) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError, RecursionError):
        return parsed.kiosk_topics, None


@dataclass(frozen=True, slots=True)
class Unopenable:
    """Sealed for a payload key this bridge does not hold: not the kiosk's fault, so neither
    stored nor refused; the kiosk sends it again, and it is stored once the key is installed."""

    kiosk: KioskTopics
    key_id: str
    received_at: datetime


Classified = UpstreamMessage | StatusMessage | AlarmsMessage | Refused | Unopenable | None


def classify(item: Inbound, received_at: datetime, opener: Opener | None = None) -> Classified:
    """One message as the contract sees it; None for a retained status or alarms being cleared."""
    try:
        topic = _topic(item.topic)
        if topic.channel not in RETAINED_CHANNELS:
            try:
                # A bridge with no keys at all lacks a key too: the kiosk is not at fault.
                return validate_envelope(topic, item.body, (opener or Opener([])).open)
            except UnknownPayloadKey as missing:
                return Unopenable(topic.kiosk_topics, missing.key_id, received_at)
        if not item.body:
            return None
        if topic.channel is Channel.ALARMS:
            return AlarmsMessage(topic.site, topic.kiosk, decode_alarms(item.body))
        return StatusMessage(topic.site, topic.kiosk, decode_status(item.body))
    except ContractError as error:
        kiosk, message_id = _sender_of(item.topic, item.body)
        return Refused(item.topic[:512], error.reason[:2000], item.body[:DEAD_LETTER_RAW_LIMIT], len(item.body),
                       received_at, kiosk, message_id)


def classify_all(item: Inbound, received_at: datetime, opener: Opener | None = None) -> list[Classified]:
    """classify, but for a batch (docs/protocol.md, Batches): one item per record of it."""
    if item.topic.endswith("/" + Channel.BATCH) and _is_batch_topic(item.topic):  # the cheap test first
        return classify_batch(item, received_at, opener)
    return [classify(item, received_at, opener)]


def _is_batch_topic(topic: str) -> bool:
    try:
        return _topic(topic).channel is Channel.BATCH
    except ContractError:
        return False  # refused by classify, as any topic outside the tree


def classify_batch(item: Inbound, received_at: datetime, opener: Opener | None = None) -> list[Classified]:
    """Each record of a batch classified as if it had come alone on its own topic (the same
    validation, refusal reasons, dedupe and storage), or the whole batch refused for its
    container. Raises ContractError if `item` is not on a batch topic."""
    kiosk = _topic(item.topic).kiosk_topics
    read = read_batch(item.body)
    if read is not None:
        opened = open_all(opener or Opener([]), [r.envelope.sealed for r in read if r.envelope and r.envelope.sealed])
        try:
            return [_classify_read(record, kiosk, received_at, opener, opened) for record in read]
        except ContractError:
            pass  # a refusal: told as split_batch's path tells it, from the bytes it dead-letters
    return classify_split(item, received_at, opener)


def classify_split(item: Inbound, received_at: datetime, opener: Opener | None = None) -> list[Classified]:
    """classify_batch by split_batch's path, for a batch read_batch does not take (or refused
    records in it): each record written back out and classified from those bytes."""
    kiosk = _topic(item.topic).kiosk_topics
    try:
        records = split_batch(item.topic, item.body)
    except BatchRefused as error:
        return [Refused(item.topic, error.reason[:2000], item.body[:DEAD_LETTER_RAW_LIMIT], len(item.body),
                        received_at, kiosk, batch_ids=error.message_ids)]
    return [_classify_record(record, kiosk, received_at, opener) for record in records]


def _classify_read(record: ReadRecord, kiosk: KioskTopics, received_at: datetime, opener: Opener | None,
                   opened: dict[int, bytes | _Unopened]) -> Classified:
    """A record read_batch gave, validated already (or left to split_batch's path, which this
    takes for it), its sealed payload opened by open_all. Raises ContractError for a record
    whose payload is refused."""
    if record.envelope is None:
        return _classify_record(untyped_record(kiosk, record), kiosk, received_at, opener)

    def was_opened(sealed: SealedPayload) -> bytes:
        found = opened[id(sealed)]
        if isinstance(found, Exception):
            raise found
        return found

    try:
        # A channel read_batch types is a topic's tail.
        return open_envelope(_topic(f"{kiosk.root}/{record.channel}"), record.envelope, was_opened)
    except UnknownPayloadKey as missing:
        return Unopenable(kiosk, missing.key_id, received_at)


_Unopened = ContractError | UnknownPayloadKey
# Opening a sealed box is an X25519 in libsodium, which releases the GIL (PyNaCl calls it
# through cffi): a batch's boxes are opened half on this thread, half on another, so a second
# core opens while the first does. Below this many sealed boxes, handing over costs more than
# it saves. A session box (its key agreed once per session) opens in a few µs: split, its
# openings cost more CPU in handing the GIL back and forth than they saved in wall time (a
# drained batch: 33.6 µs a record against 28.8, in process).
_OPEN_APART_FROM = 8
_opening: ThreadPoolExecutor | None = None


def open_all(opener: Opener, boxes: Sequence[SealedPayload]) -> dict[int, bytes | _Unopened]:
    """Each box opened (its payload's JSON) or why it cannot be, by id() of the box."""
    global _opening  # noqa: PLW0603 - one thread for the process, started on first use
    if sum(1 for box in boxes if box.sender is None) < _OPEN_APART_FROM:
        return dict(zip(map(id, boxes), _open_each(opener, boxes), strict=True))
    if _opening is None:
        _opening = ThreadPoolExecutor(max_workers=1, thread_name_prefix="open-sealed")
    half = len(boxes) // 2
    other = _opening.submit(_open_each, opener, boxes[half:])
    here = _open_each(opener, boxes[:half])
    return dict(zip(map(id, boxes), [*here, *other.result()], strict=True))


def _open_each(opener: Opener, boxes: Sequence[SealedPayload]) -> list[bytes | _Unopened]:
    found: list[bytes | _Unopened] = []
    for box in boxes:
        try:
            found.append(opener.open(box))
        except (ContractError, UnknownPayloadKey) as error:
            found.append(error)
    return found


def _classify_record(record: BatchRecord, kiosk: KioskTopics, received_at: datetime, opener: Opener | None) -> Classified:
    try:
        check_batched(record)  # never a status, a telemetry report or another batch
    except ContractError as error:
        return Refused(record.topic, error.reason[:2000], record.body[:DEAD_LETTER_RAW_LIMIT], len(record.body),
                       received_at, kiosk, record.message_id)
    classified = classify(Inbound(record.topic, record.body), received_at, opener)
    if isinstance(classified, Refused) and classified.kiosk is None:
        # Its topic is outside the contract (an unknown kind), yet its kiosk and id are known:
        # told that it is refused, the kiosk does not send it again and again.
        return replace(classified, kiosk=kiosk, message_id=record.message_id)
    return classified


@dataclass(slots=True)
class Decoded:
    """What a gulp of received messages decodes to, sorted for storing."""

    valid: list[UpstreamMessage] = field(default_factory=list)
    statuses: list[StatusMessage] = field(default_factory=list)
    alarms: list[AlarmsMessage] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    unopenable: list[Unopenable] = field(default_factory=list)

    def add(self, classified: Classified) -> None:
        if isinstance(classified, Refused):
            self.refused.append(classified)
        elif isinstance(classified, Unopenable):
            self.unopenable.append(classified)
        elif isinstance(classified, StatusMessage):
            self.statuses.append(classified)
        elif isinstance(classified, AlarmsMessage):
            self.alarms.append(classified)
        elif classified is not None:
            self.valid.append(classified)


def decode(received: Sequence[Inbound], received_at: datetime, opener: Opener | None = None) -> Decoded:
    decoded = Decoded()
    for item in received:
        for classified in classify_all(item, received_at, opener):
            decoded.add(classified)
    return decoded


