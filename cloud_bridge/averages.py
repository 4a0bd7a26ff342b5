"""A resident's home blood pressure as the guideline judges it: the mean of a week's readings,
not one reading (issue 21). The doctor's page, the printed report and the FHIR export all take
their averages from `home_average` here, so they cannot disagree.

The schedule is home blood-pressure monitoring as the guidelines describe it:
- 中国高血压防治指南（2018年修订版）, 诊断性评估 › 血压测量 › 家庭血压监测: measure in the
  morning and in the evening, 2-3 readings each time; for a diagnosis, on 7 consecutive days,
  and take the mean of the last 6 (the first day is left out).
- ESH practice guidelines for home blood pressure monitoring (Parati et al., J Hum Hypertens
  2010;24:779-785), "schedule for home BP monitoring": 7 days (at least 3), duplicate morning and
  evening readings, the first day discarded, the mean of the rest, at least 12 readings for a
  decision; kept in the ESH 2021 practice guidelines for office and out-of-office measurement
  (Stergiou et al., J Hypertens 2021;39:1293-1302).

A kiosk is not a home cuff on a schedule, so the period is the 7 local days ending with the
day of the latest reading, the first of them left out; the mean rests on whatever plausible
readings fall in the other 6, and says how many, so a mean of 2 readings is read as one.
Readings flagged unreliable (the kiosk's plausibility verdict, `suspect`) are left out and
counted. The category is the same rule as every single reading's (contract/clinical.py), on
the mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from contract.clinical import BloodPressureCategory, BloodPressureGuideline, category_of

# The guidelines' week of home readings, and the first day of it left out (module docstring).
PERIOD_DAYS: Final = 7
DAYS_LEFT_OUT: Final = 1
# ESH 2010: a decision rests on at least 12 readings (6 days x 2 morning/evening, at the least).
ENOUGH_READINGS: Final = 12
# Morning: after waking, before medication and breakfast; evening: before bed (2018 guideline,
# 家庭血压监测). Local clock hours; readings between the two count only in the overall mean.
MORNING: Final = (time(4, 0), time(12, 0))
EVENING: Final = (time(18, 0), time(23, 59, 59, 999999))


@dataclass(frozen=True, slots=True)
class HomeReading:
    """One blood-pressure reading as the averages need it: when (the site's local time), the
    pressures in mmHg (None where the cuff sent a special value), and whether it was flagged
    unreliable."""

    at: datetime
    systolic_mmhg: float | None
    diastolic_mmhg: float | None
    suspect: bool = False


@dataclass(frozen=True, slots=True)
class Mean:
    """The mean of `readings` readings, in mmHg."""

    systolic_mmhg: float
    diastolic_mmhg: float
    readings: int


@dataclass(frozen=True, slots=True)
class HomeAverage:
    """A period's averages: overall, mornings, evenings (None when no reading is in it)."""

    first_day: date  # the first day counted (the day before it is the one left out)
    last_day: date
    overall: Mean | None
    morning: Mean | None
    evening: Mean | None
    category: BloodPressureCategory | None  # of the overall mean, by the guideline's rule
    left_out_unreliable: int  # readings in the counted days flagged unreliable, not averaged
    enough: bool  # at least ENOUGH_READINGS readings behind the overall mean


def _mean(readings: list[HomeReading]) -> Mean | None:
    if not readings:
        return None
    n = len(readings)
    return Mean(
        systolic_mmhg=sum(r.systolic_mmhg for r in readings if r.systolic_mmhg is not None) / n,
        diastolic_mmhg=sum(r.diastolic_mmhg for r in readings if r.diastolic_mmhg is not None) / n,
        readings=n,
    )


def _usable(reading: HomeReading) -> bool:
    # A reading missing a number cannot be averaged: like a suspect one, it is left out.
    return not reading.suspect and reading.systolic_mmhg is not None and reading.diastolic_mmhg is not None


def _within(at: datetime, hours: tuple[time, time]) -> bool:
    return hours[0] <= at.time() <= hours[1]


def period_ending(last_day: date) -> tuple[date, date]:
    """The days counted for a period whose last day is `last_day`: the first of its 7 days left out."""
    return last_day - timedelta(days=PERIOD_DAYS - 1 - DAYS_LEFT_OUT), last_day


def home_average(
    readings: Iterable[HomeReading], guideline: BloodPressureGuideline, *, last_day: date | None = None
) -> HomeAverage | None:
    """The averages of the period ending on `last_day` (by default the day of the latest
    reading); None when there are no readings at all."""
    readings = list(readings)
    if last_day is None:
        if not readings:
            return None
        last_day = max(r.at for r in readings).date()
    first_day, last_day = period_ending(last_day)
    counted = [r for r in readings if first_day <= r.at.date() <= last_day]
    usable = [r for r in counted if _usable(r)]
    overall = _mean(usable)
    category = None if overall is None else category_of(
        overall.systolic_mmhg, overall.diastolic_mmhg, "mmHg", guideline, suspect=())
    return HomeAverage(
        first_day=first_day,
        last_day=last_day,
        overall=overall,
        morning=_mean([r for r in usable if _within(r.at, MORNING)]),
        evening=_mean([r for r in usable if _within(r.at, EVENING)]),
        category=category,
        left_out_unreliable=len(counted) - len(usable),
        enough=overall is not None and overall.readings >= ENOUGH_READINGS,
    )


def rests_on(average: HomeAverage, reading: HomeReading) -> bool:
    """Whether `reading` is one of those `average.overall` is the mean of (what the FHIR export
    names as the average's derivedFrom): in the counted days, and usable."""
    return average.first_day <= reading.at.date() <= average.last_day and _usable(reading)


def previous_period(average: HomeAverage) -> date:
    """The last day of the period before `average`'s (the day left out is the previous week's last)."""
    return average.first_day - timedelta(days=DAYS_LEFT_OUT + 1)


_SEVERITY: Final = list(BloodPressureCategory)


def rising(current: HomeAverage | None, before: HomeAverage | None) -> bool:
    """Whether this period's mean is in a higher category than the period before's: the trend the
    doctor's home page puts first, judged by the guideline's categories, not a number of ours."""
    if current is None or before is None or current.category is None or before.category is None:
        return False
    return _SEVERITY.index(current.category) > _SEVERITY.index(before.category)
