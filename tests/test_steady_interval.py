"""The agent's interval trigger after the wall clock jumps (edge_agent/scheduling.py), on its own:
the whole agent under a faked clock is tests/test_clock_jumps.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_agent.scheduling import SteadyIntervalTrigger

ADDED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EVERY = timedelta(seconds=0.2)


def trigger() -> SteadyIntervalTrigger:
    # As apscheduler makes it when a job is added at ADDED: its start date one interval later.
    return SteadyIntervalTrigger(seconds=EVERY.total_seconds(), start_date=ADDED + EVERY, timezone=UTC)


def test_a_run_held_up_past_its_interval_after_the_clock_stepped_back_goes_on_from_now() -> None:
    """After a step back of a day, every job is brought forward to now and runs; a run that
    comes more than one interval late (a busy kiosk) must not be realigned on the start date,
    which now lies a day ahead: the kiosk's device jobs stopped for a day."""
    now = ADDED - timedelta(days=1) + timedelta(seconds=5)
    brought_forward = now - 3 * EVERY  # its run, held up three intervals
    assert trigger().get_next_fire_time(brought_forward, now) == now + EVERY


def test_missed_runs_after_a_jump_forward_are_one_run_then_on_from_now() -> None:
    now = ADDED + timedelta(days=3650)
    upcoming = trigger().get_next_fire_time(ADDED + EVERY, now)
    assert upcoming is not None and now < upcoming <= now + EVERY


def test_a_run_on_time_keeps_its_interval() -> None:
    ran = ADDED + 5 * EVERY
    assert trigger().get_next_fire_time(ran, ran + EVERY / 2) == ran + EVERY
