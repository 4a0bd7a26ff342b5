"""The agent's apscheduler 3.x scheduler, made safe for a clock that jumps, and what its jobs did.

apscheduler 3.x schedules by the wall clock, and a Raspberry Pi's wall clock jumps (no RTC:
it boots at the time it last saved, or 1970, and NTP steps it later). Out of the box:
- a jump **forward** makes `Job._get_run_times` list every missed run one interval at a time
  before it coalesces them: for the 0.5 s `outbox-flush` job that is 172,800 datetimes per day
  jumped (measured: 0.17 s per day here), so a jump from 1970 to today blocks the event loop
  for about an hour and runs out of memory first;
- a jump **back** leaves every job's next run in the future by the size of the jump: no device
  polling, no flush, no telemetry and no watchdog ping until the clock catches up.

So interval jobs get `SteadyIntervalTrigger` (one catch-up run, never one per missed
interval), and `watch_clock_jumps` (on the event loop, which times itself with the monotonic
clock) brings every job forward to "now" when it sees the wall clock step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

# A change of the wall clock against the monotonic one bigger than this is a step, not NTP's
# slewing (which moves at most 0.5 ms per second) nor our own scheduling delay.
CLOCK_STEP_THRESHOLD_S = 2.0
# How often the wall clock is compared with the monotonic one.
CLOCK_CHECK_EVERY_S = 1.0
# A job's error, at most, as kept for `doorstep doctor`.
ERROR_LIMIT = 300


class SteadyIntervalTrigger(IntervalTrigger):  # type: ignore[misc]
    """An interval trigger that, after the wall clock jumped forward, fires once and goes on
    from now, instead of producing every run that was "missed" one by one."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        upcoming: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        if previous_fire_time is not None and upcoming is not None and upcoming < now:
            # Runs were missed (a jump forward, or a loop held up longer than the interval): go on
            # from now, in one step. Not realigned on the trigger's start date as apscheduler
            # would: after the clock stepped back, that date lies ahead by the whole step, and the
            # job would wait that long (a busy kiosk's 0.2 s device jobs did, for a day).
            resumed: datetime | None = super().get_next_fire_time(now, now)
            return resumed
        return upcoming


class AgentScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler whose "interval" jobs, ours and the laundry room's, are steady."""

    def add_job(self, func: Callable[..., Any], trigger: Any = None, *args: Any, **kwargs: Any) -> Any:
        if trigger == "interval":
            names = ("weeks", "days", "hours", "minutes", "seconds", "start_date", "end_date", "timezone", "jitter")
            trigger_args = {name: kwargs.pop(name) for name in names if name in kwargs}
            trigger_args.setdefault("timezone", self.timezone)
            trigger = SteadyIntervalTrigger(**trigger_args)
        return super().add_job(func, trigger, *args, **kwargs)


@dataclass(slots=True)
class JobRecord:
    last_run_at: datetime | None = None
    last_outcome: str | None = None  # "ok", "failed", "missed"
    last_error: str | None = None
    runs: int = 0
    failures: int = 0


class JobWatch:
    """What each job did last, from the scheduler's own events, for `doorstep doctor`; and how
    many are running, so that a stop can let them finish (apscheduler's AsyncIOExecutor cancels
    running jobs at shutdown, and logs each as an error)."""

    def __init__(self, scheduler: AsyncIOScheduler) -> None:
        self.records: dict[str, JobRecord] = {}
        self.running = 0
        scheduler.add_listener(
            self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )

    async def finished(self, timeout_s: float) -> bool:
        """Wait until no job runs (pause the scheduler first); False if some still ran at the end."""
        deadline = time.monotonic() + timeout_s
        while self.running > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.running == 0

    def _on_event(self, event: JobExecutionEvent | JobSubmissionEvent) -> None:
        # One submission, one event per run time in it (executed, failed or missed).
        if isinstance(event, JobSubmissionEvent):
            self.running += len(event.scheduled_run_times)
            return
        self.running = max(0, self.running - 1)
        record = self.records.setdefault(event.job_id, JobRecord())
        record.last_run_at = event.scheduled_run_time
        if event.code == EVENT_JOB_MISSED:
            record.last_outcome = "missed"
            return
        record.runs += 1
        if event.exception is not None:
            record.failures += 1
            record.last_outcome = "failed"
            record.last_error = f"{type(event.exception).__name__}: {event.exception}"[:ERROR_LIMIT]
        else:
            record.last_outcome = "ok"


def bring_every_job_forward(scheduler: AsyncIOScheduler) -> int:
    """Make every job due now (after the clock stepped back, their next runs are far ahead)."""
    now = datetime.now(scheduler.timezone)
    jobs = scheduler.get_jobs()
    for job in jobs:
        if job.next_run_time is not None:  # a paused job stays paused
            job.modify(next_run_time=now)
    scheduler.wakeup()
    return len(jobs)


async def watch_clock_jumps(
    scheduler: AsyncIOScheduler,
    *,
    on_jump: Callable[[float], object] = lambda _step: None,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    every_s: float = CLOCK_CHECK_EVERY_S,
) -> None:
    """Forever: when the wall clock steps (either way) by more than CLOCK_STEP_THRESHOLD_S,
    say so and bring every job forward. `on_jump` gets the step in seconds."""
    offset = wall() - monotonic()
    while True:
        await asyncio.sleep(every_s)
        now_offset = wall() - monotonic()
        step = now_offset - offset
        offset = now_offset
        if abs(step) <= CLOCK_STEP_THRESHOLD_S:
            continue
        log.warning("the kiosk's clock stepped %s by %s: every scheduled job runs now and goes on from there",
                    "forward" if step > 0 else "back", timedelta(seconds=abs(round(step))))
        bring_every_job_forward(scheduler)
        on_jump(step)
