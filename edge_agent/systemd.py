"""The systemd notification protocol (sd_notify(3)): READY=1 at start, WATCHDOG=1 while alive.

A datagram to the socket systemd names in $NOTIFY_SOCKET; no library needed. Outside systemd
(no $NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` (e.g. "READY=1"); False if not under systemd or the socket is gone."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket: the name starts with a NUL byte
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.connect(address)
            sender.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of WatchdogSec= (systemd's advice), or None when no watchdog is asked for."""
    usec = (environ if environ is not None else os.environ).get("WATCHDOG_USEC")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1_000_000 / 2
