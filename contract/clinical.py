"""The clinical rules of blood pressure, in one place for the kiosk and the bridge.

What a reading *means* is decided here and only here: the category the kiosk's screen shows a
resident, the bands the family doctor's chart draws, and the line at which the bridge raises a
dangerous-reading alert. Before this module the kiosk called 165/112 "very high" (grade 3 from
110 diastolic) while the bridge's chart said "high" and raised no alert (it used 120): one rule,
two answers (issue 17).

The categories are the office blood-pressure categories of the Chinese guidelines for the
prevention and treatment of hypertension, 2018 revision (中国高血压防治指南 2018年修订版),
table 3: normal < 120 and < 80 mmHg; high-normal 120-139 and/or 80-89; hypertension >= 140
and/or >= 90; grade 3 hypertension >= 180 and/or >= 110, shown as "very high". When systolic
and diastolic fall in different categories the higher one counts.

An implausible reading gets no category. Plausibility is judged once, on the kiosk, by
drivers/plausibility.py, and travels on the wire as the payload's `suspect` list (its reasons;
empty means plausible). The functions here take that verdict rather than judging again, so the
kiosk's screen, the bridge's chart and its alert all act on the same verdict the resident was
shown: a suspect reading says "please measure again", is drawn without a category, and pages
no one (a slipped cuff reading 200/195 is not a hypertensive crisis).

This module imports nothing of Doorstep's: the standard library and pydantic only (the contract
layer, docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, Field, model_validator

# --- Units -----------------------------------------------------------------------------------

# 1 mmHg = 133.322 387 415 Pa exactly (the conventional millimetre of mercury, ISO 80000-4:2019,
# item 4-15.a, note), so 1 kPa = 1000 / 133.322 387 415 = 7.500 615 758 mmHg. (The copies this
# replaces carried 7.500 616 8, which is per torr, 101 325/760 Pa, and 7.500 62.) Cuffs may
# report in either unit (Blood Pressure Measurement flags, bit 0); every comparison is in mmHg.
PASCAL_PER_MMHG: Final = 133.322387415
MMHG_PER_KPA: Final = 1000.0 / PASCAL_PER_MMHG

PressureUnit = Literal["mmHg", "kPa"]


def to_mmhg(value: float, unit: str) -> float:
    """A pressure in mmHg; `unit` is the wire's ("mmHg" or "kPa"). Any other unit is refused
    rather than taken as mmHg: a reading in a unit we cannot name has no meaning here."""
    if unit == "kPa":
        return value * MMHG_PER_KPA
    if unit == "mmHg":
        return value
    raise ValueError(f"not a blood-pressure unit: {unit!r} (mmHg or kPa)")


# --- Categories ------------------------------------------------------------------------------


class BloodPressureCategory(StrEnum):
    """Lowest first: the order is the order of severity."""

    NORMAL = "normal"
    HIGH_NORMAL = "high_normal"
    HIGH = "high"
    VERY_HIGH = "very_high"


class Threshold(BaseModel):
    """A line on the chart: a reading is at or above it when its systolic reaches `systolic`
    OR its diastolic reaches `diastolic` (mmHg)."""

    # Wide bounds on purpose: the ordering checks below refuse what cannot be a guideline, and
    # an alert line may be put out of reach on one number on purpose (bridge files before
    # issue 17 could say dangerous_systolic_mmhg: 999, and still can).
    systolic: float = Field(gt=0, le=1000, description="mmHg")
    diastolic: float = Field(gt=0, le=1000, description="mmHg")

    def reached_by(self, systolic_mmhg: float, diastolic_mmhg: float) -> bool:
        return systolic_mmhg >= self.systolic or diastolic_mmhg >= self.diastolic

    def at_or_above(self, other: Threshold) -> bool:
        return self.systolic >= other.systolic and self.diastolic >= other.diastolic


GUIDELINE_2018: Final = "中国高血压防治指南（2018年修订版）"


class BloodPressureGuideline(BaseModel):
    """Where each category starts, in mmHg, and the guideline's name. Below `high_normal` on
    both numbers is normal. The defaults are the 2018 Chinese guideline (module docstring)."""

    name: str = Field(
        default=GUIDELINE_2018, min_length=1, max_length=200,
        description="the guideline these categories are from, shown under the doctor's chart",
    )
    high_normal: Threshold = Field(default=Threshold(systolic=120, diastolic=80), description="正常高值")
    high: Threshold = Field(default=Threshold(systolic=140, diastolic=90), description="hypertension")
    very_high: Threshold = Field(default=Threshold(systolic=180, diastolic=110), description="grade 3 hypertension")

    @model_validator(mode="after")
    def _categories_rise(self) -> BloodPressureGuideline:
        lines = [("high_normal", self.high_normal), ("high", self.high), ("very_high", self.very_high)]
        for (low_name, low), (high_name, high) in zip(lines, lines[1:], strict=False):
            for number in ("systolic", "diastolic"):
                if getattr(high, number) <= getattr(low, number):
                    raise ValueError(f"the categories must rise: {high_name}.{number} ({getattr(high, number):g}) "
                                     f"must be above {low_name}.{number} ({getattr(low, number):g})")
        return self

    def starts(self) -> tuple[tuple[BloodPressureCategory, Threshold | None], ...]:
        """Each category with the line it starts at (None for normal, which starts at 0), lowest first."""
        return (
            (BloodPressureCategory.NORMAL, None),
            (BloodPressureCategory.HIGH_NORMAL, self.high_normal),
            (BloodPressureCategory.HIGH, self.high),
            (BloodPressureCategory.VERY_HIGH, self.very_high),
        )


def category_of(
    systolic: float | None, diastolic: float | None, unit: str, guideline: BloodPressureGuideline,
    *, suspect: Collection[str],
) -> BloodPressureCategory | None:
    """The highest category either number reaches (150/85 is high; 165/112 very high), or None
    when the reading has no category: `suspect` is not empty (the plausibility verdict, as on
    the wire), or a number is missing (the cuff sent a special value)."""
    if suspect or systolic is None or diastolic is None:
        return None
    systolic_mmhg, diastolic_mmhg = to_mmhg(systolic, unit), to_mmhg(diastolic, unit)
    found = BloodPressureCategory.NORMAL
    for category, line in guideline.starts():
        if line is not None and line.reached_by(systolic_mmhg, diastolic_mmhg):
            found = category
    return found


class Band(BaseModel):
    """One category as the chart draws it: from `*_from` (inclusive) up to `*_below`
    (exclusive) on each axis; None is open-ended."""

    category: BloodPressureCategory
    systolic_from: float | None
    systolic_below: float | None
    diastolic_from: float | None
    diastolic_below: float | None


def bands(guideline: BloodPressureGuideline) -> list[Band]:
    """The four categories, lowest first, as horizontal bands for a systolic and a diastolic chart."""
    starts = guideline.starts()
    found: list[Band] = []
    for i, (category, line) in enumerate(starts):
        upper = starts[i + 1][1] if i + 1 < len(starts) else None
        found.append(Band(
            category=category,
            systolic_from=None if line is None else line.systolic,
            systolic_below=None if upper is None else upper.systolic,
            diastolic_from=None if line is None else line.diastolic,
            diastolic_below=None if upper is None else upper.diastolic,
        ))
    return found


# --- The dangerous-reading alert -------------------------------------------------------------


def dangerous_line(guideline: BloodPressureGuideline, apart: Threshold | None = None) -> Threshold:
    """Where the dangerous-reading alert fires: where "very high" starts, unless an operator set
    a line `apart` on purpose (e.g. 200/120, to page only for the most urgent readings)."""
    return guideline.very_high if apart is None else apart


def check_dangerous_line(guideline: BloodPressureGuideline, apart: Threshold | None) -> None:
    """Raise ValueError if a line set apart is below "high" on either number: it would page the
    doctor for readings the chart calls normal or high-normal."""
    if apart is not None and not apart.at_or_above(guideline.high):
        raise ValueError(f"the dangerous-reading line {apart.systolic:g}/{apart.diastolic:g} must be at or above "
                         f"where high starts ({guideline.high.systolic:g}/{guideline.high.diastolic:g})")


def is_dangerous(
    systolic: float | None, diastolic: float | None, unit: str, line: Threshold, *, suspect: Collection[str]
) -> bool:
    """A plausible reading at or above the alert line on either number. A number that is
    missing (a special value) cannot reach it; a suspect reading never does (module docstring)."""
    if suspect:
        return False
    return (systolic is not None and to_mmhg(systolic, unit) >= line.systolic) or (
        diastolic is not None and to_mmhg(diastolic, unit) >= line.diastolic
    )
