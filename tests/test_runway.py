"""The outbox's runway (edge_agent/runway.py): pure arithmetic over samples and a clock the test
passes, then what the kiosk's telemetry says of a real outbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from contract.telemetry import KioskTelemetry
from edge_agent.runway import Runway, RunwayWatch, Sample, runway
from edge_agent.store.outbox import Outbox, OutboxLimits
from edge_agent.telemetry import kiosk_telemetry
from tests.test_outbox_upkeep import EVENT, MACHINE, START, Clock

MB = 1024 * 1024
HOUR = 3600.0


def test_a_steady_growth_gives_the_budget_left_over_the_rate() -> None:
    # 10 MB undelivered an hour ago, 16 MB now, of a 100 MB budget: 84 MB left at 6 MB/h.
    samples = [Sample(0.0, 10 * MB), Sample(1800.0, 13 * MB), Sample(HOUR, 16 * MB)]
    assert runway(samples, budget_bytes=100 * MB, now_s=HOUR, window_s=HOUR) == Runway(6 * MB, 14.0)


def test_only_the_window_counts() -> None:
    # A burst two hours ago (0 -> 50 MB) is outside the last hour; within it, 1 MB/h.
    samples = [Sample(0.0, 0), Sample(HOUR, 50 * MB), Sample(2 * HOUR, 51 * MB)]
    assert runway(samples, budget_bytes=100 * MB, now_s=2 * HOUR, window_s=HOUR) == Runway(1 * MB, 49.0)


@pytest.mark.parametrize("newest", [20 * MB, 10 * MB])
def test_not_growing_is_an_unbounded_runway(newest: int) -> None:
    """Draining (negative growth) or flat: no runway figure, the growth still said."""
    result = runway([Sample(0.0, 20 * MB), Sample(HOUR, newest)], budget_bytes=100 * MB, now_s=HOUR, window_s=HOUR)
    assert result.hours is None and result.growth_bytes_per_h == newest - 20 * MB


def test_too_short_a_span_is_not_measured_yet() -> None:
    # Two samples a minute apart: under a tenth of the hour's window.
    short = [Sample(0.0, 0), Sample(60.0, 5 * MB)]
    assert runway(short, budget_bytes=100 * MB, now_s=60.0, window_s=HOUR) == Runway(None, None)
    assert runway(short[:1], budget_bytes=100 * MB, now_s=0.0, window_s=HOUR) == Runway(None, None)
    assert runway([], budget_bytes=100 * MB, now_s=0.0, window_s=HOUR) == Runway(None, None)


def test_over_the_budget_there_is_no_runway_left() -> None:
    """Health readings are kept over the budget (docs/outbox.md): zero hours, not negative."""
    result = runway([Sample(0.0, 90 * MB), Sample(HOUR, 110 * MB)], budget_bytes=100 * MB, now_s=HOUR, window_s=HOUR)
    assert result == Runway(20 * MB, 0.0)


def test_the_watch_forgets_samples_older_than_its_window() -> None:
    watch = RunwayWatch(window_s=HOUR)
    assert watch.sample(0.0, 0, budget_bytes=100 * MB) == Runway(None, None)
    watch.sample(HOUR, 50 * MB, budget_bytes=100 * MB)
    # The first sample is now out of the window: growth is from the second on (1 MB in an hour).
    assert watch.sample(2 * HOUR, 51 * MB, budget_bytes=100 * MB) == Runway(1 * MB, 49.0)


def test_telemetry_carries_the_runway_of_a_real_outbox(tmp_path: Path) -> None:
    """Undelivered events saved between two samples: the telemetry's growth is their budgeted
    bytes over the span, and its runway the budget those bytes leave."""
    clock = Clock()
    outbox = Outbox(tmp_path / "o.sqlite3", clock=clock, limits=OutboxLimits(budget_bytes=MB))
    watch = RunwayWatch(window_s=HOUR)
    watch.sample(0.0, outbox.undelivered_bytes(), budget_bytes=MB)
    for _ in range(10):
        outbox.save(EVENT, MACHINE)
    saved = outbox.undelivered_bytes()
    assert saved == outbox.used_bytes > 0  # nothing delivered: every record counts
    measured = watch.sample(HOUR / 2, saved, budget_bytes=MB)
    report = kiosk_telemetry(outbox, uptime_s=1, now=START + timedelta(minutes=30), devices=[], clock_synchronised=True,
                             runway=measured)
    assert report.outbox_growth_bytes_per_h == saved * 2
    assert report.runway_h == pytest.approx((MB - saved) / (saved * 2))
    KioskTelemetry.model_validate_json(report.model_dump_json())
