"""Errors at a limit (a full disk, a read-only outbox) logged once per condition, with a count.

A kiosk on a full disk fails every save, every telemetry tick and every pass of the uplink:
logged one by one, that was about 25,000 lines a minute with ~620 tracebacks (issue 23), which
buries the one line a technician needs and, on a shared disk, makes the log itself fill it. So
a condition is logged when it starts (with its error), reminded with a count while it lasts,
and logged again when it clears. Any other error is not a limit: the caller logs it as before.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

# SQLite's primary result codes for a storage limit (https://www.sqlite.org/rescode.html):
# SQLITE_READONLY 8, SQLITE_IOERR 10, SQLITE_FULL 13, SQLITE_CANTOPEN 14.
_SQLITE_LIMITS = {8: "read-only", 10: "disk I/O error", 13: "disk full", 14: "cannot open the file"}
_OS_LIMITS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk full", errno.EROFS: "read-only", errno.EIO: "disk I/O error"}


def storage_limit(error: BaseException) -> str | None:
    """The limit `error` reports ('disk full', 'read-only', ...), or None if it is not one."""
    found: BaseException | None = error
    while found is not None:
        if isinstance(found, DBAPIError) and found.orig is not None:
            found = found.orig
            continue
        if isinstance(found, sqlite3.Error):
            return _SQLITE_LIMITS.get(getattr(found, "sqlite_errorcode", -1) & 0xFF)
        if isinstance(found, OSError):
            return _OS_LIMITS.get(found.errno or 0)
        found = found.__cause__
    return None


@dataclass
class _Condition:
    limit: str
    since: float
    failures: int = 1
    reminded_at: float = 0.0
    reminded_failures: int = 1


class ConditionLog:
    def __init__(self, logger: logging.Logger, *, level: int = logging.ERROR, remind_every_s: float = 600.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._level = level
        self._remind_every_s = remind_every_s
        self._monotonic = monotonic
        self._conditions: dict[str, _Condition] = {}
        self._lock = threading.Lock()  # saves fail in threads (asyncio.to_thread) and on the loop

    def failed(self, what: str, error: BaseException) -> bool:
        """`what` ('saving telemetry') failed with `error`. True if it is a storage limit, now
        logged (once, then a count every `remind_every_s`); False: not a limit, the caller logs it."""
        limit = storage_limit(error)
        if limit is None:
            return False
        self.at_limit(what, limit, error.__class__.__name__ + ": " + (str(error).splitlines() or [""])[0])
        return True

    def at_limit(self, what: str, limit: str, detail: str) -> None:
        """`what` met `limit` once more: logged when the condition begins, then counted."""
        now = self._monotonic()
        with self._lock:
            condition = self._conditions.get(what)
            if condition is None or condition.limit != limit:
                self._conditions[what] = _Condition(limit, since=now, reminded_at=now)
                self._log.log(self._level, "%s failed: %s (%s). Logged once: a count follows every %.0f s until it "
                              "clears.", what, limit, detail, self._remind_every_s)
                return
            condition.failures += 1
            if now - condition.reminded_at < self._remind_every_s:
                return
            self._log.log(self._level, "%s still failing: %s, %d time(s) in the last %.0f s, %d since it began %.0f s "
                          "ago", what, limit, condition.failures - condition.reminded_failures,
                          now - condition.reminded_at, condition.failures, now - condition.since)
            condition.reminded_at, condition.reminded_failures = now, condition.failures

    def succeeded(self, what: str) -> None:
        """`what` worked: a condition it was in has cleared."""
        if what not in self._conditions:  # the common case, without the lock
            return
        with self._lock:
            condition = self._conditions.pop(what, None)
        if condition is not None:
            self._log.log(min(self._level, logging.WARNING), "%s works again: %s cleared after %d failure(s) over "
                          "%.0f s", what, condition.limit, condition.failures, self._monotonic() - condition.since)
