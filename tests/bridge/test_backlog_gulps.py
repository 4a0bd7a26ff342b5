"""A worker coming back to a backlog stores it in fewer, bigger gulps: while it is behind (500
messages wait when a gulp is stored), a gulp gathers for as long as the gulp before took to
store (twice over, at most a second), and a gulp holds up to gulp_max (8,000) messages. Each
gulp writes its kiosks' and devices' rows once and pays its statements and commit once, so a
backlog stored in gulps of a thousand or less cost the worker about a quarter more CPU a
message (docs/performance.md, benchmark 5). A worker keeping up stores as before: the first
message after a quiet spell at once, then gulps gathered for gulp_wait_s."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from broker_admin.mosquitto import MosquittoProcess
from cloud_bridge.ingest import GATHER_MAX_S, Ingest, gather_seconds
from cloud_bridge.settings import BridgeSettings
from cloud_bridge.store import Reading, migrate
from runtime.db import create_durable_engine
from tests.bridge.test_subscriptions import published
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure
from tests.support import broker_settings, wait_for

BACKLOG = 8000
KIOSKS = 400  # as a district's backlog after an outage: a gulp writes each kiosk's row once


def test_a_gulp_gathers_longer_only_while_the_worker_is_behind() -> None:
    def gather(streaming: bool, behind: bool, last_store_s: float) -> float:
        return gather_seconds(streaming=streaming, behind=behind, wait_s=0.005, last_store_s=last_store_s)

    assert gather(False, True, 0.5) == 0.0  # after a quiet spell: at once
    assert gather(True, False, 0.2) == 0.005  # keeping up: gulp_wait_s, however long the last store took
    assert gather(True, True, 0.001) == 0.005  # behind, after a quick store
    assert gather(True, True, 0.2) == 0.4  # behind: twice the last store
    assert gather(True, True, 30.0) == GATHER_MAX_S


def test_the_default_gulp_holds_a_backlog_of_thousands() -> None:
    assert BridgeSettings(environment="development").gulp_max == 8000


def test_a_backlog_is_stored_once_in_gulps_bigger_than_a_thousand(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    engine = create_durable_engine(f"sqlite:///{tmp_path / 'bridge.sqlite3'}")
    migrate(engine)
    # The worker's session subscribed, then away while the backlog is published.
    away = Ingest(engine, broker_settings(running_broker), client_id="bridge-1", share_group="bridge")
    away.start()
    wait_for(lambda: away.connected, what="the worker subscribed")
    away.stop()
    kiosks = [WireKiosk(kiosk=f"kiosk-{n}") for n in range(KIOSKS)]
    backlog = [kiosks[n % KIOSKS].reading(blood_pressure(110 + n % 40, 70 + n % 20)) for n in range(BACKLOG)]
    published(running_broker, [(reading.topic, reading.body) for reading in backlog])

    gulps: list[int] = []
    ingest = Ingest(engine, broker_settings(running_broker), client_id="bridge-1", share_group="bridge",
                    on_committed=lambda outcome: gulps.append(len(outcome.valid)))
    ingest.start()
    try:
        def stored() -> int:
            with Session(engine) as db:
                return int(db.exec(select(func.count()).select_from(Reading)).one())

        wait_for(lambda: stored() >= BACKLOG, timeout=120, what="the backlog stored")
    finally:
        ingest.stop()
    assert stored() == BACKLOG
    assert sum(gulps) == BACKLOG, gulps
    assert max(gulps) > 1000, gulps
    engine.dispose()
