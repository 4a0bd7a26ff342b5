"""Store: one gulp of kiosks' messages (what a worker gathered from its queue, decoded:
cloud_bridge/decode.py), in one database commit (the third stage of ingest; see
cloud_bridge/__init__.py). A "batch" is something else: a kiosk's message of many records
(docs/protocol.md, Batches), whose records join a gulp as if each had come alone.

Everything a gulp implies is written in the same transaction as the messages themselves: the
kiosks' and devices' state, the alerts it raises or clears, the commands it answers, the
webhook notifications. So a message is stored if and only if all of that happened, and a gulp
that fails leaves nothing behind (its kiosks re-send it, since nothing was acknowledged).

The first statement of the transaction is always a write, so SQLite takes its write lock at
once (waiting out other workers with the busy timeout) instead of failing to upgrade a read.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Engine, insert
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from contract.clinical import BloodPressureGuideline
from contract.codec import encode
from contract.envelope import UpstreamMessage
from contract.topics import Channel, KioskTopics

from cloud_bridge import commands
from cloud_bridge import webhook
from cloud_bridge.alert_rules import (
    AlertKind,
    AlertRules,
    Raise,
    Severity,
    Signal,
    alarm_signals,
    device_error_signals,
    device_signals,
    event_signals,
    reading_signals,
    status_signals,
    telemetry_signals,
)
from cloud_bridge.alerts import AlertChange, apply_signals
from cloud_bridge.fleet import (
    DeviceBase, DeviceRows, DevicesApplied, KioskBase, KioskReport, apply_device_reports, apply_kiosk_reports, fold,
    status_reason, touch_kiosks,
)
from cloud_bridge.gaps import late_arrivals
from cloud_bridge.store import DEAD_LETTER_RAW_LIMIT, DeadLetter, insert_messages
from cloud_bridge.decode import Decoded, Inbound, Refused, StatusMessage, Unopenable, decode
from contract.sealing import Opener



@dataclass(slots=True)
class GulpOutcome:
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


# The bridge passes its configured guideline (service.py); the default serves tests and tools.
DEFAULT_GUIDELINE = BloodPressureGuideline()


def commit_gulp(
    engine: Engine, received: Sequence[Inbound], *, rules: AlertRules, notify: bool,
    received_at: datetime,
    guideline: BloodPressureGuideline = DEFAULT_GUIDELINE, opener: Opener | None = None,
    devices: DeviceRows | None = None,
) -> GulpOutcome:
    """Decode and store received messages and all they imply, in one commit (see store_gulp)."""
    return store_gulp(engine, decode(received, received_at, opener), rules=rules, guideline=guideline, notify=notify,
                      received_at=received_at, devices=devices)


def store_gulp(
    engine: Engine, gulp: Decoded, *, rules: AlertRules, notify: bool,
    received_at: datetime,
    guideline: BloodPressureGuideline = DEFAULT_GUIDELINE, devices: DeviceRows | None = None,
) -> GulpOutcome:
    """Store a gulp and all it implies, in one commit. Raises on a database error (nothing is
    then stored, nothing must be confirmed). `devices`: what this worker remembers of device
    rows across its gulps (a worker's own; fleet.DeviceRows)."""
    outcome = GulpOutcome(valid=gulp.valid, refused=len(gulp.refused), refusals=list(gulp.refused),
                           statuses=len(gulp.statuses))
    with Session(engine) as session:
        outcome.new_ids = insert_messages(session, gulp.valid, received_at)
        if gulp.refused:
            session.execute(insert(DeadLetter), [
                {"topic": r.topic, "reason": r.reason, "raw": r.raw, "raw_size": r.raw_size, "received_at": r.received_at}
                for r in gulp.refused
            ])
        reports = fold(gulp.valid, [(s.site, s.kiosk, s.status) for s in gulp.statuses], received_at)
        signals: list[Signal] = []
        new = [m for m in gulp.valid if m.envelope.message_id in outcome.new_ids]
        touched = touch_kiosks(session, reports)
        rows = touched.rows
        for before, report, after in apply_kiosk_reports(session, reports, rows):
            signals += _kiosk_signals(before, report, after, received_at, rules)
        applied = apply_device_reports(session, reports, touched, devices)
        signals += _device_signals(reports, applied, rules)
        for message in new:
            signals += reading_signals(message, rules, guideline)
            signals += event_signals(message)
        signals += late_arrivals(session, new, {key: row.seq_checked_through for key, row in rows.items()}, received_at)
        for alarms in gulp.alarms:  # in the order received: the newest set of a kiosk last
            signals += alarm_signals(alarms.site, alarms.kiosk, alarms.alarms)
        signals += refusal_signals(gulp.refused)
        signals += missing_key_signals(gulp.unopenable)
        commands.apply_results(session, [m for m in new if m.topic.channel is Channel.COMMAND_RESULTS])
        outcome.alert_changes = apply_signals(session, signals)
        if notify:
            webhook.enqueue(session, outcome.alert_changes, received_at)
        session.commit()
    if devices is not None:
        devices.take(applied.known)
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


def store_isolating(
    engine: Engine, gulp: Decoded, *, rules: AlertRules, notify: bool,
    received_at: datetime,
    guideline: BloodPressureGuideline = DEFAULT_GUIDELINE, devices: DeviceRows | None = None,
) -> GulpOutcome:
    """store_gulp for a gulp the database refused for its content (not for being away or
    locked: an OperationalError is raised as it is). The gulp is split in halves, and halves
    of those, until each message the database refuses is alone; that message becomes a dead
    letter with the database's reason, and every other message is stored and confirmed.

    The contract (contract/envelope.py, validate_upstream) refuses what is known to break a store, so
    this is for what is not yet known: one message must never hold back the kiosks whose
    messages share its gulps, re-sent after re-sent."""
    try:
        return store_gulp(engine, gulp, rules=rules, guideline=guideline, notify=notify, received_at=received_at,
                          devices=devices)
    except OperationalError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the driver raised is the message's reason
        units: list[UpstreamMessage | StatusMessage] = [*gulp.valid, *gulp.statuses]
        if len(units) <= 1:
            refused = [*gulp.refused, *(_refused_by_the_database(unit, error, received_at) for unit in units)]
            return store_gulp(engine, Decoded(refused=refused, alarms=gulp.alarms), rules=rules, guideline=guideline,
                              notify=notify, received_at=received_at, devices=devices)
    half = len(units) // 2
    outcome = GulpOutcome()
    # Alarms write no row of their own, only alerts: they go with the first half.
    for part, dead, unopenable, alarms in ((units[:half], gulp.refused, gulp.unopenable, gulp.alarms),
                                           (units[half:], [], [], [])):
        piece = Decoded(refused=list(dead), unopenable=list(unopenable), alarms=list(alarms))
        for unit in part:
            piece.add(unit)
        found = store_isolating(engine, piece, rules=rules, guideline=guideline, notify=notify, received_at=received_at,
                                devices=devices)
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


def _device_signals(reports: Sequence[KioskReport], applied: DevicesApplied, rules: AlertRules) -> list[Signal]:
    """Signals from the device reports that won (were newer than what the row held); `applied`
    has the devices as the gulp's upsert left them, and those it left out as changed in
    nothing but their link time (whose link report won all the same)."""
    signals: list[Signal] = []
    for kiosk in reports:
        for address, report in sorted(kiosk.devices.items()):
            if report.state is None and report.link is None:
                continue
            key = (kiosk.site, kiosk.kiosk, address)
            row = applied.rows.get(key)
            if row is None:
                continue
            unchanged = key in applied.unchanged
            known = applied.known[(kiosk.site, kiosk.kiosk)][1][address] if unchanged else None
            if known is not None and known.quiet_under is rules:
                continue  # as the last time: nothing raised, and its clears are dropped
            state_won = report.state is not None and row.state_at == report.state.at
            link_won = report.link is not None and (unchanged or row.link_at == report.link.at)
            if not (state_won or link_won):
                continue
            at = max(f.at for f in (report.state, report.link) if f is not None)
            found = device_signals(
                kiosk.site, kiosk.kiosk, address, at, rules=rules,
                state=row.state, error_code=row.error_code, error_text=row.error_text,
                link=row.link, battery_percent=row.battery_percent, model=row.model,
                state_reported=state_won, link_reported=link_won,
            )
            # From telemetry; unchanged and not failing, it would only clear (dropped below).
            if (link_won and report.link is not None and "failing_since" in report.link.values
                    and not (unchanged and row.failing_since is None)):
                # The upsert's row reads by attribute as a DeviceBase does (fleet.apply_device_reports).
                found += device_error_signals(cast(DeviceBase, row), report.link.at, rules)
            if known is not None:
                # Its clears were given when the row took these values (this worker's own gulp,
                # fleet.DeviceRows): nothing opened since. Its raises count, and may be new
                # (device_unreachable: the time the device has been failing grows).
                found = [signal for signal in found if isinstance(signal, Raise)]
                if not found and row.failing_since is None:  # nothing here grows with time
                    known.quiet_under = rules
            signals += found
    return signals
