"""Decoded device readings become wire payloads, marked when implausible, fingerprinted for replays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contract.envelope import Envelope, validate_upstream
from contract.payloads import DeviceIdentity
from contract.topics import KioskTopics, ReadingKind
from drivers.ble import blood_pressure, glucose, pulse_oximeter, thermometer, weight
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.errors import DecodeError
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


# --- Whatever a device sends -------------------------------------------------------------------

# The characteristics whose readings the kiosk saves and sends, with their decoders.
SAVED_CHARACTERISTICS = {
    "2a35": blood_pressure.decode_blood_pressure_measurement,
    "2a18": glucose.decode_glucose_measurement,
    "2a1c": thermometer.decode_temperature_measurement,
    "2a9d": weight.decode_weight_measurement,
    "2a5e": pulse_oximeter.decode_plx_spot_check_measurement,
}


@settings(max_examples=500, deadline=timedelta(seconds=1))
# Found by this test in a run: a glucose record without its (optional) concentration.
@example("2a18", (0x00, bytes(9)))
@given(st.sampled_from(sorted(SAVED_CHARACTERISTICS)),
       st.tuples(st.sampled_from([0xFF, 0x1F, 0x0F]) | st.integers(0, 0xFF), st.binary(max_size=64)))
def test_any_bytes_a_device_sends_are_a_decode_error_or_a_message_the_bridge_accepts(
    characteristic: str, parts: tuple[int, bytes]
) -> None:
    """Across the layers, not only in the decoder: a value that decodes must become a wire
    payload (no ValidationError escaping from the kiosk's save) that the bridge's own check
    accepts, so a strange cuff cannot make a record the cloud dead-letters for ever."""
    data = bytes([parts[0]]) + parts[1]
    try:
        reading = SAVED_CHARACTERISTICS[characteristic](data)
    except DecodeError:
        return
    wire = outgoing(reading)
    envelope = Envelope(
        message_id=uuid.uuid4(), seq=1, kiosk_time=datetime(2026, 11, 25, tzinfo=UTC), device_time=wire.device_time,
        device=CUFF, payload=wire.payload.model_dump(mode="json"),
    )
    accepted = validate_upstream(KioskTopics("s", "k").reading(wire.kind), envelope.model_dump_json().encode())
    assert accepted.payload == wire.payload
    fingerprint(CUFF, wire)
