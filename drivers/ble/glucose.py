"""Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34).

Pure codec: bytes in, typed reading (or :class:`DecodeError`) out.
Layout: Bluetooth SIG GATT Specification Supplement (GSS) "Glucose Measurement"
and "Glucose Measurement Context", as used by the Glucose Service (GLS) 1.0.1
section 3.1 (Glucose Measurement) and 3.2 (Glucose Measurement Context) and the
Glucose Profile (GLP) 1.0.1. Numbers are IEEE 11073-20601 SFLOAT (Annex F.8;
"medfloat16" in the GSS tables), all multi-byte fields little-endian as in the
GSS field tables.

Verified (2024 search of published material, not the paywalled PDF):
- Field order, flag bits, Type / Sample Location / Sensor Status Annunciation
  enumerations and Context Flags bits, Carbohydrate ID / Meal / Tester / Health /
  Medication ID enumerations and the Exercise Duration 0xFFFF "Overrun" key
  against the SIG's own characteristic XML (oesmith/gatt-xml mirror:
  org.bluetooth.characteristic.glucose_measurement.xml and
  ...glucose_measurement_context.xml) and against the field tables generated
  from the current GSS YAML (docs.embassy.dev trouble-host, constants
  GLUCOSE_MEASUREMENT / GLUCOSE_MEASUREMENT_CONTEXT).
- The same constants in Stonestreet One Bluetopia GLSTypes.h
  (PhaniKumarDV/APIN100A) and Nordic's GlucoseManager / nRF5 ble_gls.h.
- Nibble order: the SIG XML note says the *first* nibble listed is the least
  significant (bits 0-3). So Type = low nibble, Sample Location = high nibble;
  Tester = low nibble, Health = high nibble (GLSTypes.h agrees). Note: the
  ``bluetooth_sig`` Python package has Tester/Health swapped; we follow the SIG.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from drivers.ble.fields import FieldReader, encode_date_time, encode_sfloat_field

_GM = "2a18"
_GMC = "2a34"

# -- Glucose Measurement (GSS "Glucose Measurement"; GLS 3.1) -----------------

# Flags field (GSS Glucose Measurement / GLS 3.1); bits 5-7 are reserved for
# future use and ignored so that a future flag does not make today's decoder
# reject a reading.
_FLAG_TIME_OFFSET = 0x01  # bit 0: Time Offset Present
_FLAG_CONCENTRATION = 0x02  # bit 1: Glucose Concentration, Type and Sample Location Present
_FLAG_MOL_PER_L = 0x04  # bit 2: Glucose Concentration Units (0 = kg/L, 1 = mol/L)
_FLAG_SENSOR_STATUS = 0x08  # bit 3: Sensor Status Annunciation Present
_FLAG_CONTEXT_FOLLOWS = 0x10  # bit 4: Context Information Follows

# Type-Sample Location field (one octet, GSS Glucose Measurement):
# Type in bits 0-3, Sample Location in bits 4-7 (see module docstring).
_NIBBLE_MASK = 0x0F
_HIGH_NIBBLE_SHIFT = 4

# GSS: kg/L -> mg/dL is x 10^5 (1 kg/L = 10^6 mg / 10 dL); mol/L -> mmol/L is x 10^3.
_MG_DL_PER_KG_L_EXPONENT = 5
_MMOL_L_PER_MOL_L_EXPONENT = 3


# Glucose (C6H12O6) has a molar mass of 180.156 g/mol, so 1 mmol/L = 18.0156 mg/dL.
GLUCOSE_MG_DL_PER_MMOL_L = 18.0156


class GlucoseConcentrationUnit(StrEnum):
    """Flags bit 2 (GSS Glucose Measurement): the unit the concentration is sent in."""

    KG_PER_L = "kg/L"
    MOL_PER_L = "mol/L"


class GlucoseType(StrEnum):
    """Type nibble (GSS Glucose Measurement, Type field); 0 and 11-15 are reserved."""

    CAPILLARY_WHOLE_BLOOD = "capillary_whole_blood"
    CAPILLARY_PLASMA = "capillary_plasma"
    VENOUS_WHOLE_BLOOD = "venous_whole_blood"
    VENOUS_PLASMA = "venous_plasma"
    ARTERIAL_WHOLE_BLOOD = "arterial_whole_blood"
    ARTERIAL_PLASMA = "arterial_plasma"
    UNDETERMINED_WHOLE_BLOOD = "undetermined_whole_blood"
    UNDETERMINED_PLASMA = "undetermined_plasma"
    INTERSTITIAL_FLUID = "interstitial_fluid"
    CONTROL_SOLUTION = "control_solution"


_TYPE_CODES: dict[int, GlucoseType] = {
    0x1: GlucoseType.CAPILLARY_WHOLE_BLOOD,
    0x2: GlucoseType.CAPILLARY_PLASMA,
    0x3: GlucoseType.VENOUS_WHOLE_BLOOD,
    0x4: GlucoseType.VENOUS_PLASMA,
    0x5: GlucoseType.ARTERIAL_WHOLE_BLOOD,
    0x6: GlucoseType.ARTERIAL_PLASMA,
    0x7: GlucoseType.UNDETERMINED_WHOLE_BLOOD,
    0x8: GlucoseType.UNDETERMINED_PLASMA,
    0x9: GlucoseType.INTERSTITIAL_FLUID,  # "Interstitial Fluid (ISF)"
    0xA: GlucoseType.CONTROL_SOLUTION,
}


class SampleLocation(StrEnum):
    """Sample Location nibble (GSS Glucose Measurement); 0 and 5-14 are reserved."""

    FINGER = "finger"
    ALTERNATE_SITE_TEST = "alternate_site_test"  # "Alternate Site Test (AST)"
    EARLOBE = "earlobe"
    CONTROL_SOLUTION = "control_solution"
    NOT_AVAILABLE = "not_available"  # 0xF: "Sample Location value not available"


_SAMPLE_LOCATION_CODES: dict[int, SampleLocation] = {
    0x1: SampleLocation.FINGER,
    0x2: SampleLocation.ALTERNATE_SITE_TEST,
    0x3: SampleLocation.EARLOBE,
    0x4: SampleLocation.CONTROL_SOLUTION,
    0xF: SampleLocation.NOT_AVAILABLE,
}


class SensorStatus(StrEnum):
    """Sensor Status Annunciation bits (GSS Glucose Measurement), uint16; bits 12-15 reserved."""

    DEVICE_BATTERY_LOW = "device_battery_low"
    SENSOR_MALFUNCTION = "sensor_malfunction"
    SAMPLE_SIZE_INSUFFICIENT = "sample_size_insufficient"
    STRIP_INSERTION_ERROR = "strip_insertion_error"
    STRIP_TYPE_INCORRECT = "strip_type_incorrect"
    SENSOR_RESULT_TOO_HIGH = "sensor_result_too_high"
    SENSOR_RESULT_TOO_LOW = "sensor_result_too_low"
    SENSOR_TEMPERATURE_TOO_HIGH = "sensor_temperature_too_high"
    SENSOR_TEMPERATURE_TOO_LOW = "sensor_temperature_too_low"
    SENSOR_READ_INTERRUPTED = "sensor_read_interrupted"
    GENERAL_DEVICE_FAULT = "general_device_fault"
    TIME_FAULT = "time_fault"


_SENSOR_STATUS_BITS: tuple[tuple[int, SensorStatus], ...] = (
    (0x0001, SensorStatus.DEVICE_BATTERY_LOW),  # bit 0: Device battery low at time of measurement
    (0x0002, SensorStatus.SENSOR_MALFUNCTION),  # bit 1: Sensor malfunction or faulting
    (0x0004, SensorStatus.SAMPLE_SIZE_INSUFFICIENT),  # bit 2: Sample size ... insufficient
    (0x0008, SensorStatus.STRIP_INSERTION_ERROR),  # bit 3: Strip insertion error
    (0x0010, SensorStatus.STRIP_TYPE_INCORRECT),  # bit 4: Strip type incorrect for device
    (0x0020, SensorStatus.SENSOR_RESULT_TOO_HIGH),  # bit 5: Sensor result higher than the device can process
    (0x0040, SensorStatus.SENSOR_RESULT_TOO_LOW),  # bit 6: Sensor result lower than the device can process
    (0x0080, SensorStatus.SENSOR_TEMPERATURE_TOO_HIGH),  # bit 7: Sensor temperature too high
    (0x0100, SensorStatus.SENSOR_TEMPERATURE_TOO_LOW),  # bit 8: Sensor temperature too low
    (0x0200, SensorStatus.SENSOR_READ_INTERRUPTED),  # bit 9: read interrupted, strip pulled too soon
    (0x0400, SensorStatus.GENERAL_DEVICE_FAULT),  # bit 10: General device fault
    (0x0800, SensorStatus.TIME_FAULT),  # bit 11: Time fault, time may be inaccurate
)

# Canonical order = bit order, so decoded tuples compare equal whatever the input order.
_SENSOR_STATUS_ORDER: tuple[SensorStatus, ...] = tuple(SensorStatus)


def _frozen(mapping: Mapping[str, str]) -> MappingProxyType[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    sequence_number: int  # GSS: uint16, "Sequence Number"
    # Naive: the meter's own clock with no zone (GSS Date Time); None if the meter
    # says year/month/day 0 = "not known". Base Time itself is mandatory.
    base_time: datetime | None
    time_offset: int | None = None  # GSS: sint16 minutes; None if the flag is clear
    # None when the concentration group is absent (flag bit 1 clear); also None,
    # with a ``special_values["glucose_concentration"]`` entry, for a special SFLOAT.
    glucose_concentration: float | None = None
    # The unit as sent (flag bit 2). None exactly when the concentration /
    # type / sample location group is absent: the unit only describes that field.
    unit: GlucoseConcentrationUnit | None = None
    # Reserved nibbles (Type 0, 11-15; Sample Location 0, 5-14) decode as None
    # rather than raising: a future meter's new value must not lose the reading.
    type: GlucoseType | None = None
    sample_location: SampleLocation | None = None
    sensor_status: tuple[SensorStatus, ...] = ()
    context_information_follows: bool = False
    # field name -> SpecialValue string, e.g. {"glucose_concentration": "nan"}.
    # hash=False: a mapping is not hashable, but equality still compares it.
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)
    # base_time + time_offset (the "user facing time", GLS); None when base_time
    # is unknown. Derived, so not an __init__ argument.
    timestamp: datetime | None = field(init=False)

    def __post_init__(self) -> None:
        # Freeze whatever mapping the caller passed so the dataclass stays immutable.
        object.__setattr__(self, "special_values", _frozen(self.special_values))
        object.__setattr__(self, "timestamp", _user_facing_time(self.base_time, self.time_offset))

    @property
    def glucose_mg_dl(self) -> float | None:
        """mg/dL, whichever unit the meter sent (kg/L x 10^5, or mmol/L x molar mass / 10)."""
        if self.glucose_concentration is None or self.unit is None:
            return None
        if self.unit is GlucoseConcentrationUnit.KG_PER_L:
            return _shift(self.glucose_concentration, _MG_DL_PER_KG_L_EXPONENT)
        return round(_shift(self.glucose_concentration, _MMOL_L_PER_MOL_L_EXPONENT) * GLUCOSE_MG_DL_PER_MMOL_L, 1)

    @property
    def glucose_mmol_l(self) -> float | None:
        """mmol/L, whichever unit the meter sent; Chinese clinics read glucose in mmol/L."""
        if self.glucose_concentration is None or self.unit is None:
            return None
        if self.unit is GlucoseConcentrationUnit.MOL_PER_L:
            return _shift(self.glucose_concentration, _MMOL_L_PER_MOL_L_EXPONENT)
        return round(_shift(self.glucose_concentration, _MG_DL_PER_KG_L_EXPONENT) / GLUCOSE_MG_DL_PER_MMOL_L, 2)


def _user_facing_time(base_time: datetime | None, time_offset: int | None) -> datetime | None:
    if base_time is None:
        return None
    return base_time + timedelta(minutes=time_offset or 0)


def _shift(value: float, exponent: int) -> float:
    # Decimal shift of the decimal the meter sent: 0.0012 kg/L is 120 mg/dL, not
    # 120.00000000000001 (float multiplication would make golden tests noise).
    return float(Decimal(repr(value)).scaleb(exponent))


def decode_glucose_measurement(data: bytes) -> GlucoseMeasurement:
    """Decode a Glucose Measurement (0x2A18) value (GSS Glucose Measurement; GLS 3.1)."""
    reader = FieldReader(data, _GM)
    flags = reader.uint8("flags", mandatory=True)
    sequence_number = reader.uint16("sequence_number", mandatory=True)  # GSS: uint16
    base_time = reader.date_time("base_time", mandatory=True)  # GSS: Date Time, mandatory
    time_offset = reader.sint16("time_offset") if flags & _FLAG_TIME_OFFSET else None  # sint16 minutes
    concentration: float | None = None
    unit: GlucoseConcentrationUnit | None = None
    glucose_type: GlucoseType | None = None
    sample_location: SampleLocation | None = None
    if flags & _FLAG_CONCENTRATION:
        unit = GlucoseConcentrationUnit.MOL_PER_L if flags & _FLAG_MOL_PER_L else GlucoseConcentrationUnit.KG_PER_L
        concentration = reader.sfloat("glucose_concentration")  # GSS: SFLOAT, kg/L or mol/L
        type_location = reader.uint8("type_sample_location")  # GSS: Type-Sample Location
        glucose_type = _TYPE_CODES.get(type_location & _NIBBLE_MASK)  # reserved -> None
        sample_location = _SAMPLE_LOCATION_CODES.get(type_location >> _HIGH_NIBBLE_SHIFT)  # reserved -> None
    sensor_status = (
        _decode_sensor_status(reader.uint16("sensor_status_annunciation")) if flags & _FLAG_SENSOR_STATUS else ()
    )
    if base_time is not None and time_offset is not None:
        try:
            base_time + timedelta(minutes=time_offset)
        except OverflowError as error:
            raise reader.fail("time_offset", f"out of range: base time + {time_offset} min overflows") from error
    # Trailing bytes are accepted and ignored, as in blood_pressure.py: later spec
    # versions append fields after the known ones and some meters pad
    # notifications; rejecting them would throw away readings whose every
    # promised field decoded cleanly.
    return GlucoseMeasurement(
        sequence_number=sequence_number,
        base_time=base_time,
        time_offset=time_offset,
        glucose_concentration=concentration,
        unit=unit,
        type=glucose_type,
        sample_location=sample_location,
        sensor_status=sensor_status,
        context_information_follows=bool(flags & _FLAG_CONTEXT_FOLLOWS),
        special_values=reader.special_values,
    )


def _decode_sensor_status(raw: int) -> tuple[SensorStatus, ...]:
    # Reserved bits 12-15 are ignored (no claim either way).
    found = [status for bit, status in _SENSOR_STATUS_BITS if raw & bit]
    return tuple(sorted(found, key=_SENSOR_STATUS_ORDER.index))


def _code_of(table: Mapping[int, Any], member: Any) -> int:
    """Wire code of an enum member; None (a reserved value was sent) encodes as 0, reserved."""
    if member is None:
        return 0
    return next(code for code, candidate in table.items() if candidate is member)


def encode_glucose_measurement(m: GlucoseMeasurement) -> bytes:
    """Encode ``m`` per GSS Glucose Measurement (for the simulator and round-trip tests).

    A None concentration with ``unit`` set is sent as its ``special_values``
    entry, NaN by default; a None type / sample location is sent as the
    reserved 0. An unknown base time is sent as the all-zero "not known" Date Time.
    """
    flags = 0
    base_time = encode_date_time(m.base_time) if m.base_time is not None else bytes(7)
    body = m.sequence_number.to_bytes(2, "little") + base_time
    if m.time_offset is not None:
        flags |= _FLAG_TIME_OFFSET
        body += m.time_offset.to_bytes(2, "little", signed=True)
    if m.unit is not None:
        flags |= _FLAG_CONCENTRATION
        if m.unit is GlucoseConcentrationUnit.MOL_PER_L:
            flags |= _FLAG_MOL_PER_L
        body += encode_sfloat_field(m.glucose_concentration, "glucose_concentration", m.special_values)
        type_code = _code_of(_TYPE_CODES, m.type)
        location_code = _code_of(_SAMPLE_LOCATION_CODES, m.sample_location)
        body += bytes([(location_code << _HIGH_NIBBLE_SHIFT) | type_code])
    if m.sensor_status:
        flags |= _FLAG_SENSOR_STATUS
        raw = 0
        for bit, member in _SENSOR_STATUS_BITS:
            if member in m.sensor_status:
                raw |= bit
        body += raw.to_bytes(2, "little")
    if m.context_information_follows:
        flags |= _FLAG_CONTEXT_FOLLOWS
    return bytes([flags]) + body


# -- Glucose Measurement Context (GSS "Glucose Measurement Context"; GLS 3.2) --

# Flags field (GSS Glucose Measurement Context / GLS 3.2): all 8 bits defined.
_CTX_CARBOHYDRATE = 0x01  # bit 0: Carbohydrate ID And Carbohydrate Present
_CTX_MEAL = 0x02  # bit 1: Meal Present
_CTX_TESTER_HEALTH = 0x04  # bit 2: Tester-Health Present
_CTX_EXERCISE = 0x08  # bit 3: Exercise Duration And Exercise Intensity Present
_CTX_MEDICATION = 0x10  # bit 4: Medication ID And Medication Present
_CTX_MEDICATION_LITERS = 0x20  # bit 5: Medication Value Units (0 = kilograms, 1 = liters)
_CTX_HBA1C = 0x40  # bit 6: HbA1c Present
_CTX_EXTENDED_FLAGS = 0x80  # bit 7: Extended Flags Present

# Exercise Duration (GSS): uint16 seconds, 65535 = "Overrun"; 0..65534 are seconds.
_EXERCISE_DURATION_OVERRUN = 0xFFFF
_OVERRUN = "overrun"


class CarbohydrateId(StrEnum):
    """Carbohydrate ID (GSS Glucose Measurement Context), uint8; 0 and 8-255 reserved."""

    BREAKFAST = "breakfast"
    LUNCH = "lunch"
    DINNER = "dinner"
    SNACK = "snack"
    DRINK = "drink"
    SUPPER = "supper"
    BRUNCH = "brunch"


_CARBOHYDRATE_CODES: dict[int, CarbohydrateId] = {
    1: CarbohydrateId.BREAKFAST,
    2: CarbohydrateId.LUNCH,
    3: CarbohydrateId.DINNER,
    4: CarbohydrateId.SNACK,
    5: CarbohydrateId.DRINK,
    6: CarbohydrateId.SUPPER,
    7: CarbohydrateId.BRUNCH,
}


class Meal(StrEnum):
    """Meal (GSS Glucose Measurement Context), uint8; 0 and 6-255 reserved."""

    PREPRANDIAL = "preprandial"  # before meal
    POSTPRANDIAL = "postprandial"  # after meal
    FASTING = "fasting"
    CASUAL = "casual"  # snacks, drinks, etc.
    BEDTIME = "bedtime"


_MEAL_CODES: dict[int, Meal] = {
    1: Meal.PREPRANDIAL,
    2: Meal.POSTPRANDIAL,
    3: Meal.FASTING,
    4: Meal.CASUAL,
    5: Meal.BEDTIME,
}


class Tester(StrEnum):
    """Tester nibble (GSS Glucose Measurement Context), bits 0-3; 0 and 4-14 reserved."""

    # Not a member (Enum ignores dunders): stops pytest collecting a "Test*" class
    # wherever a test module imports this name.
    __test__ = False

    SELF = "self"
    HEALTH_CARE_PROFESSIONAL = "health_care_professional"
    LAB_TEST = "lab_test"
    NOT_AVAILABLE = "not_available"  # 0xF: "Tester value not available"


_TESTER_CODES: dict[int, Tester] = {
    0x1: Tester.SELF,
    0x2: Tester.HEALTH_CARE_PROFESSIONAL,
    0x3: Tester.LAB_TEST,
    0xF: Tester.NOT_AVAILABLE,
}


class Health(StrEnum):
    """Health nibble (GSS Glucose Measurement Context), bits 4-7; 0 and 6-14 reserved."""

    MINOR_HEALTH_ISSUES = "minor_health_issues"
    MAJOR_HEALTH_ISSUES = "major_health_issues"
    DURING_MENSES = "during_menses"
    UNDER_STRESS = "under_stress"
    NO_HEALTH_ISSUES = "no_health_issues"
    NOT_AVAILABLE = "not_available"  # 0xF: "Health value not available"


_HEALTH_CODES: dict[int, Health] = {
    0x1: Health.MINOR_HEALTH_ISSUES,
    0x2: Health.MAJOR_HEALTH_ISSUES,
    0x3: Health.DURING_MENSES,
    0x4: Health.UNDER_STRESS,
    0x5: Health.NO_HEALTH_ISSUES,
    0xF: Health.NOT_AVAILABLE,
}


class MedicationId(StrEnum):
    """Medication ID (GSS Glucose Measurement Context), uint8; 0 and 6-255 reserved."""

    RAPID_ACTING_INSULIN = "rapid_acting_insulin"
    SHORT_ACTING_INSULIN = "short_acting_insulin"
    INTERMEDIATE_ACTING_INSULIN = "intermediate_acting_insulin"
    LONG_ACTING_INSULIN = "long_acting_insulin"
    PRE_MIXED_INSULIN = "pre_mixed_insulin"


_MEDICATION_CODES: dict[int, MedicationId] = {
    1: MedicationId.RAPID_ACTING_INSULIN,
    2: MedicationId.SHORT_ACTING_INSULIN,
    3: MedicationId.INTERMEDIATE_ACTING_INSULIN,
    4: MedicationId.LONG_ACTING_INSULIN,
    5: MedicationId.PRE_MIXED_INSULIN,
}


class MedicationUnit(StrEnum):
    """Flags bit 5 (GSS Glucose Measurement Context): Medication Value Units."""

    KILOGRAMS = "kg"
    LITERS = "L"


@dataclass(frozen=True, slots=True)
class GlucoseMeasurementContext:
    sequence_number: int  # GSS: uint16, matches the Glucose Measurement's
    extended_flags: int | None = None  # GSS: 8bit, all bits reserved; raw byte kept
    # Reserved enumeration values decode as None (the field was sent but means
    # nothing to us yet) rather than raising, as for the measurement's nibbles.
    carbohydrate_id: CarbohydrateId | None = None
    carbohydrate: float | None = None  # GSS: SFLOAT, kilograms
    meal: Meal | None = None
    tester: Tester | None = None
    health: Health | None = None
    exercise_duration: int | None = None  # GSS: uint16 seconds; 0xFFFF "overrun" -> None + special
    exercise_intensity: int | None = None  # GSS: uint8 percent
    medication_id: MedicationId | None = None
    medication: float | None = None  # GSS: SFLOAT in ``medication_unit``
    # None exactly when the Medication ID / Medication pair is absent (bit 4 clear).
    medication_unit: MedicationUnit | None = None
    hba1c: float | None = None  # GSS: SFLOAT, percent
    special_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "special_values", _frozen(self.special_values))


def decode_glucose_measurement_context(data: bytes) -> GlucoseMeasurementContext:
    """Decode a Glucose Measurement Context (0x2A34) value (GSS; GLS 3.2)."""
    reader = FieldReader(data, _GMC)
    flags = reader.uint8("flags", mandatory=True)
    sequence_number = reader.uint16("sequence_number", mandatory=True)
    # GSS field order: Extended Flags comes right after Sequence Number, before Carbohydrate ID.
    extended_flags = reader.uint8("extended_flags") if flags & _CTX_EXTENDED_FLAGS else None
    carbohydrate_id: CarbohydrateId | None = None
    carbohydrate: float | None = None
    if flags & _CTX_CARBOHYDRATE:
        carbohydrate_id = _CARBOHYDRATE_CODES.get(reader.uint8("carbohydrate_id"))
        carbohydrate = reader.sfloat("carbohydrate")
    meal = _MEAL_CODES.get(reader.uint8("meal")) if flags & _CTX_MEAL else None
    tester: Tester | None = None
    health: Health | None = None
    if flags & _CTX_TESTER_HEALTH:
        tester_health = reader.uint8("tester_health")  # GSS: Tester bits 0-3, Health bits 4-7
        tester = _TESTER_CODES.get(tester_health & _NIBBLE_MASK)
        health = _HEALTH_CODES.get(tester_health >> _HIGH_NIBBLE_SHIFT)
    exercise_duration: int | None = None
    exercise_intensity: int | None = None
    if flags & _CTX_EXERCISE:
        exercise_duration = reader.uint16("exercise_duration")
        if exercise_duration == _EXERCISE_DURATION_OVERRUN:
            reader.special_values["exercise_duration"] = _OVERRUN
            exercise_duration = None
        exercise_intensity = reader.uint8("exercise_intensity")
    medication_id: MedicationId | None = None
    medication: float | None = None
    medication_unit: MedicationUnit | None = None
    if flags & _CTX_MEDICATION:
        medication_unit = MedicationUnit.LITERS if flags & _CTX_MEDICATION_LITERS else MedicationUnit.KILOGRAMS
        medication_id = _MEDICATION_CODES.get(reader.uint8("medication_id"))
        medication = reader.sfloat("medication")
    hba1c = reader.sfloat("hba1c") if flags & _CTX_HBA1C else None
    # Trailing bytes accepted and ignored, same reason as the measurement.
    return GlucoseMeasurementContext(
        sequence_number=sequence_number,
        extended_flags=extended_flags,
        carbohydrate_id=carbohydrate_id,
        carbohydrate=carbohydrate,
        meal=meal,
        tester=tester,
        health=health,
        exercise_duration=exercise_duration,
        exercise_intensity=exercise_intensity,
        medication_id=medication_id,
        medication=medication,
        medication_unit=medication_unit,
        hba1c=hba1c,
        special_values=reader.special_values,
    )


def _sent(c: GlucoseMeasurementContext, *names: str) -> bool:
    return any(getattr(c, name) is not None or name in c.special_values for name in names)


def encode_glucose_measurement_context(c: GlucoseMeasurementContext) -> bytes:
    """Encode ``c`` per GSS Glucose Measurement Context (simulator, round trips).

    A group is sent when any of its fields is set (or named in
    ``special_values``); a None enumeration inside a sent group is sent as the
    reserved 0, a None SFLOAT as its special value (NaN by default).
    """
    flags = 0
    body = c.sequence_number.to_bytes(2, "little")
    if c.extended_flags is not None:
        flags |= _CTX_EXTENDED_FLAGS
        body += bytes([c.extended_flags])
    if _sent(c, "carbohydrate_id", "carbohydrate"):
        flags |= _CTX_CARBOHYDRATE
        body += bytes([_code_of(_CARBOHYDRATE_CODES, c.carbohydrate_id)])
        body += encode_sfloat_field(c.carbohydrate, "carbohydrate", c.special_values)
    if c.meal is not None:
        flags |= _CTX_MEAL
        body += bytes([_code_of(_MEAL_CODES, c.meal)])
    if c.tester is not None or c.health is not None:
        flags |= _CTX_TESTER_HEALTH
        tester_code = _code_of(_TESTER_CODES, c.tester)
        body += bytes([(_code_of(_HEALTH_CODES, c.health) << _HIGH_NIBBLE_SHIFT) | tester_code])
    if _sent(c, "exercise_duration", "exercise_intensity"):
        flags |= _CTX_EXERCISE
        duration = _EXERCISE_DURATION_OVERRUN if c.exercise_duration is None else c.exercise_duration
        body += duration.to_bytes(2, "little") + bytes([c.exercise_intensity or 0])
    if c.medication_unit is not None:
        flags |= _CTX_MEDICATION
        if c.medication_unit is MedicationUnit.LITERS:
            flags |= _CTX_MEDICATION_LITERS
        body += bytes([_code_of(_MEDICATION_CODES, c.medication_id)])
        body += encode_sfloat_field(c.medication, "medication", c.special_values)
    if _sent(c, "hba1c"):
        flags |= _CTX_HBA1C
        body += encode_sfloat_field(c.hba1c, "hba1c", c.special_values)
    return bytes([flags]) + body


# -- JSON ----------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _name(member: StrEnum | None) -> str | None:
    return member.value if member is not None else None


def to_json_dict(reading: GlucoseMeasurement | GlucoseMeasurementContext) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case."""
    if isinstance(reading, GlucoseMeasurement):
        return {
            "sequence_number": reading.sequence_number,
            "base_time": _iso(reading.base_time),
            "time_offset": reading.time_offset,
            "timestamp": _iso(reading.timestamp),
            "glucose_concentration": reading.glucose_concentration,
            "unit": _name(reading.unit),
            "glucose_mg_dl": reading.glucose_mg_dl,
            "glucose_mmol_l": reading.glucose_mmol_l,
            "type": _name(reading.type),
            "sample_location": _name(reading.sample_location),
            "sensor_status": [s.value for s in reading.sensor_status],
            "context_information_follows": reading.context_information_follows,
            "special_values": dict(reading.special_values),
        }
    if isinstance(reading, GlucoseMeasurementContext):
        return {
            "sequence_number": reading.sequence_number,
            "extended_flags": reading.extended_flags,
            "carbohydrate_id": _name(reading.carbohydrate_id),
            "carbohydrate": reading.carbohydrate,
            "meal": _name(reading.meal),
            "tester": _name(reading.tester),
            "health": _name(reading.health),
            "exercise_duration": reading.exercise_duration,
            "exercise_intensity": reading.exercise_intensity,
            "medication_id": _name(reading.medication_id),
            "medication": reading.medication,
            "medication_unit": _name(reading.medication_unit),
            "hba1c": reading.hba1c,
            "special_values": dict(reading.special_values),
        }
    raise TypeError(f"not a glucose reading: {type(reading).__name__}")
