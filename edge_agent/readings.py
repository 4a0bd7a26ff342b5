"""From a decoded device reading to what the kiosk saves and sends: its kind, its wire payload
(with plausibility marks), the device's own time, and the fingerprint that recognises a replay."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contract.payloads import (
    BloodPressurePayload,
    DeviceIdentity,
    GlucosePayload,
    ReadingPayload,
    Spo2Payload,
    TemperaturePayload,
    WeightPayload,
)
from contract.topics import ReadingKind
from drivers.ble import blood_pressure, glucose, pulse_oximeter, thermometer, weight
from drivers.plausibility import (
    BODY_TEMPERATURE_CELSIUS,
    BODY_WEIGHT_KG,
    GLUCOSE_MMOL_L,
    KG_PER_LB,
    PULSE_RATE_BPM,
    SPO2_PERCENT,
    blood_pressure_suspicions,
    fahrenheit_to_celsius,
    range_suspicions,
)

DeviceReading = (
    blood_pressure.BloodPressureMeasurement
    | glucose.GlucoseMeasurement
    | thermometer.TemperatureMeasurement
    | weight.WeightMeasurement
    | pulse_oximeter.PlxSpotCheckMeasurement
)


@dataclass(frozen=True, slots=True)
class OutgoingReading:
    kind: ReadingKind
    payload: ReadingPayload
    device_time: datetime | None


def outgoing(reading: DeviceReading) -> OutgoingReading:
    """The wire form of a decoded reading; raises TypeError for a type we do not send."""
    match reading:
        case blood_pressure.BloodPressureMeasurement():
            fields = blood_pressure.to_json_dict(reading)
            fields.pop("timestamp")  # travels as the envelope's device_time
            fields["suspect"] = [s.value for s in blood_pressure_suspicions(reading)]
            return OutgoingReading(
                ReadingKind.BLOOD_PRESSURE, BloodPressurePayload.model_validate(fields), reading.timestamp
            )
        case glucose.GlucoseMeasurement():
            mmol_l = reading.glucose_mmol_l
            special_values = dict(reading.special_values)
            if reading.glucose_concentration is None:
                # GLS 3.1: the concentration is optional (flags bit 1). A record without one is
                # still the meter's record: kept and sent, saying its value is absent.
                special_values.setdefault("glucose_concentration", "absent")
            return OutgoingReading(
                ReadingKind.GLUCOSE,
                GlucosePayload(
                    glucose_concentration=mmol_l,
                    unit="mmol/L",
                    sequence_number=reading.sequence_number,
                    sample_location=reading.sample_location.value if reading.sample_location else None,
                    special_values=special_values,
                    suspect=list(range_suspicions(mmol_l, GLUCOSE_MMOL_L, "glucose")),
                ),
                reading.timestamp,
            )
        case thermometer.TemperatureMeasurement():
            value = reading.temperature
            celsius = None if value is None else (
                fahrenheit_to_celsius(value) if reading.unit is thermometer.TemperatureUnit.FAHRENHEIT else value
            )
            return OutgoingReading(
                ReadingKind.TEMPERATURE,
                TemperaturePayload(
                    temperature=value,
                    unit=reading.unit.value,
                    temperature_type=reading.temperature_type.value if reading.temperature_type else None,
                    special_values=dict(reading.special_values),
                    suspect=list(range_suspicions(celsius, BODY_TEMPERATURE_CELSIUS, "temperature")),
                ),
                reading.timestamp,
            )
        case weight.WeightMeasurement():
            value = reading.weight
            kg = None if value is None else (value * KG_PER_LB if reading.unit is weight.WeightUnit.LB else value)
            return OutgoingReading(
                ReadingKind.WEIGHT,
                WeightPayload(
                    weight=value,
                    unit=reading.unit.value,
                    bmi=reading.bmi,
                    special_values=dict(reading.special_values),
                    suspect=list(range_suspicions(kg, BODY_WEIGHT_KG, "weight")),
                ),
                reading.timestamp,
            )
        case pulse_oximeter.PlxSpotCheckMeasurement():
            suspect = range_suspicions(reading.spo2, SPO2_PERCENT, "spo2")
            if reading.pulse_rate is not None:
                suspect += range_suspicions(reading.pulse_rate, PULSE_RATE_BPM, "pulse_rate")
            if reading.device_clock_not_set:
                suspect += ("device_clock_not_set",)
            return OutgoingReading(
                ReadingKind.SPO2,
                Spo2Payload(
                    spo2=reading.spo2,
                    pulse_rate=reading.pulse_rate,
                    special_values=dict(reading.special_values),
                    suspect=list(suspect),
                ),
                None if reading.device_clock_not_set else reading.timestamp,
            )
    raise TypeError(f"no wire form for {type(reading).__name__}")


def fingerprint(device: DeviceIdentity, reading: OutgoingReading) -> str | None:
    """The same device, device time and values: the same reading, however often it is replayed.

    Without the device's own time stamp two equal readings cannot be told from a replay, so
    none is deduplicated.
    """
    if reading.device_time is None:
        return None
    identity: list[Any] = [
        device.address,
        reading.kind.value,
        reading.device_time.isoformat(),
        reading.payload.model_dump(mode="json", exclude={"suspect", "subject"}),
    ]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
