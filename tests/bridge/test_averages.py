"""Home averages (cloud_bridge/averages.py) on cases worked out by hand: the week, the day left
out, mornings and evenings, unreliable readings, the category of the mean, the trend."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from cloud_bridge.averages import HomeReading, Mean, home_average, previous_period, rising
from contract.clinical import BloodPressureCategory, BloodPressureGuideline

GUIDELINE = BloodPressureGuideline()


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute)


def test_a_week_of_mornings_and_evenings_leaves_the_first_day_out() -> None:
    # Day 1 (1 December) is very high and must not count; days 2-7: mornings 140/90, evenings 130/80.
    week = [HomeReading(at(1, 7), 200, 120), HomeReading(at(1, 21), 200, 120)]
    for day in range(2, 8):
        week += [HomeReading(at(day, 7), 140, 90), HomeReading(at(day, 21), 130, 80)]
    average = home_average(week, GUIDELINE)
    assert average is not None
    # (6 x 140 + 6 x 130) / 12 = 135; (6 x 90 + 6 x 80) / 12 = 85.
    assert (average.first_day, average.last_day) == (date(2026, 12, 2), date(2026, 12, 7))
    assert average.overall == Mean(135, 85, 12)
    assert average.morning == Mean(140, 90, 6)
    assert average.evening == Mean(130, 80, 6)
    # 135/85: at or above 120/80, below 140/90 on both: high-normal by the 2018 table.
    assert average.category is BloodPressureCategory.HIGH_NORMAL
    assert average.enough and average.left_out_unreliable == 0


def test_unreliable_readings_are_left_out_and_counted_and_few_readings_are_not_enough() -> None:
    readings = [
        HomeReading(at(7, 8), 150, 95),
        HomeReading(at(7, 14), 160, 100),  # afternoon: in the mean, neither morning nor evening
        HomeReading(at(6, 20), 250, 60, suspect=True),
        HomeReading(at(6, 20, 5), 140, 85),
        HomeReading(at(5, 9), None, 80),  # the cuff sent no systolic: cannot be averaged
    ]
    average = home_average(readings, GUIDELINE)
    assert average is not None
    # (150 + 160 + 140) / 3 = 150; (95 + 100 + 85) / 3 = 93.33...
    assert average.overall is not None and average.overall.readings == 3
    assert average.overall.systolic_mmhg == 150
    assert average.overall.diastolic_mmhg == pytest.approx(280 / 3)
    assert average.morning == Mean(150, 95, 1)
    assert average.evening == Mean(140, 85, 1)
    assert average.category is BloodPressureCategory.HIGH  # 150 >= 140
    assert average.left_out_unreliable == 2
    assert not average.enough  # 3 < 12 (ESH 2010)


def test_the_period_is_the_week_of_the_last_day_asked_for() -> None:
    readings = [HomeReading(at(1, 8), 118, 76), HomeReading(at(8, 8), 150, 95), HomeReading(at(14, 8), 150, 95)]
    # Ending 7 December: 2-7 counted; the 1st is left out and the 8th is after: nothing to average.
    empty = home_average(readings, GUIDELINE, last_day=date(2026, 12, 7))
    assert empty is not None and empty.overall is None and empty.category is None and not empty.enough
    # Ending on the latest reading's day (14th): 9-14 counted, the 8th left out.
    latest = home_average(readings, GUIDELINE)
    assert latest is not None and latest.overall == Mean(150, 95, 1)
    # The period before ends on the 7th (2-7 counted, the 1st left out).
    assert previous_period(latest) == date(2026, 12, 7)
    assert home_average([], GUIDELINE) is None


def test_a_rise_is_a_category_up_from_the_period_before() -> None:
    before = home_average([HomeReading(at(7, 8), 125, 78)], GUIDELINE)  # high-normal
    after = home_average([HomeReading(at(14, 8), 145, 88)], GUIDELINE)  # high: 145 >= 140
    same = home_average([HomeReading(at(14, 8), 138, 88)], GUIDELINE)  # still high-normal
    assert rising(after, before)
    assert not rising(before, after)
    assert not rising(same, before)
    assert not rising(after, None)
