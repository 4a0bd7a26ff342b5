""""呼叫工作人员 / Call staff": a press saves a staff_called event in the outbox, sent like every
event; the bridge raises an alert the station's staff see. One open call per kiosk: a press within
`repeat_s` of the last call saves nothing and is told staff are already called (an anxious
resident pressing five times is one call, not five alerts)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Literal

from contract.payloads import StaffCalledEvent
from contract.topics import EventType, KioskTopics
from edge_agent.store.outbox import Outbox

Outcome = Literal["called", "already_called"]


class StaffCall:
    def __init__(
        self,
        outbox: Outbox,
        topics: KioskTopics,
        *,
        repeat_s: float,
        saved: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`saved` is called after the event is committed (to wake the uplink)."""
        self._outbox = outbox
        self._topic = topics.event(EventType.STAFF_CALLED)
        self._repeat_s = repeat_s
        self._saved = saved
        self._clock = clock
        self._last_call: float | None = None

    def call(self, screen: str) -> Outcome:
        """Call staff to this kiosk from `screen` (a screen's name, e.g. bp-cuff). Raises on a
        storage failure: the page then says the call did not go out."""
        now = self._clock()
        if self._last_call is not None and now - self._last_call < self._repeat_s:
            return "already_called"
        self._outbox.save(self._topic, StaffCalledEvent(call_id=uuid.uuid4(), screen=screen))
        self._last_call = now
        self._saved()
        return "called"
