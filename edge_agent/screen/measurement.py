"""The blood-pressure desk: who is measuring now, the cuff's pressure while it inflates, and
the result once the outbox holds it, pushed to every open screen (server-sent events).

A resident identifies (a pseudonym) or chooses to measure without a record; the next new
reading from a cuff is theirs. The desk forgets them after the result, or when `timeout_s`
passes without one, so the next person's reading is never put on their record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from doorstep.contract.clinical import BloodPressureGuideline, category_of
from drivers.ble.blood_pressure import BloodPressureMeasurement
from drivers.plausibility import blood_pressure_suspicions

DeskState = Literal["idle", "waiting", "measuring"]
# Events a slow page has not read yet are dropped past this: a page that stopped reading is gone.
SUBSCRIBER_BACKLOG = 64


@dataclass(frozen=True, slots=True)
class DeskEvent:
    name: Literal["state", "pressure", "result"]
    data: dict[str, Any]


@dataclass
class MeasurementDesk:
    bands: BloodPressureGuideline
    timeout_s: float
    monotonic: Callable[[], float] = time.monotonic
    on_result: Callable[[dict[str, Any]], None] | None = None  # e.g. read it aloud
    _state: DeskState = "idle"
    _subject: str | None = None
    _record: bool = False
    _since: float = 0.0
    _subscribers: set[asyncio.Queue[DeskEvent | None]] = field(default_factory=set)

    # -- the resident, through the screen --

    def begin(self, subject: str | None) -> dict[str, Any]:
        """`subject` None: measure without saving to a record (the reading is still kept, anonymous)."""
        self._state, self._subject, self._record, self._since = "waiting", subject, subject is not None, self.monotonic()
        return self._announce_state()

    def cancel(self) -> dict[str, Any]:
        self._forget()
        return self._announce_state()

    def snapshot(self) -> dict[str, Any]:
        self._expire()
        return {"state": self._state, "record": self._record}

    # -- the agent --

    def subject_now(self) -> str | None:
        """Whose record a new reading goes on now; None: anonymous."""
        self._expire()
        return self._subject if self._state != "idle" else None

    def cuff_pressure(self, pressure: float | None) -> None:
        if pressure is None:
            return
        self._expire()
        if self._state == "waiting":
            self._state = "measuring"
            self._announce_state()
        self._publish(DeskEvent("pressure", {"pressure": round(pressure)}))

    def reading_saved(self, seq: int, reading: BloodPressureMeasurement, subject: str | None) -> None:
        """Called only after the outbox has committed the reading: only now may it say "saved"."""
        unit = reading.unit.value
        systolic, diastolic = reading.systolic, reading.diastolic
        # Implausible numbers (drivers/plausibility.py) get no category: the screen asks to
        # measure again instead of telling a resident what a slipped cuff "means".
        suspect = [s.value for s in blood_pressure_suspicions(reading)]
        category = category_of(systolic, diastolic, unit, self.bands, suspect=suspect)
        result = {
            "seq": seq,
            "unit": unit,
            "systolic": systolic,
            "diastolic": diastolic,
            "pulse_rate": reading.pulse_rate,
            "category": None if category is None else category.value,
            "status": [flag.value for flag in reading.status],
            "suspect": suspect,
            "record": subject is not None,
            "saved": True,
        }
        self._forget()
        self._announce_state()
        self._publish(DeskEvent("result", result))
        if self.on_result is not None:
            self.on_result(result)

    # -- the screens --

    async def events(self) -> AsyncIterator[DeskEvent]:
        """Every event from now on, starting with the current state; ends at `close_streams`."""
        queue: asyncio.Queue[DeskEvent | None] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield DeskEvent("state", self.snapshot())
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.discard(queue)

    def close_streams(self) -> None:
        """End every page's event stream: the server is stopping, and an open stream would hold
        it until its graceful-shutdown timeout. A page's EventSource reconnects by itself."""
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(None)
            except asyncio.QueueFull:
                pass
            self._subscribers.discard(queue)

    def _announce_state(self) -> dict[str, Any]:
        state = self.snapshot()
        self._publish(DeskEvent("state", state))
        return state

    def _publish(self, event: DeskEvent) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)

    def _expire(self) -> None:
        if self._state != "idle" and self.monotonic() - self._since > self.timeout_s:
            self._forget()

    def _forget(self) -> None:
        self._state, self._subject, self._record = "idle", None, False
