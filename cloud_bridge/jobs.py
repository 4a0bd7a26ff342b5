"""The bridge's periodic work, as named apscheduler jobs in every worker.

Each job is idempotent, so every worker runs all of them with no leader: two workers raising
the same alert make one alert (cloud_bridge/alerts.py), two publishing the same command make
one action at the kiosk (it acts on a request id once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from cloud_bridge import accounts, commands, desired_config, gaps, rollouts, webhook
from cloud_bridge.alert_rules import AlertKind, AlertRules, Signal, heartbeat_signals
from cloud_bridge.alerts import Alert, AlertChange, apply_signals
from cloud_bridge.broker_link import BrokerLink
from cloud_bridge.fleet import Kiosk
from cloud_bridge.rollouts import Delivery
from cloud_bridge.store import DeadLetter

log = logging.getLogger(__name__)

# A rollout waits on kiosks that take minutes to download and check an update: every few seconds
# is prompt, and a pass over the unfinished rollouts is a few queries each.
ROLLOUT_PERIOD_S = 3


class CommandPublisher(Protocol):
    def publish_command(self, request_id: str, topic: str, body: bytes) -> bool: ...

    def publish_retained(self, topic: str, body: bytes) -> bool: ...


class BridgeJobs:
    def __init__(
        self,
        engine: Engine,
        *,
        rules: AlertRules,
        publisher: CommandPublisher | None,
        notify: bool,
        on_alerts: Callable[[list[AlertChange]], None] = lambda changes: None,
        link: BrokerLink | None = None,
        dead_letter_retention: timedelta = timedelta(days=30),
        delivery: Delivery | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._publisher = publisher
        self._notify = notify
        self._on_alerts = on_alerts
        self._link = link
        self._dead_letter_retention = dead_letter_retention
        self._delivery = delivery
        self._clock = clock
        self.scheduler = BackgroundScheduler(timezone=UTC)

    def start(self) -> None:
        every = {"max_instances": 1, "coalesce": True}
        desired_config.republish_all(self._engine)
        self.scheduler.add_job(self.sweep_commands, "interval", seconds=1, id="commands", **every)
        self.scheduler.add_job(self.sweep_desired, "interval", seconds=2, id="desired-config", **every)
        if self._delivery is not None:
            self.scheduler.add_job(self.advance_rollouts, "interval", seconds=ROLLOUT_PERIOD_S, id="rollouts", **every)
        self.scheduler.add_job(self.watch_heartbeats, "interval", seconds=15, id="heartbeat-watchdog", **every)
        self.scheduler.add_job(self.scan_gaps, "interval", seconds=30, id="sequence-gaps", **every)
        self.scheduler.add_job(self.prune, "interval", hours=1, id="prune", **every)
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def _signal(self, session: Session, signals: list[Signal], now: datetime) -> None:
        changes = apply_signals(session, signals)
        if self._notify:
            webhook.enqueue(session, changes, now)
        session.commit()
        if changes:
            self._on_alerts(changes)

    def watch_heartbeats(self) -> None:
        now = self._clock()
        silent_since = now - timedelta(seconds=self._rules.heartbeat_missed_s)
        hearing_since = self._link.hearing_since() if self._link is not None else None
        if self._link is not None and hearing_since is None:
            return  # this worker hears no one now: its deafness is not the kiosks' silence
        # A kiosk is silent only if this worker could have heard it all that time.
        judges_silence = hearing_since is None or hearing_since <= silent_since
        with Session(self._engine) as session:
            silent = session.exec(
                select(Kiosk).where(col(Kiosk.status) != "offline", col(Kiosk.last_seen_at) < silent_since)
            ).all() if judges_silence else []
            heard_again = session.exec(
                select(Kiosk)
                .join(Alert, (col(Alert.site) == col(Kiosk.site)) & (col(Alert.kiosk) == col(Kiosk.kiosk)))
                .where(
                    col(Alert.kind) == AlertKind.KIOSK_OFFLINE.value,
                    col(Alert.open_key).is_not(None),
                    col(Kiosk.status) == "online",
                    col(Kiosk.last_seen_at) >= silent_since,
                )
            ).all()
            signals = heartbeat_signals([*silent, *heard_again], now, self._rules)
            self._signal(session, signals, now)

    def scan_gaps(self) -> None:
        now = self._clock()
        grace = timedelta(seconds=self._rules.sequence_gap_grace_s)
        with Session(self._engine) as session:
            behind = session.exec(select(Kiosk).where(col(Kiosk.last_seq) > col(Kiosk.seq_checked_through))).all()
            keys = [(k.site, k.kiosk) for k in behind]
        for site, kiosk_id in keys:  # one transaction per kiosk: short locks
            with Session(self._engine) as session:
                kiosk = session.get(Kiosk, (site, kiosk_id), with_for_update=True)
                if kiosk is None:
                    continue
                signals = gaps.scan(session, kiosk, now, grace)
                self._signal(session, signals, now)

    def sweep_commands(self) -> None:
        now = self._clock()
        with Session(self._engine) as session:
            timed_out = commands.time_out_overdue(session, now)
            due = commands.due_for_publishing(session, now) if self._publisher is not None else []
            messages = [(row.request_id, *commands.message_of(row)) for row in due]
            if messages:
                commands.mark_published(session, [m[0] for m in messages], now)
            session.commit()
        if timed_out:
            log.warning("%d command(s) timed out with no result from their kiosk", timed_out)
        if self._publisher is not None:
            for request_id, topic, body in messages:
                self._publisher.publish_command(request_id, topic, body)

    def sweep_desired(self) -> None:
        """New kiosks of a configured site get its configuration; what is not yet published goes."""
        now = self._clock()
        with Session(self._engine) as session:
            desired_config.adopt_new_kiosks(session, now)
            session.commit()
        if self._publisher is not None:
            desired_config.publish_due(self._engine, self._publisher, now)

    def advance_rollouts(self) -> None:
        """Rollouts move on from the kiosks' telemetry; the commands they create go out at once."""
        assert self._delivery is not None
        created = rollouts.advance_all(self._engine, self._delivery, self._clock())
        if created:
            log.info("rollouts asked %d kiosk(s) to update", len(created))
            self.sweep_commands()

    def prune(self) -> None:
        now = self._clock()
        with Session(self._engine) as session:
            dead = session.execute(
                delete(DeadLetter).where(col(DeadLetter.received_at) < now - self._dead_letter_retention)
            ).rowcount  # type: ignore[attr-defined]
            sent = session.execute(
                delete(webhook.WebhookDelivery).where(
                    col(webhook.WebhookDelivery.delivered_at) < now - self._dead_letter_retention
                )
            ).rowcount  # type: ignore[attr-defined]
            # Ended lockout windows: a guesser spraying made-up usernames leaves a row for each.
            accounts.prune_login_attempts(session, now)
            session.commit()
        if dead or sent:
            log.info("pruned %d dead letter(s) and %d sent notification(s)", dead, sent)
