"""Sequence gaps: a kiosk numbers every message it saves (docs/protocol.md, Envelope.seq), so a
number the bridge never receives is a message lost somewhere.

Messages arrive out of order (a backlog drains health readings first, re-sends come later), so
a missing number is only a gap once a later one has been here for the grace period. Each
kiosk's row keeps `seq_checked_through`: every number up to it is stored or already flagged.
A flagged gap whose messages turn up after all resolves itself. A number arriving twice under
different message ids means the kiosk's outbox started over (set aside as corrupt, or a new
SD card): flagged too, since what the old outbox held may be gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from contract.envelope import UpstreamMessage

from cloud_bridge.alert_rules import AlertKind, Clear, Raise, Severity, Signal
from cloud_bridge.alerts import Alert
from cloud_bridge.fleet import Kiosk
from cloud_bridge.store import count_seqs_between, seq_taken_by_another, stored_seqs

# Sequence numbers read per kiosk per scan; the next scan goes on from there.
SCAN_LIMIT = 5000


def gap_about(first: int, last: int) -> str:
    return f"seq {first}-{last}"


def scan(session: Session, kiosk: Kiosk, now: datetime, grace: timedelta) -> list[Signal]:
    """Advance the kiosk's checked watermark; flag the gaps that outlived the grace period."""
    signals: list[Signal] = []
    checked = kiosk.seq_checked_through
    for seq, received_at in stored_seqs(session, kiosk.site, kiosk.kiosk, above=checked, limit=SCAN_LIMIT):
        if seq <= checked:
            continue  # the same number in two tables: an outbox that started over (see below)
        if seq > checked + 1:
            if now - received_at < grace:
                break  # the missing ones may still be on their way
            first, last = checked + 1, seq - 1
            count = last - first + 1
            signals.append(
                Raise(
                    AlertKind.SEQUENCE_GAP,
                    Severity.WARNING,
                    kiosk.site,
                    kiosk.kiosk,
                    gap_about(first, last),
                    f"{count} message(s) from this kiosk never arrived (seq {first} to {last})",
                    f"该终端有 {count} 条消息没有送达（序号 {first} 至 {last}）",
                    now,
                    {"first": first, "last": last, "missing": count},
                )
            )
        checked = seq
    if checked != kiosk.seq_checked_through:
        kiosk.seq_checked_through = checked
        session.add(kiosk)
    return signals


def late_arrivals(session: Session, stored: Sequence[UpstreamMessage], checked_through: Mapping[tuple[str, str], int],
                  now: datetime) -> list[Signal]:
    """For newly stored messages at or below their kiosk's watermark (`checked_through`, by
    (site, kiosk), read in this transaction): close the gaps they fill, and flag a sequence
    number that another message already holds."""
    signals: list[Signal] = []
    by_kiosk: dict[tuple[str, str], list[UpstreamMessage]] = {}
    for message in stored:
        by_kiosk.setdefault((message.topic.site, message.topic.kiosk), []).append(message)
    for (site, kiosk_id), messages in sorted(by_kiosk.items()):
        watermark = checked_through.get((site, kiosk_id))
        if watermark is None:
            continue
        late = [m for m in messages if m.envelope.seq <= watermark]
        if not late:
            continue
        gaps = session.exec(
            select(Alert).where(
                col(Alert.kind) == AlertKind.SEQUENCE_GAP.value,
                col(Alert.site) == site,
                col(Alert.kiosk) == kiosk_id,
                col(Alert.open_key).is_not(None),
            )
        ).all()
        for message in late:
            seq = message.envelope.seq
            gap = next((g for g in gaps if g.data["first"] <= seq <= g.data["last"]), None)
            if gap is not None:
                first, last = gap.data["first"], gap.data["last"]
                if count_seqs_between(session, site, kiosk_id, first, last) == last - first + 1:
                    signals.append(
                        Clear(AlertKind.SEQUENCE_GAP, site, kiosk_id, gap.about, now, "the missing messages arrived late")
                    )
            elif seq_taken_by_another(session, site, kiosk_id, seq, message.envelope.message_id):
                signals.append(
                    Raise(
                        AlertKind.SEQUENCE_RESTARTED,
                        Severity.WARNING,
                        site,
                        kiosk_id,
                        "",
                        "the kiosk numbers its messages from the start again: its outbox was replaced "
                        "(set aside as corrupt?); what the old one held may be lost",
                        "终端的消息序号从头开始了：它的缓存被换过（因损坏被搁置？），旧缓存里的数据可能已丢失",
                        now,
                        {"seq": seq, "message_id": str(message.envelope.message_id)},
                    )
                )
    return signals
