"""Readings that cannot be physiological are marked suspect, with the reason."""

from __future__ import annotations

import pytest

from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.plausibility import Suspicion, blood_pressure_suspicions


def bp(systolic: float | None, diastolic: float | None, mean: float | None = None, pulse: float | None = None,
       unit: BloodPressureUnit = BloodPressureUnit.MMHG) -> BloodPressureMeasurement:
    specials = {n: "nan" for n, v in (("systolic", systolic), ("diastolic", diastolic)) if v is None}
    return BloodPressureMeasurement(unit=unit, systolic=systolic, diastolic=diastolic,
                                    mean_arterial_pressure=mean, pulse_rate=pulse, special_values=specials)


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        (bp(120, 80, 93, 70), ()),
        (bp(185, 125, 145, 88), ()),  # dangerous, but physiological: an alert, not a suspicion
        (bp(16.0, 10.7, 12.5, 70, unit=BloodPressureUnit.KPA), ()),  # 120/80 mmHg in kPa
        (bp(80, 120), (Suspicion.SYSTOLIC_NOT_ABOVE_DIASTOLIC,)),
        (bp(85, 80), (Suspicion.PULSE_PRESSURE_TOO_NARROW,)),
        (bp(320, 90), (Suspicion.SYSTOLIC_OUT_OF_RANGE,)),
        (bp(90, 20), (Suspicion.DIASTOLIC_OUT_OF_RANGE,)),
        (bp(120, 80, 130), (Suspicion.MEAN_ARTERIAL_PRESSURE_OUTSIDE_PRESSURES,)),
        (bp(120, 80, 93, 250), (Suspicion.PULSE_RATE_OUT_OF_RANGE,)),
        (bp(120, 80, 93, 18176), (Suspicion.PULSE_RATE_OUT_OF_RANGE,)),  # big-endian pulse read as little
        (bp(None, 80), (Suspicion.NO_VALUE,)),
        (bp(160, 80, unit=BloodPressureUnit.KPA), (Suspicion.SYSTOLIC_OUT_OF_RANGE, Suspicion.DIASTOLIC_OUT_OF_RANGE)),
    ],
)
def test_suspicions(reading: BloodPressureMeasurement, expected: tuple[Suspicion, ...]) -> None:
    assert blood_pressure_suspicions(reading) == expected
