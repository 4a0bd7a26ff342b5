"""The blood-pressure desk: who is measuring now, the cuff's pressure while it inflates, and
the result once the outbox holds it, pushed to every open screen (server-sent events).

A resident identifies (a pseudonym) or chooses to measure without a record; the next new
reading from a cuff is theirs. Someone who presses the cuff's start without touching the screen
opens a session without a record. The desk forgets who it was after the result, when the cuff
is lost mid-measurement, or when `timeout_s` passes with neither a begin nor a cuff pressure,
so the next person's reading is never put on their record.

Every end of a session is pushed to the screens as an `ended` event with its reason (issue 18,
item 1: a cuff dropped at 180 mmHg left the page saying "measuring, the result goes on your
record" for ever, and the desk's expiry never reached it). The page shows what the desk will do
with the next reading only from these events, so the screen never promises a record the desk
has forgotten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contract.clinical import BloodPressureCategory, BloodPressureGuideline, category_of
from drivers.ble.blood_pressure import BloodPressureMeasurement
from drivers.plausibility import blood_pressure_suspicions

DeskState = Literal["idle", "waiting", "measuring"]
# How a session ended: its reading saved; its cuff gone mid-measurement (the link dropped, or the
# cuff fell silent); its cuff's session over with no new reading (an undecodable or replayed
# one); nobody measured within `timeout_s`; cancelled at the screen; or replaced by a new begin.
SessionEnd = Literal["finished", "cuff_lost", "no_result", "expired", "cancelled", "replaced"]
# Events a slow page has not read yet are dropped past this: a page that stopped reading is gone.
SUBSCRIBER_BACKLOG = 64
# The expiry timer fires this much after `timeout_s`, so the desk's clock has surely passed it.
EXPIRY_SLACK_S = 0.05
# A result's QR code and receipt are served this long after it, at most: the page goes home
# sooner (screen.idle_reset_s) and says so (cancel), this bounds a page that never does.
RESULT_KEPT_S = 600.0


@dataclass(frozen=True, slots=True)
class DeskEvent:
    name: Literal["state", "pressure", "result", "ended", "scan"]
    data: dict[str, Any]


@dataclass(frozen=True, slots=True, repr=False)
class ShownResult:
    """The result on the screen now, and whose it is, for its QR code and its receipt."""

    seq: int
    result: dict[str, Any]
    subject: str | None  # the resident's pseudonym; None: anonymous
    at: datetime | None  # the kiosk's time of the result, for the receipt; None: its clock is not trusted
    since: float  # monotonic


# What the screen and the voice say a reading means, one rule for both: its category, or
# "unreliable" (numbers the plausibility check doubts: no category, and "not reliable, please
# measure again", never a category beside it; issue 18, item 4), or "none" (a number missing).
Meaning = Literal["normal", "high_normal", "high", "very_high", "unreliable", "none"]


def _meaning(category: BloodPressureCategory | None, systolic: float | None, diastolic: float | None) -> Meaning:
    if category is not None:
        return category.value
    return "none" if systolic is None or diastolic is None else "unreliable"


@dataclass
class MeasurementDesk:
    bands: BloodPressureGuideline
    timeout_s: float
    monotonic: Callable[[], float] = time.monotonic
    on_result: Callable[[dict[str, Any]], None] | None = None  # e.g. read it aloud
    # The kiosk's local time, or None while its clock is not trusted (a Pi has no RTC: a receipt
    # must not tell a doctor a time from 1970).
    wall_clock: Callable[[], datetime | None] = lambda: datetime.now().astimezone()
    _state: DeskState = "idle"
    _subject: str | None = None
    _record: bool = False
    _since: float = 0.0  # the begin, or the cuff's last pressure: someone was there
    _cuff: str | None = None  # the cuff inflating in this session, until its result
    _expiry: asyncio.TimerHandle | None = None
    _last_end: DeskEvent | None = None
    _shown: ShownResult | None = None
    _subscribers: set[asyncio.Queue[DeskEvent | None]] = field(default_factory=set)

    # -- the resident, through the screen --

    def begin(self, subject: str | None) -> dict[str, Any]:
        """`subject` None: measure without saving to a record (the reading is still kept, anonymous)."""
        self._end("replaced")
        self._shown = None  # the next person: the last one's QR code and receipt are gone
        self._state, self._subject, self._record = "waiting", subject, subject is not None
        self._still_there()
        return self._announce_state()

    def cancel(self) -> dict[str, Any]:
        """The page went home: the session ends, and the result shown is forgotten."""
        self._end("cancelled")
        self._shown = None
        return self.snapshot()

    def shown(self, seq: int) -> ShownResult | None:
        """The result numbered `seq`, while it is the one on the screen."""
        shown = self._shown
        if shown is None or shown.seq != seq or self.monotonic() - shown.since > RESULT_KEPT_S:
            return None
        return shown

    def announce(self, event: DeskEvent) -> None:
        """An event for every open screen from outside the desk (a reader's scan)."""
        self._publish(event)

    def snapshot(self) -> dict[str, Any]:
        self._expire()
        return {"state": self._state, "record": self._record}

    # -- the agent --

    def subject_now(self) -> str | None:
        """Whose record a new reading goes on now; None: anonymous."""
        self._expire()
        return self._subject if self._state != "idle" else None

    def cuff_pressure(self, cuff: str, pressure: float | None) -> None:
        """`cuff`: its address. A pressure with nobody at the screen opens a session without a
        record, so the screen can say so and the desk can tell it when the cuff is lost."""
        if pressure is None:
            return
        self._expire()
        if self._state != "measuring":
            self._state = "measuring"
            self._shown = None
            self._announce_state()
        self._cuff = cuff
        self._still_there()
        self._publish(DeskEvent("pressure", {"pressure": round(pressure)}))

    def cuff_session_over(self, cuff: str, *, dropped: bool) -> None:
        """Called after every session with a cuff, however it ended. If that cuff was inflating
        and its result has not come (reading_saved), it never will: the session ends.
        `dropped`: the cuff was lost (the link dropped, or it fell silent; drivers/ble/errors.py)."""
        if self._cuff == cuff:
            self._end("cuff_lost" if dropped else "no_result")

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
            "meaning": _meaning(category, systolic, diastolic),
            "status": [flag.value for flag in reading.status],
            "suspect": suspect,
            "record": subject is not None,
            "resident_code": subject is not None,  # GET /api/bp/result/{seq}/resident-code.svg
            "saved": True,
        }
        self._shown = ShownResult(seq, result, subject, self.wall_clock(), self.monotonic())
        self._publish(DeskEvent("result", result))
        self._end("finished")
        if self.on_result is not None:
            self.on_result(result)

    # -- the screens --

    async def events(self) -> AsyncIterator[DeskEvent]:
        """Every event from now on, starting with the current state; ends at `close_streams`."""
        queue: asyncio.Queue[DeskEvent | None] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield DeskEvent("state", self.snapshot())
            if self._state == "idle" and self._last_end is not None:
                yield self._last_end  # a page that reconnects learns how the last session ended
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

    def _still_there(self) -> None:
        """Someone is at the desk now: `timeout_s` counts from here, and a timer ends the session
        then even if nothing asks (the page must hear of it, not only the next reading)."""
        self._since = self.monotonic()
        if self._expiry is not None:
            self._expiry.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # driven by hand, without a loop: the expiry is found when the desk is asked
        # A little late rather than early: `_expire` compares with the desk's own clock.
        self._expiry = loop.call_later(self.timeout_s + EXPIRY_SLACK_S, self._expire)

    def _expire(self) -> None:
        if self._state != "idle" and self.monotonic() - self._since > self.timeout_s:
            self._end("expired")

    def _end(self, reason: SessionEnd) -> None:
        """End the session, if there is one, and tell every page how (then the idle state)."""
        if self._state == "idle":
            return
        ended = DeskEvent("ended", {"reason": reason, "record": self._record})
        self._forget()
        self._last_end = ended
        self._publish(ended)
        self._announce_state()

    def _forget(self) -> None:
        self._state, self._subject, self._record, self._cuff = "idle", None, False, None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
