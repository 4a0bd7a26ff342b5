"""A backlog goes many records to a message (docs/protocol.md, Batches), through a real
Mosquitto to a real bridge: stored exactly once, confirmed per record, each stream in order;
a record at rest still goes alone; and a broker whose ACL predates batches gets every record
one by one instead."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from broker_admin.mosquitto import MosquittoProcess
from contract.topics import EventType, ReadingKind
from edge_agent.store.outbox import Outbox, RecordState
from tests.support import agent_settings, running_agent, wait_until
from tests.test_broker_security import KIOSK_ACL, settings_for
from tests.test_outbox_upkeep import MACHINE, READING
from tests.test_uplink_window import TOPICS, Observer

BACKLOG = 400  # per stream


def fill(outbox_path: Path, per_stream: int) -> None:
    backlog = Outbox(outbox_path)
    for n in range(per_stream):
        backlog.save(TOPICS.reading(ReadingKind.BLOOD_PRESSURE), READING)
        backlog.save(TOPICS.event(EventType.LAUNDRY_MACHINE), {**MACHINE, "cycle_count": n})
    backlog.close()


@pytest.mark.asyncio
async def test_a_backlog_drains_in_batches_stored_exactly_once_and_a_reading_at_rest_goes_alone(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"ack_timeout_s": 30.0, "batch_records": 50}
    )
    fill(settings.outbox_path, BACKLOG)
    bridge = bridge_factory(running_broker)
    await wait_until(lambda: bridge.ingest.connected, what="the bridge subscribed")
    observer = Observer(running_broker)
    observer.client.subscribe(TOPICS.event("+"), qos=1)  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    try:
        async with running_agent(settings) as agent:
            assert agent.uplink is not None and agent.outbox is not None
            outbox = agent.outbox
            # Twice mid-way: every record in flight goes again at once, in other batches.
            for _ in range(2):
                await wait_until(lambda: agent.uplink.in_flight > 0, what="records in flight")  # type: ignore[union-attr]
                agent.uplink.request_resend()
                await asyncio.sleep(0.05)
            await wait_until(lambda: outbox.counts()[RecordState.DELIVERED] == 2 * BACKLOG, timeout=60,
                             what="every record confirmed")
            assert bridge.reading_count() == BACKLOG and len(bridge.events()) == BACKLOG  # once each
            backlog_records = set(observer.arrivals)
            agent.outbox.save(TOPICS.reading(ReadingKind.BLOOD_PRESSURE), READING)
            await wait_until(lambda: bridge.reading_count() == BACKLOG + 1, what="the reading at rest")
    finally:
        observer.close()
    arrivals = Counter(observer.arrivals)
    assert len(arrivals) == 2 * BACKLOG + 1 and sum(arrivals.values()) > 2 * BACKLOG  # re-sent, stored once
    # A re-sent copy may still reach the observer after its first copy was confirmed: the
    # backlog is told apart by what it holds, not by when it arrived.
    backlog_sizes = [len(held) for held in observer.messages if set(held) <= backlog_records]
    assert max(backlog_sizes) == 50 and len(backlog_sizes) < 2 * BACKLOG / 10, backlog_sizes
    at_rest = [held for held in observer.messages if not set(held) <= backlog_records]
    assert at_rest == [[(TOPICS.reading(ReadingKind.BLOOD_PRESSURE), at_rest[0][0][1])]]  # alone, on its own topic
    first_seen: dict[str, list[int]] = {}
    for topic, seq in observer.arrivals:
        seen = first_seen.setdefault(topic, [])
        if seq not in seen:
            seen.append(seq)
    assert all(seqs == sorted(seqs) for seqs in first_seen.values())  # each stream first sent in order


@pytest.mark.asyncio
async def test_against_an_acl_without_the_batch_topic_every_record_goes_one_by_one(
    tmp_path: Path, bridge_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An ACL written before batches: the broker refuses the batch (PUBACK 0x87 under MQTT 5),
    the agent says so once, and its records, the refused batch's among them, go singly."""
    passwords, acl = tmp_path / "passwords", tmp_path / "acl"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "kiosk-07", "kiosk pass"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "bridge", "bridge pass"], check=True)
    acl.write_text(KIOSK_ACL.replace("/status\n", "/status\ntopic write doorstep/v1/test-site/kiosk-1/events/+\n"))
    assert "/batch" not in acl.read_text()
    broker = MosquittoProcess.on_free_port(tmp_path / "broker-acl", password_file=passwords, acl_file=acl)
    broker.start()
    try:
        bridge = bridge_factory(broker, broker_settings=settings_for(broker, username="bridge", password="bridge pass"))
        await wait_until(lambda: bridge.ingest.connected, what="the bridge subscribed")
        settings = agent_settings(tmp_path, broker, with_cuff=False).model_copy(
            update={"broker": settings_for(broker, username="kiosk-07", password="kiosk pass"), "ack_timeout_s": 30.0}
        )
        fill(settings.outbox_path, 150)
        with caplog.at_level(logging.DEBUG, logger="edge_agent.uplink"):
            async with running_agent(settings) as agent:
                assert agent.outbox is not None
                outbox = agent.outbox
                await wait_until(lambda: outbox.counts()[RecordState.DELIVERED] == 300, timeout=60,
                                 what="every record confirmed, one by one")
        assert bridge.reading_count() == 150 and len(bridge.events()) == 150 and bridge.dead_letters() == []
        refusals = [r for r in caplog.records if "broker refused a batch" in r.getMessage()]
        assert refusals and all("Not authorized" in r.getMessage() for r in refusals)
        assert [r.levelno for r in refusals if r.levelno > logging.DEBUG] == [logging.WARNING]  # said once
    finally:
        broker.stop()
