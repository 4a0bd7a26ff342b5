"""Two and three bridge workers, real processes on one real Mosquitto, split the kiosks' load
through the MQTT 5 shared subscription. One is SIGKILLed mid-stream: every reading is stored
once, none twice, and every kiosk forgets only what was stored."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from cloud_bridge.settings import DEVELOPMENT_SECRET
from cloud_bridge.store import Reading
from broker_admin.mosquitto import MosquittoProcess
from contract.payloads import DeviceIdentity
from contract.topics import KioskTopics, ReadingKind
from runtime.db import create_durable_engine
from edge_agent.settings import AgentSettings
from edge_agent.store.outbox import Outbox, RecordState
from tests.bridge.wire_kiosk import blood_pressure
from tests.bridge.workers import worker_processes
from tests.support import SITE, api_token, broker_settings, running_agent, wait_until

KIOSKS = 6
READINGS_PER_KIOSK = 250  # a backlog after a day offline, small enough for CI
CUFF = DeviceIdentity(model="omron", address="A4:C1:38:12:34:56")


def prefilled_kiosk(tmp_path: Path, broker: MosquittoProcess, index: int) -> AgentSettings:
    kiosk = f"kiosk-{index}"
    path = tmp_path / f"{kiosk}.sqlite3"
    outbox = Outbox(path)
    topic = KioskTopics(SITE, kiosk).reading(ReadingKind.BLOOD_PRESSURE)
    for n in range(READINGS_PER_KIOSK):
        outbox.save(topic, blood_pressure(110 + n % 50, 70 + n % 20), device=CUFF)
    outbox.close()
    return AgentSettings(site=SITE, kiosk=kiosk, outbox_path=path, broker=broker_settings(broker), ack_timeout_s=1.0)


@pytest.mark.asyncio
@pytest.mark.timeout(240)
@pytest.mark.parametrize("worker_count", [2, 3])
async def test_workers_share_the_load_and_a_killed_one_loses_nothing(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_database: str, worker_count: int
) -> None:
    engine = create_durable_engine(bridge_database)
    workers = worker_processes(tmp_path, running_broker, bridge_database, worker_count)
    total = KIOSKS * READINGS_PER_KIOSK
    kiosks = [prefilled_kiosk(tmp_path, running_broker, i) for i in range(1, KIOSKS + 1)]

    def stored() -> int:
        with Session(engine) as session:
            return int(session.exec(select(func.count()).select_from(Reading)).one())

    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_serving()
        await asyncio.sleep(0.5)  # every worker's subscription in place before the flood
        async with AsyncExitStack() as stack:
            agents = [await stack.enter_async_context(running_agent(settings)) for settings in kiosks]
            await wait_until(lambda: stored() >= total // 5, timeout=60, what="a fifth stored")
            victim = workers[0]
            victim.kill()
            killed_at = stored()
            survivors = workers[1:]
            started = time.monotonic()
            await wait_until(lambda: stored() == total, timeout=120, what=f"all {total} readings stored")
            drained_s = time.monotonic() - started

            def all_delivered() -> bool:
                return all(agent.outbox.counts()[RecordState.DELIVERED] == READINGS_PER_KIOSK for agent in agents)  # type: ignore[union-attr]

            await wait_until(all_delivered, timeout=60, what="every kiosk told of every reading")
        with Session(engine) as session:
            per_kiosk = dict(session.exec(select(Reading.kiosk, func.count()).group_by(Reading.kiosk)).all())
            distinct_seqs = session.exec(
                select(func.count()).select_from(select(Reading.kiosk, Reading.seq).distinct().subquery())
            ).one()
            assert session.exec(select(func.count()).select_from(Reading).where(col(Reading.subject).is_not(None))).one() == 0
        assert per_kiosk == {f"kiosk-{i}": READINGS_PER_KIOSK for i in range(1, KIOSKS + 1)}
        assert distinct_seqs == total  # no reading twice, under another id or otherwise
        token = api_token(engine, DEVELOPMENT_SECRET, "read_only")
        shares = [worker.stored(token) for worker in survivors]
        assert all(share > 0 for share in shares), f"a surviving worker stored nothing: {shares}"
        print(f"\n{worker_count} workers: {killed_at}/{total} stored when {victim.name} was killed; "
              f"the rest in {drained_s:.1f} s; survivors stored {shares}")
    finally:
        for worker in workers:
            worker.stop()
        engine.dispose()
