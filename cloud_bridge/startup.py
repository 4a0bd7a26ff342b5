"""A bridge that starts while its database is away waits for it, saying so, instead of exiting.

A running bridge already rides through a database crash (its gulps are re-sent by the kiosks);
at start, migrating is the first thing that needs the database. So the HTTP API comes up at
once and answers `/healthz` with 503 and why, every other path with 503 "starting", while this
retries with a growing pause (tenacity); then the worker starts as it always did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_when_event_set, wait_exponential

log = logging.getLogger(__name__)

# The pause between tries grows 1, 2, 4 … s up to this: a database back after a long outage is
# found within half a minute, and one that stays away costs a log line a half minute.
MAX_PAUSE_S = 30.0


class StartupState(BaseModel):
    status: str  # "starting", "waiting_for_database" or "ok"
    since: datetime
    attempts: int = 0
    last_error: str | None = None


class DatabaseWait:
    """Whether the worker is up yet, for the API; and the waiting itself."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state = StartupState(status="starting", since=clock())
        self._give_up = threading.Event()

    @property
    def state(self) -> StartupState:
        with self._lock:
            return self._state

    @property
    def ready(self) -> bool:
        return self.state.status == "ok"

    def give_up(self) -> None:
        """Stop waiting (the bridge is being stopped)."""
        self._give_up.set()

    def until_reachable(self, first_use: Callable[[], None]) -> bool:
        """Run `first_use` (the migration) until the database answers; False if given up first."""
        retrying = Retrying(
            retry=retry_if_exception_type((OperationalError, InterfaceError)),
            wait=wait_exponential(multiplier=1, max=MAX_PAUSE_S),
            stop=stop_when_event_set(self._give_up),
            before_sleep=self._waiting,
            sleep=self._pause,
            reraise=True,
        )
        try:
            retrying(first_use)
        except (OperationalError, InterfaceError):
            return False  # given up while the database was still away
        with self._lock:
            self._state = StartupState(status="ok", since=self._clock(), attempts=self._state.attempts + 1)
        return not self._give_up.is_set()

    def _pause(self, seconds: float) -> None:
        self._give_up.wait(seconds)  # a stop ends the pause at once

    def _waiting(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome is not None else None
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0] if error else "unknown"
        pause = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
        with self._lock:
            since = self._state.since if self._state.status == "waiting_for_database" else self._clock()
            self._state = StartupState(status="waiting_for_database", since=since,
                                       attempts=retry_state.attempt_number, last_error=reason)
        log.warning("waiting for the database (try %d failed: %s); trying again in %.0f s",
                    retry_state.attempt_number, reason, pause)
