"""Plausibility checks on decoded readings: a reading that cannot be physiological is marked
suspect (and shown and stored as such), never silently stored as good and never dropped.

The limits are deliberately wide: a value outside them is almost always a measurement artefact
(a cuff that slipped, an arm that moved, a decoder fed the wrong dialect), and a suspect mark
costs a resident nothing but a "please measure again". They are our choice, in the spirit of
the exclusion limits epidemiological studies apply to home blood-pressure data; change them
here, with the reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from contract.clinical import to_mmhg
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit

SYSTOLIC_MMHG: Final = (60.0, 300.0)
DIASTOLIC_MMHG: Final = (30.0, 200.0)
PULSE_RATE_BPM: Final = (30.0, 220.0)
MIN_PULSE_PRESSURE_MMHG: Final = 10.0  # systolic - diastolic narrower than this is an artefact


class Suspicion(StrEnum):
    SYSTOLIC_NOT_ABOVE_DIASTOLIC = "systolic_not_above_diastolic"
    PULSE_PRESSURE_TOO_NARROW = "pulse_pressure_too_narrow"
    SYSTOLIC_OUT_OF_RANGE = "systolic_out_of_range"
    DIASTOLIC_OUT_OF_RANGE = "diastolic_out_of_range"
    MEAN_ARTERIAL_PRESSURE_OUTSIDE_PRESSURES = "mean_arterial_pressure_outside_pressures"
    PULSE_RATE_OUT_OF_RANGE = "pulse_rate_out_of_range"
    NO_VALUE = "no_value"  # systolic or diastolic was a special value (NaN, NRes, ...)


def _mmhg(value: float, unit: BloodPressureUnit) -> float:
    # The one conversion (contract/clinical.py): the contract layer is below drivers too.
    return to_mmhg(value, unit.value)


def _outside(value: float, limits: tuple[float, float]) -> bool:
    return not limits[0] <= value <= limits[1]


def blood_pressure_suspicions(m: BloodPressureMeasurement) -> tuple[Suspicion, ...]:
    """Why this reading cannot be trusted as it stands; () when it looks physiological."""
    if m.systolic is None or m.diastolic is None:
        return (Suspicion.NO_VALUE,)
    systolic, diastolic = _mmhg(m.systolic, m.unit), _mmhg(m.diastolic, m.unit)
    found: list[Suspicion] = []
    if systolic <= diastolic:
        found.append(Suspicion.SYSTOLIC_NOT_ABOVE_DIASTOLIC)
    elif systolic - diastolic < MIN_PULSE_PRESSURE_MMHG:
        found.append(Suspicion.PULSE_PRESSURE_TOO_NARROW)
    if _outside(systolic, SYSTOLIC_MMHG):
        found.append(Suspicion.SYSTOLIC_OUT_OF_RANGE)
    if _outside(diastolic, DIASTOLIC_MMHG):
        found.append(Suspicion.DIASTOLIC_OUT_OF_RANGE)
    if m.mean_arterial_pressure is not None and systolic > diastolic:
        mean = _mmhg(m.mean_arterial_pressure, m.unit)
        if not diastolic <= mean <= systolic:
            found.append(Suspicion.MEAN_ARTERIAL_PRESSURE_OUTSIDE_PRESSURES)
    if m.pulse_rate is not None and _outside(m.pulse_rate, PULSE_RATE_BPM):
        found.append(Suspicion.PULSE_RATE_OUT_OF_RANGE)
    return tuple(found)


# --- The other devices: one range each, in the unit the wire carries -------------------------

GLUCOSE_MMOL_L: Final = (1.1, 33.3)  # meters' usual measuring range, 20-600 mg/dL
BODY_TEMPERATURE_CELSIUS: Final = (30.0, 43.0)
BODY_WEIGHT_KG: Final = (2.0, 300.0)
SPO2_PERCENT: Final = (50.0, 100.0)
KG_PER_LB: Final = 0.45359237  # by definition of the pound


def range_suspicions(value: float | None, limits: tuple[float, float], name: str) -> tuple[str, ...]:
    """[name_out_of_range] when a value lies outside its limits, [no_value] when absent."""
    if value is None:
        return (Suspicion.NO_VALUE.value,)
    return (f"{name}_out_of_range",) if _outside(value, limits) else ()


def fahrenheit_to_celsius(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0
