"""A kiosk whose clock is unsynchronised or jumps: nothing reordered, duplicated, lost or expired wrongly."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from edge_agent.clock import ClockWatch, kernel_clock_synchronised
from edge_agent.store.outbox import Outbox, Pruned
from tests.test_outbox_upkeep import BEAT, EVENT, HEALTH, MACHINE, READING, START, TELEMETRY, Clock, RunningClock


def test_the_kernel_answers_on_linux() -> None:
    assert kernel_clock_synchronised() in (True, False)


def test_the_watch_follows_the_check_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    answers = iter([False, False, True, None])
    with caplog.at_level(logging.INFO, logger="edge_agent.clock"):
        watch = ClockWatch(lambda: next(answers))
        assert watch.trusted is False
        assert watch.refresh() is False
        assert watch.refresh() is True
        assert watch.refresh() is True  # unknown (not Linux): nothing better to go on
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]


def test_clock_jumps_do_not_reorder_duplicate_or_lose_records(tmp_path: Path) -> None:
    """The outbox alone (tests/test_clock_jumps.py does it with real processes)."""
    clock, running = Clock(), RunningClock()
    outbox = Outbox(tmp_path / "o.sqlite3", clock=clock, monotonic=running)
    jumps = [timedelta(0), -timedelta(days=400), timedelta(days=3650), timedelta(seconds=-5), timedelta(0)]
    saved = []
    for jump in jumps:
        clock.now = START + jump
        saved.append(outbox.save(HEALTH, READING))
        running.advance(timedelta(seconds=1))
    due = outbox.due(100)
    assert [r.seq for r in due] == [s.seq for s in saved if s] == [1, 2, 3, 4, 5]
    assert [json.loads(r.body)["kiosk_time"][:10] for r in due] == [
        (START + j).date().isoformat() for j in jumps
    ]
    outbox.mark_delivered([s.message_id for s in saved[:2] if s])
    clock.now = START - timedelta(days=3650)  # back ten years: retention cannot delete early
    assert outbox.prune().delivered == 0
    assert len(outbox.due(100)) == 3


def test_a_clock_jump_forward_expires_nothing_and_forgets_no_replayed_reading(tmp_path: Path) -> None:
    """Ages are running time: ten years on the wall clock in a second is a second."""
    clock, running = Clock(), RunningClock()
    outbox = Outbox(tmp_path / "o.sqlite3", clock=clock, monotonic=running)
    event, beat = outbox.save(EVENT, MACHINE), outbox.save(TELEMETRY, BEAT)
    reading = outbox.save(HEALTH, READING, fingerprint="c" * 64)
    outbox.mark_delivered([reading.message_id])  # type: ignore[union-attr]
    clock.now = START + timedelta(days=3650)  # NTP, or a wrong RTC, steps the clock
    running.advance(timedelta(seconds=1))
    assert outbox.prune() == Pruned(delivered=0, expired=0, fingerprints=0)
    assert {r.seq for r in outbox.due(10)} == {event.seq, beat.seq}  # type: ignore[union-attr]
    # The cuff replays its memory at the next connection: still recognised, not saved again.
    assert outbox.save(HEALTH, READING, fingerprint="c" * 64) is None


def test_records_saved_while_the_clock_was_untrusted_are_flagged_and_age_by_running_time(tmp_path: Path) -> None:
    clock, running, trusted = Clock(), RunningClock(), [False]
    outbox = Outbox(tmp_path / "o.sqlite3", clock=clock, clock_trusted=lambda: trusted[0], monotonic=running)
    clock.now = START.replace(year=1970)  # a Pi booting without an RTC
    untrusted_event = outbox.save(EVENT, MACHINE)
    untrusted_beat = outbox.save(TELEMETRY, BEAT)
    assert json.loads(outbox.due(10)[0].body)["kiosk_clock_trusted"] is False
    clock.now = START  # NTP catches up: 56 years later on the wall clock, a minute of running
    trusted[0] = True
    running.advance(timedelta(minutes=1))
    assert outbox.prune().expired == 0
    trusted_beat = outbox.save(TELEMETRY, BEAT)
    assert json.loads(outbox.due(10)[-1].body)["kiosk_clock_trusted"] is True
    running.advance(timedelta(days=2, seconds=-30))
    assert outbox.prune().expired == 1  # the 1970 beat: two days of running, whatever its kiosk time said
    left = {r.seq for r in outbox.due(10)}
    assert left == {untrusted_event.seq, trusted_beat.seq}  # type: ignore[union-attr]
    assert untrusted_beat is not None and untrusted_beat.seq not in left
