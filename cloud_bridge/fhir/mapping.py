"""Stored readings as FHIR R4 resources: each reading an Observation on the vital-signs profiles,
the resident a Patient known only by the pseudonym, the measuring device and the kiosk as the
Personal Health Device guide's device and gateway.

Resources are built with fhir.resources' R4B models (FHIR 4.3.0): R4B left Observation, Patient,
Device and Bundle as R4 has them for every element used here, and the library's only R4-era line
(6.x) needs pydantic 1. Profiles named in `meta.profile` are the R4 ones a doctor's system knows.

Sources, cited below by these names:
- [VS]   FHIR R4 Vital Signs profiles, http://hl7.org/fhir/R4/observation-vitalsigns.html
- [CardX] HL7 CardX Hypertension Management IG 1.0.0 (STU1): self-measured-bp, smbp-associated-heart-rate,
          average-smbp and the NumberOfMeasurementsExt extension (the IG's input/fsh/AverageSMBP.fsh and
          extensions.fsh, github.com/HL7/CardX-HTN-MNG at tag 1.0.0)
- [PHD]  HL7 Personal Health Device IG 2.0: PhdBaseObservation, PhdDevice, PhgDevice
- [MDC]  ISO/IEEE 11073-10101 nomenclature codes (partition * 2**16 + term)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, Final

from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import BaseModel, ValidationError

from cloud_bridge.averages import ENOUGH_READINGS, HomeAverage
from cloud_bridge.store import Reading
from contract.clinical import to_mmhg
from contract.payloads import (
    READING_PAYLOADS, BloodPressurePayload, GlucosePayload, Spo2Payload, TemperaturePayload, WeightPayload,
)
from contract.topics import ReadingKind

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
MDC: Final = "urn:iso:std:iso:11073:10101"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
# [PHD] PhdBaseObservation: category slice PHD-Observation, fixed system and code.
PHD_CATEGORY: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
# [PHD] PhdBaseObservation.extension: the gateway (PHG) that forwarded the measurement.
GATEWAY_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
# [PHD] PhdBaseObservation.interpretation slice MsmtStatusInterpretation.
MEASUREMENT_STATUS: Final = "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status"
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# [PHD] PhdDevice / PhgDevice identifier slices.
DEVICE_IDENTIFIER_TYPES: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers"
EUI64_SYSTEM: Final = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
# [PHD] PhdDevice: "To allow the mapping of non-compliant proprietary devices that do not provide
# a system id, the value is set to all zeros": our cuffs speak Bluetooth GATT, not 11073-20601.
NO_SYSTEM_ID: Final = "00-00-00-00-00-00-00-00"
BLUETOOTH_MAC_SYSTEM: Final = "http://hl7.org/fhir/sid/eui-48/bluetooth"

VITAL_SIGNS: Final = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
SELF_MEASURED_BP: Final = "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/self-measured-bp"
SMBP_HEART_RATE: Final = "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/smbp-associated-heart-rate"
AVERAGE_SMBP: Final = "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/average-smbp"
# [CardX] average-smbp.extension[NumberOfMeasurements] 1..1: how many readings the mean rests on.
NUMBER_OF_MEASUREMENTS: Final = "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/NumberOfMeasurementsExt"
# The category of a home average by the one clinical rule (contract/clinical.py), as its
# interpretation: the guideline's categories are ours to name (normal, high_normal, high, very_high).
BLOOD_PRESSURE_CATEGORY_SYSTEM: Final = "urn:doorstep:blood-pressure-category"

# Doorstep's own identifier systems: a pseudonym means something only with its site's key, so
# each site has its own system (the same card gives another pseudonym at another site).
RESIDENT_SYSTEM: Final = "urn:doorstep:resident-pseudonym:{site}"
KIOSK_SYSTEM: Final = "urn:doorstep:kiosk:{site}"

_MAC: Final = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
# FHIR id: [A-Za-z0-9\-\.]{1,64} (R4 datatypes, id). A site slug (at most 32) + "." + "phd-" + 26 hex fits.
_DIGEST_CHARS: Final = 26


@dataclass(frozen=True, slots=True)
class Code:
    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


def _loinc(code: str, display: str) -> Code:
    return Code(LOINC, code, display)


def _mdc(code: int, display: str) -> Code:
    return Code(MDC, str(code), display)


# What each observation is: its codes ([VS] the LOINC code first, [PHD] the MDC code with it).
BLOOD_PRESSURE_PANEL: Final = (_loinc("85354-9", "Blood pressure panel with all children optional"),
                               _mdc(150020, "MDC_PRESS_BLD_NONINV"))
SYSTOLIC: Final = (_loinc("8480-6", "Systolic blood pressure"), _mdc(150021, "MDC_PRESS_BLD_NONINV_SYS"))
DIASTOLIC: Final = (_loinc("8462-4", "Diastolic blood pressure"), _mdc(150022, "MDC_PRESS_BLD_NONINV_DIA"))
MEAN_PRESSURE: Final = (_loinc("8478-0", "Mean blood pressure"), _mdc(150023, "MDC_PRESS_BLD_NONINV_MEAN"))
# [CardX] average-smbp: code fixed to 96607-7; components SystolicBP 96608-5, DiastolicBP 96609-3.
AVERAGE_BLOOD_PRESSURE: Final = (_loinc("96607-7", "Blood pressure panel mean systolic and mean diastolic"),)
SYSTOLIC_MEAN: Final = (_loinc("96608-5", "Systolic blood pressure mean"),)
DIASTOLIC_MEAN: Final = (_loinc("96609-3", "Diastolic blood pressure mean"),)
HEART_RATE_FROM_CUFF: Final = (_loinc("8867-4", "Heart rate"), _mdc(149546, "MDC_PULS_RATE_NON_INV"))
HEART_RATE_FROM_OXIMETER: Final = (_loinc("8867-4", "Heart rate"), _mdc(149530, "MDC_PULS_OXIM_PULS_RATE"))
# Capillary blood from a meter: LOINC has one code per property, so the unit the meter reported
# picks it (mass concentration for mg/dL, substance concentration for mmol/L).
GLUCOSE_MASS: Final = (_loinc("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"),
                       _mdc(160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"))
GLUCOSE_MOLES: Final = (_loinc("14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"),
                        _mdc(160184, "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"))
BODY_TEMPERATURE: Final = (_loinc("8310-5", "Body temperature"), _mdc(150364, "MDC_TEMP_BODY"))
BODY_WEIGHT: Final = (_loinc("29463-7", "Body weight"), _mdc(188736, "MDC_MASS_BODY_ACTUAL"))
# [VS] oxygensat: 2708-6 required, 59408-5 (by pulse oximetry) alongside.
OXYGEN_SATURATION: Final = (_loinc("2708-6", "Oxygen saturation in Arterial blood"),
                            _loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
                            _mdc(150456, "MDC_PULS_OXIM_SAT_O2"))

# Which codes a search's `code` may name for each kind of reading (search.py narrows by kind first).
CODES_BY_KIND: Final[dict[ReadingKind, tuple[Code, ...]]] = {
    ReadingKind.BLOOD_PRESSURE: BLOOD_PRESSURE_PANEL + HEART_RATE_FROM_CUFF,
    ReadingKind.GLUCOSE: GLUCOSE_MASS + GLUCOSE_MOLES,
    ReadingKind.TEMPERATURE: BODY_TEMPERATURE,
    ReadingKind.WEIGHT: BODY_WEIGHT,
    ReadingKind.SPO2: OXYGEN_SATURATION + HEART_RATE_FROM_OXIMETER,
}

# [MDC] MDC_DEV_SPEC_PROFILE_* (528384 + the 11073-104xx specialization number): what the PHD is.
DEVICE_TYPES: Final[dict[ReadingKind, Code]] = {
    ReadingKind.SPO2: _mdc(528388, "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
    ReadingKind.BLOOD_PRESSURE: _mdc(528391, "MDC_DEV_SPEC_PROFILE_BPM"),
    ReadingKind.TEMPERATURE: _mdc(528392, "MDC_DEV_SPEC_PROFILE_TEMP"),
    ReadingKind.WEIGHT: _mdc(528399, "MDC_DEV_SPEC_PROFILE_SCALE"),
    ReadingKind.GLUCOSE: _mdc(528401, "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
}
GATEWAY_TYPE: Final = _mdc(531981, "MDC_MOC_VMS_MDS_AHD")  # [PHD] PhgDevice.type, fixed
FIRMWARE_VERSION: Final = _mdc(531976, "MDC_ID_PROD_SPEC_FW")  # [PHD] PhdDevice.version.type

# IEEE 11073-20601 special values (drivers/ble/ieee11073.py names them) as FHIR's reasons for a
# missing value; "nres" (not at this resolution) and the reserved ones have no closer code.
_ABSENT_REASONS: Final = {"nan": "not-a-number", "+inf": "positive-infinity", "-inf": "negative-infinity"}

# The units a reading's payload uses, as UCUM codes ([VS] bodytemp: Cel or [degF]; bodyweight:
# kg, g or [lb_av]).
_UCUM_UNITS: Final = {"mmHg": "mm[Hg]", "mg/dL": "mg/dL", "mmol/L": "mmol/L", "Cel": "Cel", "degF": "[degF]",
                      "kg": "kg", "lb": "[lb_av]", "%": "%", "/min": "/min"}


# --- Identities ---------------------------------------------------------------------------------


def patient_reference(pseudonym: str) -> str:
    return f"Patient/{pseudonym}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:_DIGEST_CHARS]


def device_id(site: str, kiosk: str, model: str, address: str) -> str:
    """The id of the device that measured (the PHD): one per device at one kiosk. It begins with
    its site, so that a lookup knows whose it is before it looks."""
    return f"{site}.phd-{_digest(kiosk, model, address)}"


def gateway_id(site: str, kiosk: str) -> str:
    """The id of a kiosk as the PHD guide's gateway (PHG)."""
    return f"{site}.phg-{_digest(kiosk)}"


def site_of_device_id(resource_id: str) -> str | None:
    site, dot, _rest = resource_id.partition(".")
    return site if dot else None


# --- Observations -------------------------------------------------------------------------------


def _when(value: datetime) -> str:
    # SQLite gives back naive datetimes; the bridge stores UTC.
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


def _codeable(codes: tuple[Code, ...]) -> dict[str, Any]:
    return {"coding": [c.coding() for c in codes], "text": codes[0].display}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": _UCUM_UNITS[unit]}


def _value(value: float | None, unit: str, field: str, special: dict[str, str]) -> dict[str, Any]:
    """valueQuantity, or dataAbsentReason when the device sent a special value instead ([VS] vs-2:
    a value or a reason for its absence)."""
    if value is not None:
        return {"valueQuantity": _quantity(value, unit)}
    reason = _ABSENT_REASONS.get(special.get(field, ""), "error")
    return {"dataAbsentReason": {"coding": [{"system": DATA_ABSENT_REASON, "code": reason}]}}


@dataclass(frozen=True, slots=True)
class _Context:
    """What every observation of one reading shares."""

    reading: Reading
    pseudonym: str
    suspect: list[str]

    def observation(self, suffix: str, codes: tuple[Code, ...], profiles: list[str], category: str,
                    **content: Any) -> Observation:
        row = self.reading
        resource_id = str(row.message_id) + suffix
        body: dict[str, Any] = {
            "resourceType": "Observation",
            "id": resource_id,
            # [PHD] identifier slice conditionalCreate: the same measurement re-sent is the same one.
            "identifier": [{"value": resource_id}],
            "status": "final",
            "category": [
                {"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]},
                {"coding": [{"system": PHD_CATEGORY, "code": "phd-observation"}]},
            ],
            "code": _codeable(codes),
            "subject": {"reference": patient_reference(self.pseudonym)},
            # [CardX] self-measured-bp: performer 1..1 Reference(Patient): taken by the resident.
            "performer": [{"reference": patient_reference(self.pseudonym)}],
            # The kiosk's clock (synchronised, or marked untrusted on the row), not the device's.
            "effectiveDateTime": _when(row.kiosk_time),
            "issued": _when(row.received_at),
            "extension": [{"url": GATEWAY_EXTENSION,
                           "valueReference": {"reference": f"Device/{gateway_id(row.site, row.kiosk)}"}}],
            **content,
        }
        if profiles:  # R4 json.html: an element is never an empty object or array
            body["meta"] = {"profile": profiles}
        if row.device_model is not None and row.device_address is not None:
            body["device"] = {"reference": f"Device/{device_id(row.site, row.kiosk, row.device_model, row.device_address)}"}
        if self.suspect:
            # Marked twice: a code a receiving system can filter on ([PHD] measurement status
            # "questionable"), and the kiosk's reasons in words for the doctor who reads it.
            reasons = ", ".join(self.suspect)
            body["interpretation"] = [{"coding": [{"system": MEASUREMENT_STATUS, "code": "questionable",
                                                   "display": "questionable"}],
                                       "text": "flagged unreliable by the kiosk"}]
            body["note"] = [{"text": f"The kiosk flagged this reading as unreliable: {reasons}"}]
        return Observation.model_validate(body)


def _vital(profile: str) -> list[str]:
    return [VITAL_SIGNS, f"http://hl7.org/fhir/StructureDefinition/{profile}"]


def _heart_rate(context: _Context, rate: float | None, codes: tuple[Code, ...], profiles: list[str]) -> list[Observation]:
    if rate is None:
        return []  # a pulse the device did not send is not an observation
    return [context.observation("-hr", codes, profiles, "vital-signs", valueQuantity=_quantity(rate, "/min"))]


def _blood_pressure(context: _Context, p: BloodPressurePayload) -> list[Observation]:
    def component(codes: tuple[Code, ...], value: float | None, field: str) -> dict[str, Any]:
        mmhg = None if value is None else round(to_mmhg(value, p.unit), 1)
        return {"code": _codeable(codes), **_value(mmhg, "mmHg", field, p.special_values)}

    components = [component(SYSTOLIC, p.systolic, "systolic"), component(DIASTOLIC, p.diastolic, "diastolic")]
    if p.mean_arterial_pressure is not None:
        components.append(component(MEAN_PRESSURE, p.mean_arterial_pressure, "mean_arterial_pressure"))
    panel = context.observation("", BLOOD_PRESSURE_PANEL, [*_vital("bp"), SELF_MEASURED_BP], "vital-signs",
                                component=components)
    rate = _heart_rate(context, p.pulse_rate, HEART_RATE_FROM_CUFF, [*_vital("heartrate"), SMBP_HEART_RATE])
    return [panel, *rate]


def _glucose(context: _Context, p: GlucosePayload) -> list[Observation]:
    codes = GLUCOSE_MASS if p.unit == "mg/dL" else GLUCOSE_MOLES
    # Not a vital sign in FHIR's value set ([VS] vitalsigns binds code to it): a glucose result
    # goes out as the laboratory category, as meters' results do in US Core and IPS.
    return [context.observation("", codes, [], "laboratory",
                                **_value(p.glucose_concentration, p.unit, "glucose_concentration", p.special_values))]


def _temperature(context: _Context, p: TemperaturePayload) -> list[Observation]:
    return [context.observation("", BODY_TEMPERATURE, _vital("bodytemp"), "vital-signs",
                                **_value(p.temperature, p.unit, "temperature", p.special_values))]


def _weight(context: _Context, p: WeightPayload) -> list[Observation]:
    return [context.observation("", BODY_WEIGHT, _vital("bodyweight"), "vital-signs",
                                **_value(p.weight, p.unit, "weight", p.special_values))]


def _spo2(context: _Context, p: Spo2Payload) -> list[Observation]:
    saturation = context.observation("", OXYGEN_SATURATION, _vital("oxygensat"), "vital-signs",
                                     **_value(p.spo2, "%", "spo2", p.special_values))
    return [saturation, *_heart_rate(context, p.pulse_rate, HEART_RATE_FROM_OXIMETER, _vital("heartrate"))]


_MAPPERS: Final[dict[ReadingKind, Callable[[_Context, Any], list[Observation]]]] = {
    ReadingKind.BLOOD_PRESSURE: _blood_pressure,
    ReadingKind.GLUCOSE: _glucose,
    ReadingKind.TEMPERATURE: _temperature,
    ReadingKind.WEIGHT: _weight,
    ReadingKind.SPO2: _spo2,
}


def observations(reading: Reading) -> list[Observation]:
    """The observations one stored reading makes: a blood pressure with a pulse makes two (the
    panel and the heart rate, [CardX] smbp-associated-heart-rate), as does an SpO2 with a pulse.
    None for an anonymous reading (there is no patient to send it to) or one stored by an older
    contract that the current one no longer reads."""
    if reading.subject is None:
        return []
    kind = ReadingKind(reading.kind)
    try:
        payload: BaseModel = READING_PAYLOADS[kind].model_validate(reading.payload)
    except ValidationError:
        return []
    suspect = list(getattr(payload, "suspect", []))
    return _MAPPERS[kind](_Context(reading, reading.subject, suspect), payload)


def average_period(average: HomeAverage, zone: tzinfo) -> tuple[datetime, datetime]:
    """The instants [start, end) of an average's counted days, in the sites' local time."""
    return (datetime.combine(average.first_day, time.min, tzinfo=zone),
            datetime.combine(average.last_day + timedelta(days=1), time.min, tzinfo=zone))


def average_id(site: str, pseudonym: str, average: HomeAverage) -> str:
    """One id per resident and period: the same week exported twice is the same Observation."""
    return f"{site}.avg-{_digest(pseudonym, average.first_day.isoformat(), average.last_day.isoformat())}"


def _count_of(n: int) -> str:
    return f"{n} reading" if n == 1 else f"{n} readings"


def average_observation(site: str, pseudonym: str, average: HomeAverage, rests_on: Sequence[Reading],
                        guideline: str, zone: tzinfo) -> Observation | None:
    """A resident's home blood-pressure average (cloud_bridge/averages.py) as [CardX] average-smbp:
    the means as its two components, the counted days as effectivePeriod, how many readings as
    NumberOfMeasurements, those readings as derivedFrom (only Reference(SelfMeasuredBloodPressure):
    the panels `observations` makes), the category by `guideline` as the interpretation. None when
    no reading could be averaged (the profile has no value without its components)."""
    overall = average.overall
    if overall is None or not rests_on:
        return None
    start, end = average_period(average, zone)
    resource_id = average_id(site, pseudonym, average)
    notes = [f"The mean of the readings taken on {average.first_day} to {average.last_day} (site time), the day "
             f"before them left out as the home blood-pressure guidelines do."]
    if not average.enough:
        notes.append(f"It rests on {_count_of(overall.readings)}, fewer than the {ENOUGH_READINGS} the guidelines "
                     f"ask for a decision.")
    if average.left_out_unreliable:
        notes.append(f"Left out: {_count_of(average.left_out_unreliable)} of those days flagged unreliable or "
                     f"incomplete.")
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id,
        "meta": {"profile": [AVERAGE_SMBP]},
        "extension": [{"url": NUMBER_OF_MEASUREMENTS, "valueInteger": overall.readings}],
        "identifier": [{"value": resource_id}],
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
        "code": _codeable(AVERAGE_BLOOD_PRESSURE),
        "subject": {"reference": patient_reference(pseudonym)},
        # [CardX] average-smbp: effectivePeriod 1..1 with start and end; the end is the last
        # instant of the last day counted (Period.end is inclusive, R4 datatypes Period).
        "effectivePeriod": {"start": start.isoformat(), "end": (end - timedelta(seconds=1)).isoformat()},
        # [CardX] issued 1..1: when the last reading it rests on reached the bridge, so that the
        # same week exported twice is the same resource.
        "issued": _when(max(row.received_at for row in rests_on)),
        "performer": [{"reference": patient_reference(pseudonym)}],
        "derivedFrom": [{"reference": f"Observation/{row.message_id}"} for row in rests_on],
        "note": [{"text": " ".join(notes)}],
        "component": [
            {"code": _codeable(SYSTOLIC_MEAN), "valueQuantity": _quantity(round(overall.systolic_mmhg, 1), "mmHg")},
            {"code": _codeable(DIASTOLIC_MEAN), "valueQuantity": _quantity(round(overall.diastolic_mmhg, 1), "mmHg")},
        ],
    }
    if average.category is not None:
        body["interpretation"] = [{
            "coding": [{"system": BLOOD_PRESSURE_CATEGORY_SYSTEM, "code": average.category.value,
                        "display": average.category.value.replace("_", " ")}],
            "text": f"{average.category.value.replace('_', ' ')} by {guideline}"}]
    return Observation.model_validate(body)


def has_code(observation: Observation, system: str | None, code: str) -> bool:
    """Whether the observation's code has this coding (FHIR search, token: system|code or code)."""
    return any(c.code == code and (system is None or c.system == system) for c in observation.code.coding or [])


# --- Patients and devices -----------------------------------------------------------------------


def patient(site: str, pseudonym: str) -> Patient:
    """A resident as the doctor's system sees them: the pseudonym and nothing else (no name, no
    card number, no birth date: the bridge holds none of them)."""
    return Patient.model_validate({
        "resourceType": "Patient",
        "id": pseudonym,
        "identifier": [{"use": "secondary", "system": RESIDENT_SYSTEM.format(site=site), "value": pseudonym}],
    })


def _system_id() -> dict[str, Any]:
    return {"type": {"coding": [{"system": DEVICE_IDENTIFIER_TYPES, "code": "SYSID"}]},
            "system": EUI64_SYSTEM, "value": NO_SYSTEM_ID}


@dataclass(frozen=True, slots=True)
class MeasuringDevice:
    """A device as readings name it (model, address, latest firmware) at a kiosk."""

    site: str
    kiosk: str
    kind: ReadingKind
    model: str
    address: str
    firmware: str | None


def device(found: MeasuringDevice) -> Device:
    """The device that measured, as [PHD] PhdDevice lays it out: the system id (zeros: see
    NO_SYSTEM_ID), its Bluetooth address, its specialization as the type, its firmware; its
    parent is the kiosk it measured at."""
    identifiers = [_system_id()]
    if _MAC.match(found.address):
        identifiers.append({"type": {"coding": [{"system": DEVICE_IDENTIFIER_TYPES, "code": "BTMAC"}]},
                            "system": BLUETOOTH_MAC_SYSTEM, "value": found.address.replace(":", "-").upper()})
    body: dict[str, Any] = {
        "resourceType": "Device",
        "id": device_id(found.site, found.kiosk, found.model, found.address),
        "identifier": identifiers,
        "modelNumber": found.model,
        "type": _codeable((DEVICE_TYPES[found.kind],)),
        "parent": {"reference": f"Device/{gateway_id(found.site, found.kiosk)}"},
    }
    if found.firmware:
        body["version"] = [{"type": _codeable((FIRMWARE_VERSION,)), "value": found.firmware}]
    return Device.model_validate(body)


def gateway(site: str, kiosk: str) -> Device:
    """A kiosk as [PHD] PhgDevice lays out the gateway: fixed type, system id, and the kiosk's
    own name under its site's identifier system."""
    return Device.model_validate({
        "resourceType": "Device",
        "id": gateway_id(site, kiosk),
        "identifier": [_system_id(), {"system": KIOSK_SYSTEM.format(site=site), "value": kiosk}],
        "type": _codeable((GATEWAY_TYPE,)),
        "deviceName": [{"name": f"Doorstep kiosk {kiosk} ({site})", "type": "user-friendly-name"}],
    })
