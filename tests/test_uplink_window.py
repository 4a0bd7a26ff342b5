"""A backlog drains through the agent's windows, never more than a window at once, each
stream in sequence order: a real Mosquitto, the bridge, and an observer on the broker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from broker_admin.mosquitto import MosquittoProcess
from contract.batch import split_batch
from contract.topics import KioskTopics, ReadingKind
from runtime.mqtt import make_client
from edge_agent.store.outbox import Outbox, RecordClass, RecordState
from tests.support import KIOSK, SITE, agent_settings, broker_settings, running_agent, wait_until
from tests.test_outbox_upkeep import READING

TOPICS = KioskTopics(SITE, KIOSK)
STREAMS = {TOPICS.reading(ReadingKind.BLOOD_PRESSURE): READING,
           TOPICS.reading(ReadingKind.SPO2): {"spo2": 97.0, "pulse_rate": 64.0}}
BACKLOG = 300  # per stream: a few days of a busy station offline
WINDOW = 20


class Observer:
    """Every reading as the broker delivers it, alone or in a batch, in arrival order; and
    each message's records."""

    def __init__(self, broker: MosquittoProcess) -> None:
        self.arrivals: list[tuple[str, int]] = []
        self.messages: list[list[tuple[str, int]]] = []
        self._lock = threading.Lock()
        self.client = make_client("window-observer", broker_settings(broker))
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([(TOPICS.reading("+"), 1), (TOPICS.batch, 1)])  # type: ignore[arg-type]
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        body = bytes(message.payload)
        records = ([(r.topic, r.body) for r in split_batch(message.topic, body)] if message.topic == TOPICS.batch
                   else [(message.topic, body)])
        held = [(topic, json.loads(body)["seq"]) for topic, body in records]
        with self._lock:
            self.arrivals += held
            self.messages.append(held)
    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.asyncio
@pytest.mark.parametrize(("window", "publish_window"), [(WINDOW, WINDOW), (120, 5)])
async def test_a_backlog_drains_through_the_window_in_order_per_stream(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any, window: int, publish_window: int
) -> None:
    """Two windows: records unconfirmed by the bridge, and within them records the broker has
    not PUBACKed. Each holds; the first is used, not one PUBACK window at a time."""
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"inflight_window": window, "publish_window": publish_window,
                "ack_timeout_s": 30.0}  # no re-send muddles the order
    )
    backlog = Outbox(settings.outbox_path)
    for n in range(BACKLOG):
        for topic, payload in STREAMS.items():
            backlog.save(topic, payload)
    backlog.close()
    bridge = bridge_factory(running_broker)
    observer = Observer(running_broker)
    await asyncio.sleep(0.3)
    peak = 0
    try:
        async with running_agent(settings) as agent:
            started = time.monotonic()
            assert agent.uplink is not None and agent.outbox is not None
            while agent.outbox.depth()[RecordClass.HEALTH][0] > 0:
                peak = max(peak, agent.uplink.in_flight)
                assert agent.uplink.in_flight <= window
                assert agent.uplink.awaiting_puback <= publish_window
                assert time.monotonic() - started < 60, "the backlog did not drain in a minute"
                await asyncio.sleep(0.005)
            drained_s = time.monotonic() - started
            await wait_until(lambda: bridge.reading_count() == 2 * BACKLOG, what="every reading in the bridge")
            assert agent.outbox.counts()[RecordState.DELIVERED] == 2 * BACKLOG
    finally:
        observer.close()
    print(f"{2 * BACKLOG} records drained in {drained_s:.2f} s ({2 * BACKLOG / drained_s:.0f}/s), "
          f"in flight at most {peak}")
    if window == publish_window:
        assert peak == window  # the window is used, not one at a time
    else:
        assert peak > publish_window  # records wait for the bridge beyond the broker's window
    first_seen: dict[str, list[int]] = defaultdict(list)
    for topic, seq in observer.arrivals:
        if seq not in first_seen[topic]:
            first_seen[topic].append(seq)
    for topic in STREAMS:
        assert first_seen[topic] == sorted(first_seen[topic]) and len(first_seen[topic]) == BACKLOG, topic


@pytest.mark.asyncio
async def test_while_the_bridge_is_away_the_kiosk_probes_instead_of_resending_its_window(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"inflight_window": WINDOW, "ack_timeout_s": 0.2, "resend_max_s": 30}
    )
    backlog = Outbox(settings.outbox_path)
    for _ in range(50):
        backlog.save(TOPICS.reading(ReadingKind.BLOOD_PRESSURE), READING)
    backlog.close()
    observer = Observer(running_broker)
    await asyncio.sleep(0.3)
    try:
        async with running_agent(settings) as agent:
            assert agent.uplink is not None and agent.outbox is not None
            await asyncio.sleep(6)  # no bridge: nobody acks
            sent_while_away = len(observer.arrivals)
            # Re-sending the window every ack timeout would be 20 per 0.2 s: 600 in 6 s. After
            # three silent timeouts (the window sent three times, 0.6 s) one record goes at a
            # time, waiting 0.2, 0.4, 0.8, 1.6, 3.2 s: by now the next probe is seconds away.
            assert 3 * WINDOW <= sent_while_away <= 3 * WINDOW + 6, sent_while_away
            assert agent.uplink.probing and agent.uplink.resend_after_s >= 3.2
            # A worker announces itself once subscribed: the kiosk does not wait for its next probe.
            bridge = bridge_factory(running_broker)
            await wait_until(lambda: bridge.ingest.connected, what="the bridge subscribed")
            back = time.monotonic()
            await wait_until(lambda: agent.outbox.counts()[RecordState.DELIVERED] == 50, what="every record confirmed")
            assert time.monotonic() - back < 1.5, "the kiosk waited for its probe instead of the bridge's announcement"
            assert bridge.reading_count() == 50 and not agent.uplink.probing
    finally:
        observer.close()
