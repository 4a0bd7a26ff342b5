"""sd_notify over a real unix datagram socket, as systemd would listen on it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker_admin.mosquitto import MosquittoProcess
from edge_agent.systemd import notify, watchdog_interval_s
from tests.support import agent_settings, running_agent, wait_until


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.setblocking(False)
    yield listener, path
    listener.close()


def received(listener: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(listener.recv(1024).decode())
        except BlockingIOError:
            return messages


def test_notify_sends_to_the_named_socket_and_is_silent_outside_systemd(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    listener, path = systemd_socket
    assert notify("READY=1", {"NOTIFY_SOCKET": path})
    assert received(listener) == ["READY=1"]
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": path + ".gone"})


def test_the_watchdog_interval_is_half_of_watchdog_sec() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "60000000"}) == 30
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None


@pytest.mark.asyncio
async def test_the_agent_says_ready_and_keeps_feeding_the_watchdog(
    tmp_path: Path, broker: MosquittoProcess, systemd_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, path = systemd_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # WatchdogSec=0.4: a ping every 0.2 s
    messages: list[str] = []
    async with running_agent(agent_settings(tmp_path, broker, with_cuff=False)):
        await wait_until(lambda: messages.extend(received(listener)) or messages.count("WATCHDOG=1") >= 3,
                         timeout=5, what="three watchdog pings")
    assert messages[0] == "READY=1"


def test_the_unit_restarts_the_agent_and_watches_it() -> None:
    """deploy/doorstep-agent.service as systemd reads it (its own INI dialect, parsed loosely)."""
    unit = (Path(__file__).resolve().parents[1] / "deploy" / "doorstep-agent.service").read_text()
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    settings = dict(
        line.split("=", 1) for line in service.splitlines() if line and not line.startswith("#") and "=" in line
    )
    assert settings["Type"] == "notify"  # READY=1 from the agent, as test_the_agent_says_ready... shows
    assert settings["Restart"] == "always" and int(settings["WatchdogSec"]) > 0
    assert settings["ExecStart"].split()[1:] == ["agent", "--config", "/etc/doorstep/agent.yaml"]
