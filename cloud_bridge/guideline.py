"""The blood-pressure guideline the dashboard draws and judges readings by, as a bridge setting.

The defaults are the office blood-pressure categories of the Chinese guidelines for the
prevention and treatment of hypertension, 2018 revision (中国高血压防治指南 2018年修订版):
normal < 120 and < 80 mmHg, high-normal 120-139 and/or 80-89, hypertension >= 140 and/or
>= 90. When systolic and diastolic fall in different categories, the higher one counts. The
top category, "very high", is not the guideline's: it starts where the bridge raises a
dangerous-reading alert (AlertRules.dangerous_*), so the line a doctor sees on the chart is
the line that pages them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from cloud_bridge.alert_rules import AlertRules


class BloodPressureCategory(StrEnum):
    NORMAL = "normal"
    HIGH_NORMAL = "high_normal"
    HIGH = "high"
    VERY_HIGH = "very_high"  # the bridge's dangerous-reading alert


class BloodPressureGuideline(BaseModel):
    """`blood_pressure_guideline:` in bridge.yaml: where each category starts, in mmHg."""

    name: str = Field(default="中国高血压防治指南（2018年修订版）", min_length=1, max_length=200,
                      description="shown under the chart, so a doctor knows which bands these are")
    high_normal_systolic_mmhg: float = Field(default=120, gt=0, le=300)
    high_normal_diastolic_mmhg: float = Field(default=80, gt=0, le=300)
    high_systolic_mmhg: float = Field(default=140, gt=0, le=300)
    high_diastolic_mmhg: float = Field(default=90, gt=0, le=300)

    @model_validator(mode="after")
    def _categories_in_order(self) -> BloodPressureGuideline:
        if self.high_systolic_mmhg <= self.high_normal_systolic_mmhg:
            raise ValueError("high_systolic_mmhg must be above high_normal_systolic_mmhg")
        if self.high_diastolic_mmhg <= self.high_normal_diastolic_mmhg:
            raise ValueError("high_diastolic_mmhg must be above high_normal_diastolic_mmhg")
        return self


class Band(BaseModel):
    """One category: readings from `*_from` (inclusive) up to `*_below` (exclusive); None is
    open-ended. A reading is in the highest category that either of its values reaches."""

    category: BloodPressureCategory
    systolic_from: float | None
    systolic_below: float | None
    diastolic_from: float | None
    diastolic_below: float | None
    alerts: bool = Field(description="a reading here raises a dangerous-reading alert")


class BloodPressureBands(BaseModel):
    unit: str = "mmHg"
    guideline: str
    bands: list[Band]


def blood_pressure_bands(guideline: BloodPressureGuideline, rules: AlertRules) -> BloodPressureBands:
    """The four categories, lowest first, with the very-high one taken from the alert rules."""
    systolic = (guideline.high_normal_systolic_mmhg, guideline.high_systolic_mmhg, rules.dangerous_systolic_mmhg)
    diastolic = (guideline.high_normal_diastolic_mmhg, guideline.high_diastolic_mmhg, rules.dangerous_diastolic_mmhg)
    starts_s = (None, *systolic)
    starts_d = (None, *diastolic)
    ends_s = (*systolic, None)
    ends_d = (*diastolic, None)
    return BloodPressureBands(
        guideline=guideline.name,
        bands=[
            Band(category=category, systolic_from=starts_s[i], systolic_below=ends_s[i], diastolic_from=starts_d[i],
                 diastolic_below=ends_d[i], alerts=category is BloodPressureCategory.VERY_HIGH)
            for i, category in enumerate(BloodPressureCategory)
        ],
    )


def check_against_alerts(guideline: BloodPressureGuideline, rules: AlertRules) -> None:
    """Raise ValueError when "high" would start at or above the alert threshold: the bands
    would overlap and the chart would contradict the alerts."""
    if guideline.high_systolic_mmhg >= rules.dangerous_systolic_mmhg:
        raise ValueError("blood_pressure_guideline.high_systolic_mmhg must be below alerts.dangerous_systolic_mmhg")
    if guideline.high_diastolic_mmhg >= rules.dangerous_diastolic_mmhg:
        raise ValueError("blood_pressure_guideline.high_diastolic_mmhg must be below alerts.dangerous_diastolic_mmhg")
