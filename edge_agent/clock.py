"""Is the kiosk's clock to be believed? A Raspberry Pi has no battery-backed clock: it boots
with the time it last saved (or 1970) and jumps when NTP catches up.

The kernel knows: adjtimex(2) returns TIME_ERROR while the clock is not synchronised
(STA_UNSYNC set, which NTP/timesyncd clear once they have disciplined it). Records saved
meanwhile are marked `kiosk_clock_trusted: false` on the wire, and their age is never used to
expire them. Sequence numbers, not times, order the outbox, so a jump cannot reorder it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# adjtimex(2): the return value when the clock is not synchronised.
TIME_ERROR = 5


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux): the leading fields, then padding for the rest;
    # modes = 0 makes adjtimex a pure read.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


def kernel_clock_synchronised() -> bool | None:
    """True/False from the kernel; None where adjtimex is not available (not Linux)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()
    state = adjtimex(ctypes.byref(timex))
    if state < 0:
        return None
    return state != TIME_ERROR


class ClockWatch:
    """The kiosk's belief in its own clock, re-checked by the agent's `time-sanity` job."""

    def __init__(self, check: Callable[[], bool | None] = kernel_clock_synchronised) -> None:
        self._check = check
        self.trusted = True
        self.refresh()

    def refresh(self) -> bool:
        # Unknown (not Linux) counts as trusted: there is nothing better to go on.
        trusted = self._check() is not False
        if trusted != self.trusted:
            if trusted:
                log.info("the kiosk's clock is synchronised: new records carry a trusted time")
            else:
                log.warning("the kiosk's clock is NOT synchronised: records are marked kiosk_clock_trusted=false")
        self.trusted = trusted
        return trusted
