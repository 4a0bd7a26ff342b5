"""Decoded device readings become wire payloads, marked when implausible, fingerprinted for replays."""

from __future__ import annotations

from datetime import datetime

import pytest

from doorstep.wire import DeviceIdentity, ReadingKind
from drivers.ble import glucose, pulse_oximeter, thermometer, weight
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from edge_agent.readings import fingerprint, outgoing

WHEN = datetime(2026, 11, 25, 7, 30)
CUFF = DeviceIdentity(model="generic", address="A4:C1:38:12:34:56")


def test_blood_pressure() -> None:
    reading = outgoing(BloodPressureMeasurement(BloodPressureUnit.MMHG, 128.0, 82.0, 97.0, timestamp=WHEN, pulse_rate=71.0))
    assert reading.kind is ReadingKind.BLOOD_PRESSURE
    assert reading.device_time == WHEN
    assert reading.payload.model_dump() == {
        "unit": "mmHg", "systolic": 128.0, "diastolic": 82.0, "mean_arterial_pressure": 97.0, "pulse_rate": 71.0,
        "user_id": None, "status": [], "special_values": {}, "suspect": [], "subject": None,
    }


def test_glucose_travels_in_mmol_per_litre_whatever_the_meter_sent() -> None:
    meter_reading = glucose.GlucoseMeasurement(
        sequence_number=17, base_time=WHEN, glucose_concentration=0.00126,
        unit=glucose.GlucoseConcentrationUnit.KG_PER_L, sample_location=glucose.SampleLocation.FINGER,
    )
    reading = outgoing(meter_reading)
    assert reading.kind is ReadingKind.GLUCOSE
    assert reading.payload.model_dump() == {
        "glucose_concentration": 6.99, "unit": "mmol/L", "sequence_number": 17, "sample_location": "finger",
        "special_values": {}, "suspect": [], "subject": None,
    }


@pytest.mark.parametrize(
    ("device_reading", "suspect"),
    [
        (thermometer.TemperatureMeasurement(36.6, thermometer.TemperatureUnit.CELSIUS), []),
        (thermometer.TemperatureMeasurement(98.6, thermometer.TemperatureUnit.FAHRENHEIT), []),
        (thermometer.TemperatureMeasurement(98.6, thermometer.TemperatureUnit.CELSIUS), ["temperature_out_of_range"]),
        (weight.WeightMeasurement(154.0, weight.WeightUnit.LB), []),
        (weight.WeightMeasurement(None, weight.WeightUnit.KG, special_values={"weight": "measurement_unsuccessful"}), ["no_value"]),
        (pulse_oximeter.PlxSpotCheckMeasurement(97.0, 72.0), []),
        (pulse_oximeter.PlxSpotCheckMeasurement(31.0, 72.0), ["spo2_out_of_range"]),
        (pulse_oximeter.PlxSpotCheckMeasurement(97.0, 72.0, timestamp=WHEN, device_clock_not_set=True), ["device_clock_not_set"]),
    ],
)
def test_implausible_values_are_marked_not_dropped(device_reading: object, suspect: list[str]) -> None:
    assert outgoing(device_reading).payload.suspect == suspect  # type: ignore[arg-type]


def test_an_oximeter_whose_clock_is_not_set_sends_no_device_time() -> None:
    reading = outgoing(pulse_oximeter.PlxSpotCheckMeasurement(97.0, 72.0, timestamp=WHEN, device_clock_not_set=True))
    assert reading.device_time is None


def test_a_replay_has_the_same_fingerprint_and_a_new_reading_another() -> None:
    first = outgoing(BloodPressureMeasurement(BloodPressureUnit.MMHG, 128.0, 82.0, 97.0, timestamp=WHEN))
    replay = outgoing(BloodPressureMeasurement(BloodPressureUnit.MMHG, 128.0, 82.0, 97.0, timestamp=WHEN))
    later = outgoing(BloodPressureMeasurement(BloodPressureUnit.MMHG, 128.0, 82.0, 97.0, timestamp=WHEN.replace(minute=45)))
    untimed = outgoing(BloodPressureMeasurement(BloodPressureUnit.MMHG, 128.0, 82.0, 97.0))
    assert fingerprint(CUFF, first) == fingerprint(CUFF, replay)
    assert fingerprint(CUFF, first) != fingerprint(CUFF, later)
    assert fingerprint(CUFF, untimed) is None
    other_cuff = DeviceIdentity(model="generic", address="A4:C1:38:00:00:00")
    assert fingerprint(other_cuff, first) != fingerprint(CUFF, first)
