"""bridge.yaml's `blood_pressure_guideline:` and `alerts:` keys from before issue 17, kept working.

The rule itself (categories, the dangerous-reading line, units) is contract/clinical.py,
shared with the kiosk. What is left here is bridge-specific: the file's old spellings. Until
issue 17 the bridge's guideline was flat (`high_systolic_mmhg: 140`) and its "very high" band
started at the alert thresholds `alerts.dangerous_systolic_mmhg` / `dangerous_diastolic_mmhg`
(180/120 by default, where the kiosk said 180/110). `--config FILE` is a public contract, so
those keys still load, with the meaning they had; docs/configuration.md marks them deprecated.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from contract.clinical import BloodPressureGuideline

# old flat key -> (the contract's category, which number)
FLAT_KEYS = {
    "high_normal_systolic_mmhg": ("high_normal", "systolic"),
    "high_normal_diastolic_mmhg": ("high_normal", "diastolic"),
    "high_systolic_mmhg": ("high", "systolic"),
    "high_diastolic_mmhg": ("high", "diastolic"),
}
# The old alert thresholds drew the chart's "very high" and fired the alert: both are now the
# guideline's very_high (the alert follows it unless set apart), so their meaning is kept.
ALERT_KEYS = {"dangerous_systolic_mmhg": "systolic", "dangerous_diastolic_mmhg": "diastolic"}


def _deprecated(new: str) -> Any:
    return Field(default=None, gt=0, le=300, description=f"deprecated: use {new}")


class BridgeGuideline(BloodPressureGuideline):
    """The contract's guideline, accepting the flat keys it had before issue 17 (deprecated)."""

    high_normal_systolic_mmhg: float | None = _deprecated("high_normal.systolic")
    high_normal_diastolic_mmhg: float | None = _deprecated("high_normal.diastolic")
    high_systolic_mmhg: float | None = _deprecated("high.systolic")
    high_diastolic_mmhg: float | None = _deprecated("high.diastolic")


def fold_old_keys(guideline: BridgeGuideline, old_alert_keys: dict[str, float | None]) -> BridgeGuideline:
    """The guideline with the old keys moved into their places: flat keys into high_normal and
    high, the old alert thresholds into very_high. A value given both ways is refused rather
    than one silently winning; the result is checked again (the categories must rise)."""
    moves = {
        (category, number): (f"blood_pressure_guideline.{old}", getattr(guideline, old))
        for old, (category, number) in FLAT_KEYS.items()
    } | {("very_high", number): (f"alerts.{old}", old_alert_keys.get(old)) for old, number in ALERT_KEYS.items()}
    moves = {place: (old, value) for place, (old, value) in moves.items() if value is not None}
    if not moves:
        return guideline
    data = guideline.model_dump(include={"name", "high_normal", "high", "very_high"})
    for (category, number), (old, value) in moves.items():
        if category in guideline.model_fields_set:
            raise ValueError(f"{old} (deprecated) and blood_pressure_guideline.{category} both set "
                             f"{category}'s {number}: keep only blood_pressure_guideline.{category}.{number}")
        data[category][number] = value
    try:
        return BridgeGuideline.model_validate(data)
    except ValidationError as error:
        # Name the old key too: the file the operator reads has it, not the new one.
        moved = ", ".join(f"{old} -> blood_pressure_guideline.{category}.{number}"
                          for (category, number), (old, _) in moves.items())
        raise ValueError("\n".join(f"{str(e['msg']).removeprefix('Value error, ')} (deprecated keys moved: {moved})"
                                   for e in error.errors())) from None
