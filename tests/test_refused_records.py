"""A record the bridge refuses as breaking the contract is not sent again and again: the bridge
says so in its ack, the kiosk keeps it (REFUSED, for a technician), reports it, and the records
behind it flow on. Real Mosquitto, a real bridge worker, a real agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from cloud_bridge.alerts import Alert
from broker_admin.mosquitto import MosquittoProcess
from contract.topics import KioskTopics, ReadingKind
from edge_agent.doctor import examine
from edge_agent.store.outbox import Outbox, RecordState
from tests.bridge.wire_kiosk import blood_pressure
from tests.support import KIOSK, SITE, Bridge, agent_settings, running_agent, wait_until

# More than the agent's in-flight window (20): refused records must not hold the window.
BROKEN = 25


@pytest.mark.asyncio
async def test_refused_records_are_kept_reported_and_never_block_the_rest(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge: Bridge = bridge_factory(running_broker)
    settings = agent_settings(tmp_path, running_broker, with_cuff=False)
    topic = KioskTopics(SITE, KIOSK).reading(ReadingKind.BLOOD_PRESSURE)
    outbox = Outbox(settings.outbox_path)
    for _ in range(BROKEN):  # what a kiosk with a bug would have saved
        outbox.save(topic, {"unit": "mmHg", "systolic": "high", "diastolic": 80, "mean_arterial_pressure": None})
    good = outbox.save(topic, blood_pressure(120, 80))
    outbox.close()
    assert good is not None
    async with running_agent(settings) as agent:
        assert agent.outbox is not None
        await wait_until(lambda: agent.outbox.counts()[RecordState.REFUSED] == BROKEN, what="the refusals applied")
        await wait_until(lambda: agent.outbox.state_of(good.message_id) == RecordState.DELIVERED, what="the good one")
        assert len(bridge.dead_letters()) == BROKEN  # each sent once: not again after the refusal
        [(seq, _topic, reason)] = agent.outbox.refusals(limit=1)
        assert seq == BROKEN and reason is not None and "payload: systolic" in reason
        snapshot = await agent.snapshot()
        assert snapshot.refused_records == BROKEN and snapshot.outbox["health"].records == 0
    with Session(bridge.engine) as session:
        [alert] = session.exec(select(Alert).where(Alert.kind == "messages_refused")).all()
    assert alert.site == SITE and "payload: systolic" in alert.title
    doctor = {check.name: check for check in examine(settings)}
    assert doctor["outbox refused"].verdict.value == "warning" and "refused 25 record(s)" in doctor["outbox refused"].detail
