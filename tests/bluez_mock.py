"""A BlueZ without a radio for the pairing tests: a private system bus (dbus-daemon) and
python-dbusmock's `bluez5` template serving org.bluez on it.

Debian's python3-dbusmock runs the mock under the system's own Python (it needs dbus-python,
which the virtualenv has no build of); the tests talk to it over the bus with dbus-fast, as
the kiosk does, through the template's org.bluez.Mock helpers (AddAdapter, AddDevice,
PairDevice) and dbusmock's own org.freedesktop.DBus.Mock.AddMethod, which replaces a method
of one object with a few lines of Python run inside the mock (a Pair that fails as BlueZ would).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

MOCK_PYTHON = "/usr/bin/python3"  # Debian's, with python3-dbusmock (./dev test installs it)
ADAPTER = "hci0"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def available() -> str | None:
    """Why the mock cannot run here, or None."""
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed (apt-get install dbus-daemon)"
    check = subprocess.run([MOCK_PYTHON, "-c", "import dbusmock"], capture_output=True, check=False)
    if check.returncode != 0:
        return "python3-dbusmock is not installed (apt-get install python3-dbusmock)"
    return None


@contextmanager
def system_bus_with_bluez(tmp_path: Path) -> Iterator[str]:
    """A dbus-daemon and the BlueZ mock on it; yields its address, also set in
    DBUS_SYSTEM_BUS_ADDRESS for the duration (where the kiosk's code looks for the system bus)."""
    socket = tmp_path / "system_bus_socket"
    config = tmp_path / "system-bus.conf"
    config.write_text(_BUS_CONFIG.format(socket=socket))
    address = f"unix:path={socket}"
    daemon = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    mock: subprocess.Popen[bytes] | None = None
    before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    try:
        _wait_for(socket.exists, "the bus socket")
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
        with (tmp_path / "bluez-mock.log").open("wb") as mock_log:
            mock = subprocess.Popen([MOCK_PYTHON, "-m", "dbusmock", "--system", "--template", "bluez5"],
                                    env=env, stdout=mock_log, stderr=subprocess.STDOUT)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = address
        _wait_for(lambda: asyncio.run(_has_bluez(address)), "org.bluez on the bus")
        yield address
    finally:
        if before is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = before
        for process in filter(None, [mock, daemon]):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if daemon.stderr is not None:
            daemon.stderr.close()


def _wait_for(condition: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(0.05)


async def _has_bluez(address: str) -> bool:
    bus = await MessageBus(bus_address=address).connect()
    try:
        reply = await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                       interface="org.freedesktop.DBus", member="NameHasOwner", signature="s",
                                       body=["org.bluez"]))
        return bool(reply is not None and reply.body and reply.body[0])
    finally:
        bus.disconnect()


class Bluez:
    """The mock's controls, as a test drives them."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def call(self, path: str, interface: str, member: str, signature: str = "", body: list[Any] | None = None
                   ) -> list[Any]:
        reply = await self.bus.call(Message(destination="org.bluez", path=path, interface=interface, member=member,
                                            signature=signature, body=body or []))
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    async def add_adapter(self) -> str:
        [path] = await self.call("/", "org.bluez.Mock", "AddAdapter", "ss", [ADAPTER, "kiosk"])
        return str(path)

    async def add_device(self, address: str, name: str, services: Sequence[str] = ()) -> str:
        """A device advertising `name` and the 16-bit `services` (as BlueZ lists them: full UUIDs)."""
        [path] = await self.call("/", "org.bluez.Mock", "AddDevice", "sss", [ADAPTER, address, name])
        uuids = [f"0000{s}-0000-1000-8000-00805f9b34fb" for s in services]
        await self.set(str(path), "UUIDs", Variant("as", uuids))
        return str(path)

    async def set(self, path: str, name: str, value: Variant) -> None:
        await self.call(path, "org.freedesktop.DBus.Properties", "Set", "ssv", ["org.bluez.Device1", name, value])

    async def get(self, path: str, name: str) -> Any:
        [value] = await self.call(path, "org.freedesktop.DBus.Properties", "Get", "ss", ["org.bluez.Device1", name])
        return value.value

    async def mark_paired(self, address: str) -> None:
        """The kiosk's BlueZ holds keys for it from an earlier pairing."""
        await self.call("/", "org.bluez.Mock", "PairDevice", "ssi", [ADAPTER, address, 0])

    async def replace_pair(self, device_path: str, code: str) -> None:
        """Device1.Pair of this device runs `code` in the mock (dbusmock's AddMethod: `self` is the
        device, `objects` every mock object, `dbus` the dbus-python module)."""
        await self.call(device_path, "org.freedesktop.DBus.Mock", "AddMethod", "sssss",
                        ["org.bluez.Device1", "Pair", "", "", code])

    async def fail_pair(self, device_path: str, error_name: str, message: str) -> None:
        await self.replace_pair(device_path, f"raise dbus.exceptions.DBusException({message!r}, name={error_name!r})")

    async def agents(self) -> list[str]:
        """The agents registered with the AgentManager now (read inside the mock)."""
        await self.call("/org/bluez", "org.freedesktop.DBus.Mock", "AddMethod", "sssss",
                        ["org.bluez.Mock", "Agents", "", "as", "ret = list(self.agent_paths)"])
        [paths] = await self.call("/org/bluez", "org.bluez.Mock", "Agents")
        return list(paths)


@asynccontextmanager
async def bluez(address: str) -> AsyncIterator[Bluez]:
    bus = await MessageBus(bus_address=address).connect()
    try:
        yield Bluez(bus)
    finally:
        bus.disconnect()
