"""One batch of kiosks' messages, from raw bytes to one database commit.

Everything a batch implies is written in the same transaction as the messages themselves: the
kiosks' and devices' state, the alerts it raises or clears, the commands it answers, the
webhook notifications. So a message is stored if and only if all of that happened, and a batch
that fails leaves nothing behind (its kiosks re-send it, since nothing was acknowledged).

The first statement of the transaction is always a write, so SQLite takes its write lock at
once (waiting out other workers with the busy timeout) instead of failing to upgrade a read.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Engine, insert
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from doorstep.contract.batch import BatchRecord, BatchRefused, check_batched, split_batch
from doorstep.contract.clinical import BloodPressureGuideline
from doorstep.contract.codec import MAX_MESSAGE_BYTES, encode
from doorstep.contract.envelope import UpstreamMessage, validate_envelope
from doorstep.contract.errors import ContractError
from doorstep.contract.status import Status, decode_status
from doorstep.contract.topics import ENVELOPE_CHANNELS, Channel, KioskTopics, parse_topic

from cloud_bridge import commands
from cloud_bridge import webhook
from cloud_bridge.alert_rules import (
    AlertKind,
    AlertRules,
    Raise,
    Severity,
    Signal,
    device_error_signals,
    device_signals,
    event_signals,
    reading_signals,
    status_signals,
    telemetry_signals,
)
from cloud_bridge.alerts import AlertChange, apply_signals
from cloud_bridge.fleet import (
    DeviceBase, KioskBase, KioskReport, apply_device_reports, apply_kiosk_reports, fold, status_reason, touch_kiosks,
)
from cloud_bridge.gaps import late_arrivals
from cloud_bridge.store import DEAD_LETTER_RAW_LIMIT, DeadLetter, insert_messages
from doorstep.contract.sealing import Opener, UnknownPayloadKey



@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    body: bytes


@dataclass(slots=True)
class BatchOutcome:
    valid: list[UpstreamMessage] = field(default_factory=list)  # stored now or before: to confirm
    new_ids: set[uuid.UUID] = field(default_factory=set)
    refused: int = 0
    refusals: list[Refused] = field(default_factory=list)  # dead letters now: their kiosks are told
    statuses: int = 0
    alert_changes: list[AlertChange] = field(default_factory=list)

    def counts(self) -> Counter[tuple[str, str]]:
        """(channel, stored | duplicate) -> messages."""
        counted: Counter[tuple[str, str]] = Counter()
        for message in self.valid:
            outcome = "stored" if message.envelope.message_id in self.new_ids else "duplicate"
            counted[(message.topic.channel.value, outcome)] += 1
        return counted


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A kiosk's retained status (doorstep.contract.status.Status) as received on its …/status
    topic, which names the kiosk; an UpstreamMessage's counterpart."""

    site: str
    kiosk: str
    status: Status


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


Classified = UpstreamMessage | StatusMessage | Refused | Unopenable | None


def classify(item: Inbound, received_at: datetime, opener: Opener | None = None) -> Classified:
    """One message as the contract sees it; None for a retained status being cleared."""
    try:
        topic = parse_topic(item.topic)
        if topic.channel is not Channel.STATUS:
            try:
                # A bridge with no keys at all lacks a key too: the kiosk is not at fault.
                return validate_envelope(topic, item.body, (opener or Opener([])).open)
            except UnknownPayloadKey as missing:
                return Unopenable(topic.kiosk_topics, missing.key_id, received_at)
        if not item.body:
            return None
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
        return parse_topic(topic).channel is Channel.BATCH
    except ContractError:
        return False  # refused by classify, as any topic outside the tree


def classify_batch(item: Inbound, received_at: datetime, opener: Opener | None = None) -> list[Classified]:
    """Each record of a batch classified as if it had come alone on its own topic (the same
    validation, refusal reasons, dedupe and storage), or the whole batch refused for its
    container. Raises ContractError if `item` is not on a batch topic."""
    kiosk = parse_topic(item.topic).kiosk_topics
    try:
        records = split_batch(item.topic, item.body)
    except BatchRefused as error:
        return [Refused(item.topic, error.reason[:2000], item.body[:DEAD_LETTER_RAW_LIMIT], len(item.body),
                        received_at, kiosk, batch_ids=error.message_ids)]
    return [_classify_record(record, kiosk, received_at, opener) for record in records]


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
class Parsed:
    valid: list[UpstreamMessage] = field(default_factory=list)
    statuses: list[StatusMessage] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    unopenable: list[Unopenable] = field(default_factory=list)

    def add(self, classified: Classified) -> None:
        if isinstance(classified, Refused):
            self.refused.append(classified)
        elif isinstance(classified, Unopenable):
            self.unopenable.append(classified)
        elif isinstance(classified, StatusMessage):
            self.statuses.append(classified)
        elif classified is not None:
            self.valid.append(classified)


def parse(batch: Sequence[Inbound], received_at: datetime, opener: Opener | None = None) -> Parsed:
    parsed = Parsed()
    for item in batch:
        for classified in classify_all(item, received_at, opener):
            parsed.add(classified)
    return parsed


# The bridge passes its configured guideline (service.py); the default serves tests and tools.
DEFAULT_GUIDELINE = BloodPressureGuideline()


def commit_batch(
    engine: Engine, batch: Sequence[Inbound], *, rules: AlertRules, notify: bool,
    received_at: datetime,
    guideline: BloodPressureGuideline = DEFAULT_GUIDELINE, opener: Opener | None = None,
) -> BatchOutcome:
    """Validate and store a batch and all it implies, in one commit (see commit_parsed)."""
    return commit_parsed(engine, parse(batch, received_at, opener), rules=rules, guideline=guideline, notify=notify,
                         received_at=received_at)


def commit_parsed(
    engine: Engine, parsed: Parsed, *, rules: AlertRules, notify: bool,
    received_at: datetime,
    guideline: BloodPressureGuideline = DEFAULT_GUIDELINE,
) -> BatchOutcome:
    """Store a batch and all it implies, in one commit. Raises on a database error (nothing is
    then stored, nothing must be confirmed)."""
    outcome = BatchOutcome(valid=parsed.valid, refused=len(parsed.refused), refusals=list(parsed.refused),
                           statuses=len(parsed.statuses))
    with Session(engine) as session:
        outcome.new_ids = insert_messages(session, parsed.valid, received_at)
        if parsed.refused:
            session.execute(insert(DeadLetter), [
                {"topic": r.topic, "reason": r.reason, "raw": r.raw, "raw_size": r.raw_size, "received_at": r.received_at}
                for r in parsed.refused
            ])
        reports = fold(parsed.valid, [(s.site, s.kiosk, s.status) for s in parsed.statuses], received_at)
        signals: list[Signal] = []
        new = [m for m in parsed.valid if m.envelope.message_id in outcome.new_ids]
        rows = touch_kiosks(session, reports)
        for before, report, after in apply_kiosk_reports(session, reports, rows):
            signals += _kiosk_signals(before, report, after, received_at, rules)
        signals += _device_signals(reports, apply_device_reports(session, reports), rules)
        for message in new:
            signals += reading_signals(message, rules, guideline)
            signals += event_signals(message)
        signals += late_arrivals(session, new, {key: row.seq_checked_through for key, row in rows.items()}, received_at)
        signals += refusal_signals(parsed.refused)
        signals += missing_key_signals(parsed.unopenable)
        commands.apply_results(session, [m for m in new if m.topic.channel is Channel.COMMAND_RESULTS])
        outcome.alert_changes = apply_signals(session, signals)
        if notify:
            webhook.enqueue(session, outcome.alert_changes, received_at)
        session.commit()
    return outcome


def refusal_signals(refused: Sequence[Refused]) -> list[Signal]:
    """A kiosk whose messages break the contract has a bug to fix: one alert per kiosk."""
    latest: dict[KioskTopics, Refused] = {}
    for message in refused:
        if message.kiosk is not None:
            latest[message.kiosk] = message
    return [
        Raise(AlertKind.MESSAGES_REFUSED, Severity.WARNING, kiosk.site, kiosk.kiosk, "",
              f"the bridge refuses this kiosk's messages as breaking the contract: {message.reason[:300]}",
              f"云端拒收该终端的消息（不符合通信约定，多为软件缺陷）：{message.reason[:300]}",
              message.received_at, {"topic": message.topic, "reason": message.reason[:500]})
        for kiosk, message in sorted(latest.items(), key=lambda item: (item[0].site, item[0].kiosk))
    ]


def missing_key_signals(unopenable: Sequence[Unopenable]) -> list[Signal]:
    """Readings this bridge cannot open: its configuration lacks a key the kiosks use."""
    found = {(u.kiosk.site, u.kiosk.kiosk, u.key_id): u for u in unopenable}
    return [
        Raise(AlertKind.PAYLOAD_KEY_MISSING, Severity.CRITICAL, site, kiosk, key_id,
              f"this kiosk seals its readings for payload key {key_id}, which the bridge does not hold "
              "(payload_keys): they wait at the kiosk until the key is installed",
              f"该终端用密钥 {key_id} 加密读数，云端没有这把密钥（payload_keys）：读数留在终端，装好密钥后自动补传",
              u.received_at, {"key_id": key_id})
        for (site, kiosk, key_id), u in sorted(found.items())
    ]


def commit_isolating(
    engine: Engine, parsed: Parsed, *, rules: AlertRules, notify: bool,
    received_at: datetime,
    guideline: BloodPressureGuideline = DEFAULT_GUIDELINE,
) -> BatchOutcome:
    """commit_parsed for a batch the database refused for its content (not for being away or
    locked: an OperationalError is raised as it is). The batch is split in halves, and halves
    of those, until each message the database refuses is alone; that message becomes a dead
    letter with the database's reason, and every other message is stored and confirmed.

    The contract (doorstep/contract/envelope.py, validate_upstream) refuses what is known to break a store, so
    this is for what is not yet known: one message must never hold back the kiosks whose
    messages share its batches, re-sent after re-sent."""
    try:
        return commit_parsed(engine, parsed, rules=rules, guideline=guideline, notify=notify, received_at=received_at)
    except OperationalError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the driver raised is the message's reason
        units: list[UpstreamMessage | StatusMessage] = [*parsed.valid, *parsed.statuses]
        if len(units) <= 1:
            refused = [*parsed.refused, *(_refused_by_the_database(unit, error, received_at) for unit in units)]
            return commit_parsed(engine, Parsed(refused=refused), rules=rules, guideline=guideline, notify=notify, received_at=received_at)
    half = len(units) // 2
    outcome = BatchOutcome()
    for part, dead, unopenable in ((units[:half], parsed.refused, parsed.unopenable), (units[half:], [], [])):
        piece = Parsed(refused=list(dead), unopenable=list(unopenable))
        for unit in part:
            piece.add(unit)
        found = commit_isolating(engine, piece, rules=rules, guideline=guideline, notify=notify, received_at=received_at)
        outcome.valid += found.valid
        outcome.new_ids |= found.new_ids
        outcome.refused += found.refused
        outcome.refusals += found.refusals
        outcome.statuses += found.statuses
        outcome.alert_changes += found.alert_changes
    return outcome


def _refused_by_the_database(unit: UpstreamMessage | StatusMessage, error: Exception, received_at: datetime) -> Refused:
    if isinstance(unit, StatusMessage):
        topic, body, what = KioskTopics(unit.site, unit.kiosk).status, encode(unit.status), "a status"
    else:
        parsed = unit.topic
        topic = "/".join([parsed.kiosk_topics.root, parsed.channel.value, *([parsed.name] if parsed.name else [])])
        body, what = encode(unit.envelope), f"message {unit.envelope.message_id}"
    reason = f"the database refused it ({what}): {type(error).__name__}: {str(error).splitlines()[0][:300]}"
    if isinstance(unit, StatusMessage):
        return Refused(topic, reason, body[:DEAD_LETTER_RAW_LIMIT], len(body), received_at)
    # Told to its kiosk like any refusal, so it is not sent (and refused) again and again.
    return Refused(topic, reason, body[:DEAD_LETTER_RAW_LIMIT], len(body), received_at,
                   unit.topic.kiosk_topics, unit.envelope.message_id)


def _kiosk_signals(before: KioskBase, report: KioskReport, after: KioskBase, received_at: datetime, rules: AlertRules) -> list[Signal]:
    signals: list[Signal] = []
    if report.status is not None and after.status_at == report.status[0]:
        at, status = report.status
        signals += status_signals(after.site, after.kiosk, status.state, status_reason(status), at,
                                  planned=status.at is not None)
    if report.telemetry is not None and after.telemetry_at != before.telemetry_at:
        signals += telemetry_signals(after, received_at, rules)
    return signals


def _device_signals(reports: Sequence[KioskReport], rows: dict[tuple[str, str, str], DeviceBase],
                    rules: AlertRules) -> list[Signal]:
    """Signals from the device reports that won (were newer than what the row held); `rows`
    are the devices as the batch's upsert left them."""
    signals: list[Signal] = []
    for kiosk in reports:
        for address, report in sorted(kiosk.devices.items()):
            if report.state is None and report.link is None:
                continue
            row = rows.get((kiosk.site, kiosk.kiosk, address))
            if row is None:
                continue
            state_won = report.state is not None and row.state_at == report.state.at
            link_won = report.link is not None and row.link_at == report.link.at
            if not (state_won or link_won):
                continue
            at = max(f.at for f in (report.state, report.link) if f is not None)
            signals += device_signals(
                kiosk.site, kiosk.kiosk, address, at, rules=rules,
                state=row.state, error_code=row.error_code, error_text=row.error_text,
                link=row.link, battery_percent=row.battery_percent, model=row.model,
                state_reported=state_won, link_reported=link_won,
            )
            if link_won and report.link is not None and "failing_since" in report.link.values:  # from telemetry
                signals += device_error_signals(row, report.link.at, rules)
    return signals
