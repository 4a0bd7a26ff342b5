"""The kiosk's alarms: the conditions at its limits that someone must come and fix (its outbox
over budget with health readings, its disk full, its saves failing), as the set that holds now
(contract/alarms.py). The uplink publishes it retained, ahead of any backlog
(docs/protocol.md, Alarms): nothing here goes through the outbox, which is what is failing.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from contract.alarms import Alarm, AlarmCondition, Alarms
from edge_agent.store.outbox import Outbox

log = logging.getLogger(__name__)

# Below this much free space on the outbox's filesystem the disk is full: a save takes a few
# pages and its WAL frames, a checkpoint more, and SQLite needs room for its journals.
DISK_FULL_BELOW_BYTES: Final = 1024 * 1024
# How often the conditions are looked at, besides after every save: well within the minute an
# alarm has to reach the cloud.
CHECK_EVERY_S: Final = 5.0
# What a failed save raises when the storage, not the record, is at fault.
STORAGE_ERRORS: Final = (OSError, sqlite3.Error, SQLAlchemyError)


def free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


class AlarmWatch:
    """The current set of conditions, and when each began. `check()` from any thread."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        disk_free: Callable[[Path], int | None] = free_bytes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._outbox = outbox
        self._disk_free = disk_free
        self._clock = clock
        self._lock = threading.Lock()
        self._since: dict[AlarmCondition, datetime] = {}
        self._words: dict[AlarmCondition, str] = {}
        self._save_failure: str | None = None  # the last save's error; None once one succeeds
        self._published: frozenset[AlarmCondition] | None = None

    @contextmanager
    def saving(self) -> Iterator[None]:
        """Around a save to the outbox: a storage failure raises cannot_save, a success clears it."""
        try:
            yield
        except STORAGE_ERRORS as error:
            said = str(error).splitlines()
            with self._lock:
                self._save_failure = type(error).__name__ + (f": {said[0][:300]}" if said else "")
            raise
        else:
            with self._lock:
                self._save_failure = None

    def _conditions(self) -> dict[AlarmCondition, str]:
        found: dict[AlarmCondition, str] = {}
        try:
            if self._outbox.health_over_budget:
                found[AlarmCondition.OUTBOX_FULL] = (
                    f"undelivered health readings exceed the outbox budget of {self._outbox.limits.budget_bytes} bytes:"
                    " kept, while nothing else can be")
        except STORAGE_ERRORS as error:  # the database itself fails: the saves will say so too
            log.debug("could not ask the outbox for its budget: %s", error)
        free = self._disk_free(self._outbox.path.parent)
        if free is not None and free < DISK_FULL_BELOW_BYTES:
            found[AlarmCondition.DISK_FULL] = f"{free} bytes free on the outbox's disk: too little to save a reading"
        with self._lock:
            failure = self._save_failure
        if failure is not None:
            found[AlarmCondition.CANNOT_SAVE] = f"the last save failed: {failure}"
        return found

    def check(self) -> Alarms | None:
        """The set now if it differs from the one last returned (to publish), else None."""
        found = self._conditions()
        now = self._clock()
        with self._lock:
            for condition in list(self._since):
                if condition not in found:
                    del self._since[condition]
                    log.warning("alarm cleared: %s", condition)
            for condition, words in found.items():
                if condition not in self._since:
                    self._since[condition] = now
                    log.critical("ALARM %s: %s", condition, words)
            self._words = found
            conditions = frozenset(found)
            if conditions == self._published:
                return None
            self._published = conditions
            return self._current(now)

    def current(self) -> Alarms:
        with self._lock:
            return self._current(self._clock())

    def _current(self, now: datetime) -> Alarms:
        return Alarms(at=now, alarms=[Alarm(condition=c, since=self._since[c], message=self._words[c])
                                      for c in AlarmCondition if c in self._since])
