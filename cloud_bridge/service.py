"""`doorstep bridge`: one worker — ingest, periodic jobs, webhook sender and the HTTP API."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import uvicorn
from sqlalchemy import Engine

from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.enrolment import BrokerAccounts
from cloud_bridge.ingest import Ingest
from cloud_bridge.jobs import BridgeJobs
from cloud_bridge.metrics import BridgeMetrics
from cloud_bridge.settings import BridgeSettings
from cloud_bridge.startup import DatabaseWait
from cloud_bridge.store import migrate
from cloud_bridge.webhook import WebhookSender
from runtime.db import create_durable_engine
from runtime.heap import collect_less_often, freeze_start_up_objects

log = logging.getLogger(__name__)


@dataclass
class BridgeWorker:
    engine: Engine
    ingest: Ingest
    jobs: BridgeJobs
    webhook: WebhookSender | None
    context: BridgeContext


def build_worker(settings: BridgeSettings, engine: Engine) -> BridgeWorker:
    metrics = BridgeMetrics()
    notify = settings.webhook is not None
    sender = (
        WebhookSender(engine, settings.webhook, on_result=lambda outcome: metrics.webhooks.labels(outcome).inc())
        if settings.webhook is not None
        else None
    )
    poke = sender.poke if sender is not None else (lambda: None)
    ingest = Ingest(
        engine,
        settings.broker,
        client_id=settings.worker_id,
        share_group=settings.share_group,
        rules=settings.alerts,
        guideline=settings.blood_pressure_guideline,
        notify=notify,
        opener=settings.opener(),
        metrics=metrics,
        support_bundles_kept=settings.support_bundles_kept,
        gulp_max=settings.gulp_max,
        gulp_wait_s=settings.gulp_wait_s,
        on_committed=lambda outcome: poke() if outcome.alert_changes else None,
    )
    jobs = BridgeJobs(
        engine,
        rules=settings.alerts,
        publisher=ingest,
        notify=notify,
        on_alerts=lambda changes: poke(),
        link=ingest.link,
        dead_letter_retention=timedelta(days=settings.dead_letter_retention_days),
        delivery=settings.delivery(),
    )
    context = BridgeContext(
        engine,
        secret_key=settings.secret_key.get_secret_value(),
        session_lifetime=timedelta(hours=settings.session_hours),
        metrics=metrics,
        publisher=ingest,
        command_ttl=timedelta(seconds=settings.command_ttl_s),
        notify=notify,
        on_alerts=poke,
        alert_rules=settings.alerts,
        blood_pressure_guideline=settings.blood_pressure_guideline,
        dashboard_refresh_s=settings.dashboard_refresh_s,
        broker_link=ingest.link,
        enrolment=settings.enrolment,
        broker_accounts=BrokerAccounts(settings.enrolment.admin) if settings.enrolment.admin is not None else None,
        payload_public_key=settings.payload_public_key(),
        resident_keys=settings.resident_keys,
        time_zone=ZoneInfo(settings.time_zone),
        releases_dir=settings.releases_dir,
        releases_max_bytes=settings.releases_max_bytes,
        delivery=settings.delivery(),
    )
    return BridgeWorker(engine, ingest, jobs, sender, context)


def start_worker(worker: BridgeWorker) -> None:
    worker.ingest.start()
    worker.jobs.start()
    if worker.webhook is not None:
        worker.webhook.start()


def stop_worker(worker: BridgeWorker) -> None:
    worker.jobs.stop()
    if worker.webhook is not None:
        worker.webhook.stop()
    worker.ingest.stop()


@contextmanager
def running_worker(settings: BridgeSettings, engine: Engine) -> Iterator[BridgeWorker]:
    """Start ingest, jobs and the webhook sender; stop them all on the way out."""
    worker = build_worker(settings, engine)
    start_worker(worker)
    try:
        yield worker
    finally:
        stop_worker(worker)


def run_bridge(settings: BridgeSettings) -> None:
    """Run until SIGINT or SIGTERM (uvicorn handles both), then stop cleanly. The API answers at
    once; the worker starts once the database has answered (cloud_bridge/startup.py)."""
    engine = create_durable_engine(settings.database_url)
    worker = build_worker(settings, engine)
    startup = DatabaseWait()
    worker.context.startup = startup
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, worker.context), host=settings.http_host, port=settings.http_port,
                       log_level="warning")
    )

    def bring_up() -> None:
        if not startup.until_reachable(lambda: migrate(engine)):
            return
        freeze_start_up_objects()  # before ingest starts: the collection it runs first would stall it
        collect_less_often()
        start_worker(worker)
        log.info("bridge worker %s started", settings.worker_id)

    starting = threading.Thread(target=bring_up, name="bridge-start", daemon=True)
    starting.start()
    log.info("bridge API on http://%s:%d", settings.http_host, settings.http_port)
    try:
        server.run()
    finally:
        startup.give_up()
        starting.join()
        if startup.ready:
            stop_worker(worker)
        engine.dispose()
