"""`doorstep bridge`: ingest and the HTTP API in one process."""

from __future__ import annotations

import logging

import uvicorn
from sqlalchemy import Engine

from doorstep.db import create_durable_engine
from cloud_bridge.api import create_app
from cloud_bridge.ingest import Ingest
from cloud_bridge.settings import BridgeSettings
from cloud_bridge.store import migrate

log = logging.getLogger(__name__)


def build_ingest(settings: BridgeSettings, engine: Engine) -> Ingest:
    return Ingest(
        engine,
        settings.broker,
        client_id=settings.client_id,
        share_group=settings.share_group,
        batch_max=settings.batch_max,
        batch_wait_s=settings.batch_wait_s,
    )


def run_bridge(settings: BridgeSettings) -> None:
    """Run until SIGINT or SIGTERM (uvicorn handles both), then stop ingest cleanly."""
    engine = create_durable_engine(settings.database_url)
    migrate(engine)
    ingest = build_ingest(settings, engine)
    ingest.start()
    try:
        server = uvicorn.Server(
            uvicorn.Config(create_app(engine), host=settings.http_host, port=settings.http_port, log_level="warning")
        )
        log.info("bridge API on http://%s:%d", settings.http_host, settings.http_port)
        server.run()
    finally:
        ingest.stop()
        engine.dispose()
