"""A serial device on a pseudo-terminal whose port is a symlink, as udev's /dev/serial/by-id/…
names are: `unplug()` closes the pty (the port's path disappears, a reader's reads fail) and
`plug()` makes a new one behind the same name, as a USB reader plugged in again does."""

from __future__ import annotations

import os
import tty
from pathlib import Path


class PtyDevice:
    def __init__(self, port: Path) -> None:
        self.port = port
        self._master: int | None = None
        self._slave: int | None = None
        self.plug()

    def plug(self) -> None:
        self.unplug()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # raw before the driver opens it: a cooked pty rewrites bytes
        self.port.unlink(missing_ok=True)
        self.port.symlink_to(os.ttyname(self._slave))

    def unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def send(self, data: bytes) -> None:
        """Bytes from the device to whoever has the port open."""
        assert self._master is not None, "unplugged"
        os.write(self._master, data)

    def receive(self, timeout_s: float) -> bytes:
        """Bytes sent to the device, waiting up to `timeout_s` for the first."""
        import select

        assert self._master is not None, "unplugged"
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        return os.read(self._master, 4096) if ready else b""

    def close(self) -> None:
        self.unplug()
        self.port.unlink(missing_ok=True)
