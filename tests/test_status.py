"""A kiosk's retained status: "online" when its agent connects, "offline" when it stops or dies."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from broker_admin.mosquitto import MosquittoProcess
from contract.status import KioskState, Status
from contract.topics import KioskTopics
from runtime.mqtt import make_client
from tests.support import KIOSK, SITE, broker_settings


def watch_status(broker: MosquittoProcess) -> tuple[mqtt.Client, queue.Queue[Status]]:
    statuses: queue.Queue[Status] = queue.Queue()
    client = make_client("status-watcher", broker_settings(broker))
    client.on_message = lambda _c, _u, message: statuses.put(Status.model_validate_json(message.payload))
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(KioskTopics(SITE, KIOSK).status, qos=1)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client, statuses


def start_agent(tmp_path: Path, broker: MosquittoProcess) -> subprocess.Popen[bytes]:
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": SITE,
                "kiosk": KIOSK,
                "outbox_path": str(tmp_path / "outbox.sqlite3"),
                "broker": {"host": broker.host, "port": broker.port},
            }
        )
    )
    return subprocess.Popen([sys.executable, "-m", "doorstep", "agent", "--config", str(config)])


def test_online_is_retained_and_the_last_will_says_offline_when_the_agent_is_killed(
    tmp_path: Path, running_broker: MosquittoProcess
) -> None:
    agent = start_agent(tmp_path, running_broker)
    watcher, statuses = watch_status(running_broker)
    try:
        assert statuses.get(timeout=15).state is KioskState.ONLINE
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        will = statuses.get(timeout=15)
        assert will.state is KioskState.OFFLINE
        assert will.at is None  # the Last Will was written at connect time
    finally:
        watcher.disconnect()
        watcher.loop_stop()
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    # Retained: a technician's dashboard that connects later learns it at once.
    late_watcher, late_statuses = watch_status(running_broker)
    try:
        assert late_statuses.get(timeout=10).state is KioskState.OFFLINE
    finally:
        late_watcher.disconnect()
        late_watcher.loop_stop()


def test_a_clean_stop_says_offline_itself(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    agent = start_agent(tmp_path, running_broker)
    watcher, statuses = watch_status(running_broker)
    try:
        assert statuses.get(timeout=15).state is KioskState.ONLINE
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=15) == 0
        goodbye = statuses.get(timeout=10)
        assert goodbye.state is KioskState.OFFLINE
        assert goodbye.at is not None
    finally:
        watcher.disconnect()
        watcher.loop_stop()
        if agent.poll() is None:
            agent.kill()
            agent.wait()
