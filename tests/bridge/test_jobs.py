"""The bridge's periodic jobs, run with an injected clock on SQLite and PostgreSQL: sequence
gaps, silent kiosks, commands that time out. Each job is idempotent (every worker runs it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge import commands
from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.alerts import Alert
from cloud_bridge.decode import Inbound
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.commands import Command
from cloud_bridge.fleet import Kiosk
from cloud_bridge.jobs import BridgeJobs
from contract.commands import CommandName
from contract.status import KioskState
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure, telemetry

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RULES = AlertRules(sequence_gap_grace_s=600, heartbeat_missed_s=180)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Published:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def publish_command(self, request_id: str, topic: str, body: bytes) -> bool:
        self.commands.append(request_id)
        return True


def commit(engine: Engine, *items: Inbound, at: datetime) -> None:
    commit_gulp(engine, list(items), rules=RULES, notify=False, received_at=at)


def jobs(engine: Engine, clock: Clock, publisher: Published | None = None) -> BridgeJobs:
    return BridgeJobs(engine, rules=RULES, publisher=publisher, notify=False, clock=clock)


def alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert).order_by(Alert.id)))


def test_a_missing_sequence_number_is_a_gap_only_after_the_grace_period(bridge_engine: Engine) -> None:
    clock, kiosk = Clock(), WireKiosk()
    commit(bridge_engine, *(kiosk.reading(blood_pressure(120, 80), seq=s) for s in (1, 2, 5, 6)), at=NOW)
    job = jobs(bridge_engine, clock)
    clock.now = NOW + timedelta(minutes=5)
    job.scan_gaps()
    assert alerts(bridge_engine) == []  # 3 and 4 may be on their way (a backlog drains out of order)
    clock.now = NOW + timedelta(minutes=11)
    job.scan_gaps()
    job.scan_gaps()  # a second worker scanning too
    [gap] = alerts(bridge_engine)
    assert (gap.kind, gap.about, gap.data) == ("sequence_gap", "seq 3-4", {"first": 3, "last": 4, "missing": 2,
                                                                          "title_zh": "该终端有 2 条消息没有送达（序号 3 至 4）"})
    with Session(bridge_engine) as session:
        row = session.get(Kiosk, (kiosk.site, kiosk.kiosk))
        assert row is not None and row.seq_checked_through == 6


def test_a_gap_whose_messages_arrive_late_resolves_itself(bridge_engine: Engine) -> None:
    clock, kiosk = Clock(), WireKiosk()
    commit(bridge_engine, *(kiosk.reading(blood_pressure(120, 80), seq=s) for s in (1, 4)), at=NOW)
    clock.now = NOW + timedelta(hours=1)
    jobs(bridge_engine, clock).scan_gaps()
    commit(bridge_engine, kiosk.reading(blood_pressure(120, 80), seq=2), at=clock.now)
    assert alerts(bridge_engine)[0].state == "open"  # 3 is still missing
    commit(bridge_engine, kiosk.telemetry(telemetry(), seq=3), at=clock.now)  # seqs span every channel
    [gap] = alerts(bridge_engine)
    assert (gap.state, gap.note) == ("resolved", "the missing messages arrived late")


def test_a_sequence_number_reused_by_a_new_message_means_the_outbox_started_over(bridge_engine: Engine) -> None:
    clock, kiosk = Clock(), WireKiosk()
    commit(bridge_engine, *(kiosk.reading(blood_pressure(120, 80), seq=s) for s in (1, 2, 3)), at=NOW)
    jobs(bridge_engine, clock).scan_gaps()
    commit(bridge_engine, kiosk.reading(blood_pressure(120, 80), seq=1), at=NOW)  # a fresh outbox, a new id
    [alert] = alerts(bridge_engine)
    assert alert.kind == "sequence_restarted"


def test_a_kiosk_silent_beyond_the_threshold_is_offline_until_heard_again(bridge_engine: Engine) -> None:
    clock, kiosk = Clock(), WireKiosk()
    commit(bridge_engine, kiosk.status(KioskState.ONLINE, NOW), kiosk.telemetry(telemetry()), at=NOW)
    job = jobs(bridge_engine, clock)
    clock.now = NOW + timedelta(seconds=170)
    job.watch_heartbeats()
    assert alerts(bridge_engine) == []
    clock.now = NOW + timedelta(seconds=200)
    job.watch_heartbeats()
    job.watch_heartbeats()
    [alert] = alerts(bridge_engine)
    assert (alert.kind, alert.state, alert.data["reason"]) == ("kiosk_offline", "open", "no message for 3 min")
    commit(bridge_engine, kiosk.telemetry(telemetry()), at=clock.now)
    job.watch_heartbeats()
    assert alerts(bridge_engine)[0].state == "resolved"


def test_commands_are_published_until_delivered_and_time_out_without_a_result(bridge_engine: Engine) -> None:
    clock, publisher = Clock(), Published()
    commit(bridge_engine, WireKiosk().status(KioskState.ONLINE, NOW), at=NOW)
    with Session(bridge_engine) as session:
        row = commands.create(session, site="test-site", kiosk="kiosk-1", command=CommandName.PING, args={},
                              issued_by="tech-li", now=NOW, ttl=timedelta(minutes=5))
        request_id = row.request_id
        session.commit()
    job = jobs(bridge_engine, clock, publisher)
    job.sweep_commands()
    job.sweep_commands()  # not again within REPUBLISH_AFTER
    clock.now = NOW + timedelta(seconds=6)
    job.sweep_commands()
    assert publisher.commands == [request_id, request_id]
    with Session(bridge_engine) as session:
        commands.mark_delivered(session, request_id, clock.now)
        session.commit()
    clock.now = NOW + timedelta(seconds=20)
    job.sweep_commands()
    assert len(publisher.commands) == 2  # delivered: never again
    clock.now = NOW + timedelta(minutes=5) + commands.RESULT_GRACE + timedelta(seconds=1)
    job.sweep_commands()
    with Session(bridge_engine) as session:
        found = session.get(Command, request_id)
        assert found is not None and found.status == "timed_out"


def test_an_expired_pending_command_is_never_published(bridge_engine: Engine) -> None:
    clock, publisher = Clock(), Published()
    with Session(bridge_engine) as session:
        commands.create(session, site="test-site", kiosk="kiosk-1", command=CommandName.PING, args={},
                        issued_by="tech-li", now=NOW, ttl=timedelta(seconds=10))
        session.commit()
    clock.now = NOW + timedelta(seconds=11)
    jobs(bridge_engine, clock, publisher).sweep_commands()
    assert publisher.commands == []
