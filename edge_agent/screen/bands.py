"""What a blood-pressure reading means, by the guideline bands in the settings."""

from __future__ import annotations

from typing import Final, Literal

from edge_agent.settings import BloodPressureBands

Category = Literal["normal", "high_normal", "high", "very_high"]

# 1 kPa = 7.500 616 8 mmHg (1 mmHg = 133.322 387 Pa, ISO 80000-4); cuffs may send either.
MMHG_PER_KPA: Final = 7.5006168


def to_mmhg(value: float, unit: str) -> float:
    return value * MMHG_PER_KPA if unit == "kPa" else value


def category_of(systolic_mmhg: float, diastolic_mmhg: float, bands: BloodPressureBands) -> Category:
    """The highest band that either number reaches (the guideline classifies by the higher of
    the two: 150/85 is high)."""
    for name, band in (("very_high", bands.very_high), ("high", bands.high), ("high_normal", bands.high_normal)):
        if systolic_mmhg >= band.systolic or diastolic_mmhg >= band.diastolic:
            return name  # type: ignore[return-value]
    return "normal"
