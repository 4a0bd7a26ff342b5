"""A kiosk's alarms through real parts (the agent, its SQLite outbox, paho, a real Mosquitto,
the bridge): over its budget with the bridge away, the alarm is at the broker before any of the
backlog, opens its alert within a minute of the bridge coming back, and resolves once the
condition clears (issue 23, item 1; docs/protocol.md, Alarms)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlmodel import Session, select

from cloud_bridge.alerts import Alert, AlertState
from broker_admin.mosquitto import MosquittoProcess
from contract.alarms import AlarmCondition, decode_alarms
from contract.payloads import BloodPressurePayload, DeviceIdentity
from contract.topics import Channel, KioskTopics, ReadingKind, parse_topic
from runtime.mqtt import make_client
from edge_agent.settings import OutboxSettings
from tests.support import CUFF_ADDRESS, KIOSK, SITE, Bridge, agent_settings, broker_settings, running_agent, wait_until

TOPICS = KioskTopics(SITE, KIOSK)
CUFF = DeviceIdentity(model="simulated", address=CUFF_ADDRESS)
# Health readings waiting when the bridge comes back: far over a 0.05 MB budget (~70 readings).
BACKLOG = 1_000


class BrokerOrder:
    """What reaches the broker on the kiosk's alarms, readings and batch topics, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: list[tuple[Channel, bytes]] = []

    def on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._seen.append((parse_topic(message.topic).channel, bytes(message.payload)))

    def seen(self, since: int = 0) -> list[tuple[Channel, bytes]]:
        with self._lock:
            return self._seen[since:]

    def alarms(self, since: int = 0) -> list[frozenset[AlarmCondition]]:
        return [decode_alarms(body).conditions for channel, body in self.seen(since) if channel is Channel.ALARMS]


@contextmanager
def broker_order(broker: MosquittoProcess) -> Iterator[BrokerOrder]:
    order = BrokerOrder()
    subscribed = threading.Event()
    client = make_client("test-alarms-order", broker_settings(broker))
    client.on_message = order.on_message
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(
        [(TOPICS.alarms, 1), (f"{TOPICS.root}/{Channel.READINGS}/+", 1), (TOPICS.batch, 1)])
    client.on_subscribe = lambda _c, _u, _mid, reasons, _p: subscribed.set() if all(
        not r.is_failure for r in reasons) else None
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert subscribed.wait(5), "the test's subscription was not granted"
        yield order
    finally:
        client.disconnect()
        client.loop_stop()


def alert_state(bridge: Bridge, kind: str) -> str | None:
    with Session(bridge.engine) as session:
        found = session.exec(select(Alert).where(Alert.kind == kind).order_by(Alert.id)).all()  # type: ignore[arg-type]
    return found[-1].state if found else None


@pytest.mark.asyncio
async def test_over_its_budget_with_the_bridge_away_the_alarm_goes_first_opens_and_resolves(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory
) -> None:
    away = bridge_factory(running_broker)
    await wait_until(lambda: away.ingest.connected, what="the bridge's subscriptions")
    away.ingest.stop()  # its persistent session stays: the broker queues for it
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
        update={"outbox": OutboxSettings(budget_mb=0.05)})
    reading = BloodPressurePayload(unit="mmHg", systolic=121, diastolic=79, mean_arterial_pressure=None)  # type: ignore[arg-type]
    with broker_order(running_broker) as order:
        async with running_agent(settings) as agent:
            outbox = agent.outbox
            assert outbox is not None
            for _ in range(BACKLOG):
                await asyncio.to_thread(outbox.save, TOPICS.reading(ReadingKind.BLOOD_PRESSURE), reading, device=CUFF)
            over_at = time.monotonic()
            await wait_until(lambda: any(AlarmCondition.OUTBOX_FULL in a for a in order.alarms()), timeout=60,
                             what="the outbox_full alarm at the broker")
            raised_in_s = time.monotonic() - over_at
        # The agent starts again, the backlog still waiting: on connect its alarms go before any record.
        restarted_at = len(order.seen())
        async with running_agent(settings) as agent:
            await wait_until(lambda: any(c is not Channel.ALARMS for c, _ in order.seen(restarted_at)), timeout=30,
                             what="records sent after the restart")
            first_channel, first_body = order.seen(restarted_at)[0]
            assert first_channel is Channel.ALARMS
            assert decode_alarms(first_body).conditions == {AlarmCondition.OUTBOX_FULL}
            bridge = bridge_factory(running_broker)
            back = time.monotonic()
            await wait_until(lambda: alert_state(bridge, "outbox_full") == AlertState.OPEN, timeout=60,
                             what="the outbox_full alert")
            opened_in_s = time.monotonic() - back
            await wait_until(lambda: bridge.reading_count() == BACKLOG, timeout=120, what="the backlog stored")
            # Delivered, the health readings are no longer over the budget: the alarm clears.
            await wait_until(lambda: alert_state(bridge, "outbox_full") == AlertState.RESOLVED, timeout=60,
                             what="the outbox_full alert resolved")
            assert order.alarms()[-1] == frozenset()
    print(f"alarm at the broker {raised_in_s:.1f} s after the backlog was saved; "
          f"alert open {opened_in_s:.1f} s after the bridge came back")


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A real, small filesystem (tmpfs) at `path`: mounting needs root."""
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem refuses (ENOSPC)."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


@pytest.mark.asyncio
async def test_a_full_disk_opens_disk_full_and_cannot_save_and_room_again_resolves_them(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory
) -> None:
    bridge = bridge_factory(running_broker)
    with small_disk(tmp_path / "disk") as disk, broker_order(running_broker) as order:
        settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(
            update={"outbox_path": disk / "outbox.sqlite3", "telemetry_every_s": 1.0})
        async with running_agent(settings):
            await wait_until(lambda: order.alarms() == [frozenset()], what="the first, empty, set")
            filler = fill(disk)
            full_at = time.monotonic()
            both = {AlarmCondition.DISK_FULL, AlarmCondition.CANNOT_SAVE}
            await wait_until(lambda: any(both <= a for a in order.alarms()), timeout=60, what="both alarms at the broker")
            await wait_until(lambda: alert_state(bridge, "disk_full") == alert_state(bridge, "cannot_save")
                             == AlertState.OPEN, timeout=60, what="both alerts open")
            opened_in_s = time.monotonic() - full_at
            filler.unlink()
            await wait_until(lambda: alert_state(bridge, "disk_full") == alert_state(bridge, "cannot_save")
                             == AlertState.RESOLVED, timeout=60, what="both alerts resolved")
            assert order.alarms()[-1] == frozenset()
    print(f"disk_full and cannot_save open {opened_in_s:.1f} s after the disk filled")
