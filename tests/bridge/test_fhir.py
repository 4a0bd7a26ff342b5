"""FHIR R4 out of the bridge (issue 21): every resource it makes validates (fhir.resources) and
carries what the profiles it names require, checked element by element against the specs'
own codes; the search finds what it should for each role; the bulk export and `doorstep export
fhir` (a real subprocess on a real SQLite bridge database) give the same resources; a resident's
home blood-pressure average goes out as CardX's average-smbp with the numbers the doctor's page
and the printed report show."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.fhir.search import Averaging, export
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import DEVELOPMENT_SECRET
from cloud_bridge.store import migrate
from contract.clinical import BloodPressureGuideline, dangerous_line
from contract.payloads import (
    BloodPressurePayload, DeviceIdentity, GlucosePayload, Spo2Payload, TemperaturePayload, WeightPayload,
)
from contract.topics import ReadingKind
from doorstep.cli import app
from runtime.db import create_durable_engine
from tests.bridge.wire_kiosk import WireKiosk
from tests.support import ServedApp, api_token

HOME, AWAY = "test-site", "other-site"
WANG, LI, ZHAO = "a" * 64, "b" * 64, "c" * 64  # residents' pseudonyms: Wang and Li at HOME, Zhao AWAY
DAY1 = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
ROLES = ("technician", "station_staff", "doctor", "read_only", "anonymous")

MODELS: dict[str, Any] = {"Patient": Patient, "Device": Device, "Observation": Observation}
# The bridge's defaults (BridgeContext, BridgeSettings): the 2018 Chinese guideline, Shanghai's days.
AVERAGING = Averaging(BloodPressureGuideline(), dangerous_line(BloodPressureGuideline(), AlertRules().dangerous_blood_pressure),
                      ZoneInfo("Asia/Shanghai"))


def bp(systolic: float | None, diastolic: float | None, subject: str | None, **more: Any) -> BloodPressurePayload:
    return BloodPressurePayload(unit=more.pop("unit", "mmHg"), systolic=systolic, diastolic=diastolic,
                                mean_arterial_pressure=None, subject=subject, **more)


def seed(engine: Engine) -> None:
    home, away = WireKiosk(site=HOME), WireKiosk(site=AWAY)
    oximeter = DeviceIdentity(model="yuwell-yx110", address="C0:26:DA:00:11:22", firmware="2.0")
    meter = DeviceIdentity(model="sinocare-gold", address="C0:26:DA:00:11:23")
    thermometer = DeviceIdentity(model="omron-mc-682", address="C0:26:DA:00:11:24")
    scale = DeviceIdentity(model="xiaomi-scale-2", address="C0:26:DA:00:11:25")
    records = [
        home.reading(bp(128, 82, WANG, pulse_rate=71), at=DAY1),
        # A cuff in kPa (20.0 kPa = 150.0 mmHg), flagged unreliable by the kiosk.
        home.reading(bp(20.0, 12.0, WANG, unit="kPa", suspect=["diastolic_above_systolic_margin"]), at=DAY1 + timedelta(days=1)),
        home.reading(bp(None, 80, WANG, special_values={"systolic": "nan"}), at=DAY1 + timedelta(days=2)),
        home.reading(GlucosePayload(glucose_concentration=6.1, unit="mmol/L", subject=WANG), ReadingKind.GLUCOSE,
                     device=meter, at=DAY1 + timedelta(days=3)),
        home.reading(GlucosePayload(glucose_concentration=110, unit="mg/dL", subject=LI), ReadingKind.GLUCOSE,
                     device=meter, at=DAY1 + timedelta(days=3)),
        home.reading(TemperaturePayload(temperature=36.6, unit="Cel", subject=LI), ReadingKind.TEMPERATURE,
                     device=thermometer, at=DAY1 + timedelta(days=4)),
        home.reading(WeightPayload(weight=61.5, unit="kg", subject=WANG), ReadingKind.WEIGHT, device=scale,
                     at=DAY1 + timedelta(days=5)),
        home.reading(Spo2Payload(spo2=97, pulse_rate=66, subject=LI), ReadingKind.SPO2, device=oximeter,
                     at=DAY1 + timedelta(days=6)),
        home.reading(bp(150, 95, None), at=DAY1 + timedelta(days=6)),  # anonymous: no patient, not exported
        away.reading(bp(140, 90, ZHAO, pulse_rate=80), at=DAY1),
    ]
    commit_gulp(engine, records, rules=AlertRules(), notify=False, received_at=DAY1 + timedelta(days=7))


def lines_of(resources: Any) -> list[dict[str, Any]]:
    return [json.loads(r.model_dump_json()) for r in resources]


def exported(engine: Engine, site: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return lines_of(export(session, site, since, AVERAGING))


# --- Every resource validates and carries what its profiles require ------------------------------

LOINC, UCUM, MDC = "http://loinc.org", "http://unitsofmeasure.org", "urn:iso:std:iso:11073:10101"
VS = "http://hl7.org/fhir/StructureDefinition/"
# LOINC code -> (R4 vital-signs profile, or None: not a vital sign; the UCUM unit it has here)
EXPECTED = {
    "85354-9": ("bp", None),  # a panel: its values are in its components
    "8867-4": ("heartrate", "/min"),
    "8310-5": ("bodytemp", "Cel"),
    "29463-7": ("bodyweight", "kg"),
    "2708-6": ("oxygensat", "%"),
    "14743-9": (None, "mmol/L"),
    "41653-7": (None, "mg/dL"),
}


def codes(concept: dict[str, Any], system: str) -> set[str]:
    return {c["code"] for c in concept["coding"] if c["system"] == system}


CARDX = "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/"


def check_average(o: dict[str, Any]) -> None:
    """CardX average-smbp (IG 1.0.0, input/fsh/AverageSMBP.fsh), element by element: the count of
    readings 1..1, status, category vital-signs, subject and performer the patient, effectivePeriod
    with start and end, issued, no value, the systolic and diastolic means in mm[Hg]."""
    assert o["meta"]["profile"] == [CARDX + "average-smbp"]
    [count] = [e["valueInteger"] for e in o["extension"] if e["url"] == CARDX + "NumberOfMeasurementsExt"]
    assert count >= 1 and count == len(o["derivedFrom"])
    assert o["status"] == "final" and o["subject"]["reference"].startswith("Patient/") and o["performer"] == [o["subject"]]
    assert {(c["system"], c["code"]) for cat in o["category"] for c in cat["coding"]} == {
        ("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")}
    assert o["effectivePeriod"]["start"] < o["effectivePeriod"]["end"] and o["issued"]
    assert not {k for k in o if k.startswith("value")} and "effectiveDateTime" not in o
    by_code = {next(iter(codes(c["code"], LOINC))): c["valueQuantity"] for c in o["component"]}
    assert set(by_code) == {"96608-5", "96609-3"}
    assert all((q["system"], q["code"]) == (UCUM, "mm[Hg]") for q in by_code.values())


def check_observation(o: dict[str, Any]) -> None:
    """The elements the profiles named in meta.profile require, read from the specs (R4 Vital
    Signs, CardX self-measured-bp and average-smbp, PHD base observation), not from our mapping."""
    [loinc] = codes(o["code"], LOINC) - {"59408-5"}
    if loinc == "96607-7":
        check_average(o)
        return
    profile, unit = EXPECTED[loinc]
    assert o["status"] == "final" and o["subject"]["reference"].startswith("Patient/")
    assert o["effectiveDateTime"] and o["issued"]
    categories = {(c["system"], c["code"]) for cat in o["category"] for c in cat["coding"]}
    # PHD: every observation from a personal health device, its MDC code beside the LOINC one, the
    # device that measured and the gateway (the kiosk) that forwarded it.
    assert ("http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories", "phd-observation") in categories
    assert codes(o["code"], MDC) and o["device"]["reference"].startswith("Device/")
    [gateway] = [e for e in o["extension"] if e["url"] == "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"]
    assert gateway["valueReference"]["reference"].startswith("Device/")
    if profile is None:
        assert ("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory") in categories
    else:
        assert {VS + "vitalsigns", VS + profile} <= set(o["meta"]["profile"])
        assert ("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs") in categories
    if loinc == "2708-6":
        assert "59408-5" in codes(o["code"], LOINC)
    if loinc == "85354-9":
        # CardX self-measured blood pressure: issued and performer (the resident) required.
        assert "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/self-measured-bp" in o["meta"]["profile"]
        assert o["performer"] == [o["subject"]]
        by_code = {next(iter(codes(c["code"], LOINC))): c for c in o["component"]}
        for part in ("8480-6", "8462-4"):  # systolic and diastolic: a value in mm[Hg] or a reason
            component = by_code[part]
            assert ("valueQuantity" in component) != ("dataAbsentReason" in component)
            if "valueQuantity" in component:
                assert (component["valueQuantity"]["system"], component["valueQuantity"]["code"]) == (UCUM, "mm[Hg]")
    else:
        quantity = o["valueQuantity"]
        assert (quantity["system"], quantity["code"]) == (UCUM, unit)


def empty_elements(element: Any, path: str = "") -> Iterator[str]:
    """Where a resource holds an empty object, array or string: FHIR JSON has none (R4 json.html)."""
    if element in ({}, [], ""):
        yield path
    children = element.items() if isinstance(element, dict) else enumerate(element) if isinstance(element, list) else ()
    for key, child in children:
        yield from empty_elements(child, f"{path}.{key}")


@pytest.fixture
def seeded(bridge_engine: Engine) -> Engine:
    seed(bridge_engine)
    return bridge_engine


def test_every_resource_validates_and_carries_what_its_profiles_require(seeded: Engine) -> None:
    everything = exported(seeded)
    kinds = [r["resourceType"] for r in everything]
    # Patients, then kiosks and devices, then observations: each after what it refers to.
    assert kinds == sorted(kinds, key=["Patient", "Device", "Observation"].index)
    for resource in everything:
        model = MODELS[resource["resourceType"]]
        assert json.loads(model.model_validate(resource).model_dump_json()) == resource  # valid, and nothing lost
        assert not list(empty_elements(resource)), resource
        if resource["resourceType"] == "Observation":
            check_observation(resource)
    ids = {f"{r['resourceType']}/{r['id']}" for r in everything}
    found = [o for o in everything if o["resourceType"] == "Observation"]
    references = {o["device"]["reference"] for o in found if "device" in o}
    references |= {o["subject"]["reference"] for o in found}
    references |= {d["reference"] for o in found for d in o.get("derivedFrom", [])}
    assert references <= ids  # nothing refers to a resource the export left out
    # Ten readings: one anonymous (left out); two pressures and an SpO2 with a pulse make two each;
    # then Wang's and Zhao's home blood-pressure averages, after the readings they rest on.
    assert kinds.count("Observation") == 9 + 3 + 2 and kinds.count("Patient") == 3
    assert [next(iter(codes(o["code"], LOINC))) for o in found][-2:] == ["96607-7", "96607-7"]


def test_a_reading_becomes_an_observation_whole(seeded: Engine) -> None:
    """The kPa reading flagged unreliable, every element of it."""
    [o] = [r for r in exported(seeded, HOME) if r["resourceType"] == "Observation"
           and r.get("interpretation") and "effectiveDateTime" in r]  # not the home average
    device, gateway = o["device"]["reference"], o["extension"][0]["valueReference"]["reference"]
    assert device.startswith(f"Device/{HOME}.phd-") and gateway.startswith(f"Device/{HOME}.phg-")
    panel = {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel with all children optional"},
                        {"system": MDC, "code": "150020", "display": "MDC_PRESS_BLD_NONINV"}],
             "text": "Blood pressure panel with all children optional"}
    assert o == {
        "resourceType": "Observation",
        "id": o["id"],
        "meta": {"profile": [VS + "vitalsigns", VS + "bp",
                             "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/self-measured-bp"]},
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
                       "valueReference": {"reference": gateway}}],
        "identifier": [{"value": o["id"]}],
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]},
                     {"coding": [{"system": "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories",
                                  "code": "phd-observation"}]}],
        "code": panel,
        "subject": {"reference": f"Patient/{WANG}"},
        "effectiveDateTime": "2026-11-03T07:30:00Z",
        "issued": "2026-11-09T07:30:00Z",
        "performer": [{"reference": f"Patient/{WANG}"}],
        "interpretation": [{"coding": [{"system": "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status",
                                        "code": "questionable", "display": "questionable"}],
                            "text": "flagged unreliable by the kiosk"}],
        "note": [{"text": "The kiosk flagged this reading as unreliable: diastolic_above_systolic_margin"}],
        "device": {"reference": device},
        "component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"},
                                 {"system": MDC, "code": "150021", "display": "MDC_PRESS_BLD_NONINV_SYS"}],
                      "text": "Systolic blood pressure"},
             "valueQuantity": {"value": 150.0, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"},
                                 {"system": MDC, "code": "150022", "display": "MDC_PRESS_BLD_NONINV_DIA"}],
                      "text": "Diastolic blood pressure"},
             "valueQuantity": {"value": 90.0, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
        ],
    }


def test_the_resident_is_a_pseudonym_and_the_devices_are_the_phd_guides(seeded: Engine) -> None:
    everything = exported(seeded, HOME)
    patients = [r for r in everything if r["resourceType"] == "Patient"]
    assert patients == [
        {"resourceType": "Patient", "id": p, "identifier": [
            {"use": "secondary", "system": f"urn:doorstep:resident-pseudonym:{HOME}", "value": p}]}
        for p in (WANG, LI)
    ]
    devices = {r["id"]: r for r in everything if r["resourceType"] == "Device"}
    gateways = [d for d in devices.values() if codes(d["type"], MDC) == {"531981"}]  # PHD: PhgDevice.type
    assert [g["identifier"][1] for g in gateways] == [{"system": f"urn:doorstep:kiosk:{HOME}", "value": "kiosk-1"}]
    cuffs = [d for d in devices.values() if codes(d["type"], MDC) == {"528391"}]  # MDC_DEV_SPEC_PROFILE_BPM
    [cuff] = cuffs
    assert cuff["parent"] == {"reference": f"Device/{gateways[0]['id']}"}
    assert {(i["type"]["coding"][0]["code"], i["value"]) for i in cuff["identifier"]} == {
        ("SYSID", "00-00-00-00-00-00-00-00"), ("BTMAC", "A4-C1-38-12-34-56")}
    assert cuff["modelNumber"] == "omron-hem-7361t" and cuff["version"][0]["value"] == "1.2.0"


# --- The API, for each role -----------------------------------------------------------------------


@dataclass
class Api:
    served: ServedApp
    tokens: dict[str, str | None]
    engine: Engine

    def get(self, role: str, path: str) -> Any:
        self.served.token = self.tokens[role]
        answer = self.served.request("GET", path)
        if isinstance(answer.body, str):  # application/fhir+json, which the helper leaves as text
            answer.body = json.loads(answer.body)
        return answer


@pytest.fixture
def api(seeded: Engine) -> Iterator[Api]:
    tokens: dict[str, str | None] = {
        "technician": api_token(seeded, DEVELOPMENT_SECRET, "technician"),
        "station_staff": api_token(seeded, DEVELOPMENT_SECRET, "station_staff", HOME),
        "doctor": api_token(seeded, DEVELOPMENT_SECRET, "doctor", HOME),
        "read_only": api_token(seeded, DEVELOPMENT_SECRET, "read_only"),
        "anonymous": None,
    }
    with ServedApp(create_app(seeded, BridgeContext(seeded, secret_key=DEVELOPMENT_SECRET))) as served:
        yield Api(served, tokens, seeded)


def observations_found(api: Api, query: str) -> list[dict[str, Any]]:
    """Every page of a search as the HOME doctor, following `next` links."""
    found: list[dict[str, Any]] = []
    path: str | None = f"/fhir/Observation?{query}"
    while path is not None:
        answer = api.get("doctor", path)
        assert answer.status == 200, answer.body
        bundle = Bundle.model_validate(answer.body)
        assert bundle.type == "searchset"
        found += [e.model_dump(mode="json")["resource"] for e in bundle.entry or []]
        following = [str(link.url).split(str(api.served.port), 1)[1] for link in bundle.link or []
                     if link.relation == "next"]
        path = following[0] if following else None
    return found


def summary(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(patient, day, code): the day a reading was taken, or the first day an average counts."""
    return [(o["subject"]["reference"].removeprefix("Patient/")[:1],
             (o.get("effectiveDateTime") or o["effectivePeriod"]["start"])[:10],
             next(c["code"] for c in o["code"]["coding"])) for o in found]


# Wang's home average: the week ending 2026-11-04 (Shanghai), 30 October to 4 November counted.
WANG_AVERAGE = ("a", "2026-10-30", "96607-7")


def test_a_search_finds_the_residents_readings_by_patient_date_and_code(api: Api) -> None:
    assert summary(observations_found(api, f"patient=Patient/{WANG}")) == [
        ("a", "2026-11-02", "85354-9"), ("a", "2026-11-02", "8867-4"), ("a", "2026-11-03", "85354-9"),
        ("a", "2026-11-04", "85354-9"), ("a", "2026-11-05", "14743-9"), ("a", "2026-11-07", "29463-7"),
        WANG_AVERAGE]
    # Dates: ge and lt bound the days; a day alone is that whole day. The average's period
    # (29 October 16:00 to 4 November 16:00 UTC) overlaps the range above 3 November and the
    # range below 5 November (R4 search 3.1.1.4.1.1), and not the range above 4 November.
    assert summary(observations_found(api, f"patient={WANG}&date=ge2026-11-03&date=lt2026-11-05")) == [
        ("a", "2026-11-03", "85354-9"), ("a", "2026-11-04", "85354-9"), WANG_AVERAGE]
    assert summary(observations_found(api, f"patient={WANG}&date=gt2026-11-04&date=le2026-11-05")) == [
        ("a", "2026-11-05", "14743-9")]
    assert len(observations_found(api, "date=2026-11-02T07:30:00Z")) == 2  # eq: a second holds no week
    # The average by its code (CardX average-smbp: 96607-7), and eq when the range holds its week.
    assert summary(observations_found(api, "code=http://loinc.org|96607-7")) == [WANG_AVERAGE]
    assert summary(observations_found(api, "code=96607-7&date=2026")) == [WANG_AVERAGE]
    assert observations_found(api, "code=96607-7&date=2026-11") == []  # starts on 29 October, UTC
    # Code: system|code or code alone, several meaning any; a pulse from a cuff and from an oximeter.
    assert summary(observations_found(api, "code=http://loinc.org|8867-4")) == [
        ("a", "2026-11-02", "8867-4"), ("b", "2026-11-08", "8867-4")]
    assert summary(observations_found(api, "code=8310-5,29463-7")) == [("b", "2026-11-06", "8310-5"),
                                                                       ("a", "2026-11-07", "29463-7")]
    assert observations_found(api, "code=http://snomed.info/sct|8867-4") == []
    # Pages of two, followed by their next links, give the same as one page.
    assert observations_found(api, "_count=2") == observations_found(api, "_count=100")
    # Another site's resident is not found by the HOME doctor, even by pseudonym.
    assert observations_found(api, f"patient={ZHAO}") == []


def test_only_a_doctor_reads_fhir_and_only_their_own_site(api: Api) -> None:
    def statuses(path: str) -> dict[str, int]:
        got = {}
        for role in ROLES:
            answer = api.get(role, path)
            got[role] = answer.status
            if answer.status >= 400:  # every refusal is an OperationOutcome
                assert OperationOutcome.model_validate(answer.body).issue[0].diagnostics
        return got

    refused = {"technician": 403, "station_staff": 403, "read_only": 403, "anonymous": 401}
    assert statuses("/fhir/Observation") == {**refused, "doctor": 200}
    assert statuses("/fhir/Observation?code=96607-7") == {**refused, "doctor": 200}
    assert observations_found(api, f"patient={ZHAO}&code=96607-7") == []  # another site's average
    assert statuses(f"/fhir/Patient/{WANG}") == {**refused, "doctor": 200}
    assert statuses(f"/fhir/Patient/{ZHAO}") == {**refused, "doctor": 404}
    everywhere = exported(api.engine)
    home_cuff, away_cuff = (next(r["device"]["reference"] for r in everywhere
                                 if r["resourceType"] == "Observation" and r["subject"]["reference"] == f"Patient/{p}")
                            for p in (WANG, ZHAO))
    assert statuses(f"/fhir/{home_cuff}") == {**refused, "doctor": 200}
    assert statuses(f"/fhir/{away_cuff}") == {**refused, "doctor": 404}
    assert statuses(f"/fhir/$export?site={AWAY}") == {**refused, "doctor": 403}
    assert api.get("doctor", f"/fhir/{home_cuff}").body == next(
        r for r in everywhere if f"Device/{r['id']}" == home_cuff)
    bad = api.get("doctor", "/fhir/Observation?date=ge2026-13-45")
    assert bad.status == 400 and "date" in bad.body["issue"][0]["diagnostics"]
    # Refused before any route reads it (runtime/http_limits.py), and still FHIR's answer.
    nul = api.get("doctor", "/fhir/Observation?code=%00")
    assert nul.status == 400 and "U+0000" in nul.body["issue"][0]["diagnostics"]


def test_the_export_over_http_is_the_sites_ndjson(api: Api) -> None:
    api.served.token = api.tokens["doctor"]
    request = urllib_get(api.served.port, "/fhir/$export?_since=2026-11-05", api.tokens["doctor"])
    content_type, body = request
    assert content_type == "application/fhir+ndjson"
    engine = api.engine
    assert [json.loads(line) for line in body.splitlines()] == exported(engine, HOME, datetime(2026, 11, 5, tzinfo=UTC))


def urllib_get(port: int, path: str, token: str | None) -> tuple[str, str]:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("content-type"), response.read().decode()


# --- The command line ------------------------------------------------------------------------------


runner = CliRunner()


def doorstep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doorstep", *args], capture_output=True, text=True, timeout=60)


def test_the_command_line_export_round_trips(tmp_path: Path) -> None:
    """A real SQLite bridge database, a real subprocess: the file holds what the bridge holds."""
    database = f"sqlite:///{tmp_path / 'bridge.sqlite3'}"
    engine = create_durable_engine(database)
    migrate(engine)
    seed(engine)
    config = tmp_path / "bridge.yaml"
    config.write_text(yaml.safe_dump({"database_url": database, "environment": "development"}))
    written = doorstep("export", "fhir", "--config", str(config), "--site", HOME, "--since", "2026-11-05",
                       "--output", str(tmp_path / "home.ndjson"))
    assert written.returncode == 0, written.stderr
    lines = (tmp_path / "home.ndjson").read_text().splitlines()
    assert [json.loads(line) for line in lines] == exported(engine, HOME, datetime(2026, 11, 5, tzinfo=UTC))
    # The same command in-process (typer's runner; the subprocess above is the round trip):
    # every site to standard output, and the one-line refusals.
    everything = runner.invoke(app, ["export", "fhir", "--config", str(config)])
    assert everything.exit_code == 0
    assert [json.loads(line) for line in everything.stdout.splitlines()] == exported(engine)
    averages = [json.loads(line) for line in everything.stdout.splitlines() if '"96607-7"' in line]
    assert [a["subject"]["reference"] for a in averages] == [f"Patient/{ZHAO}", f"Patient/{WANG}"]  # by site
    for args, problem in [
        (["--site", "nowhere"], "--site: no site 'nowhere'"),
        (["--since", "2026-13-01"], "--since:"),
        (["--config", str(tmp_path / "missing.yaml")], "missing.yaml"),
    ]:
        refused = runner.invoke(app, ["export", "fhir", "--config", str(config), *args])
        assert refused.exit_code == 1 and refused.stdout == ""
        assert refused.stderr.startswith("error: ") and problem in refused.stderr and refused.stderr.count("\n") == 1
    engine.dispose()


# --- The home average: the page's, the report's and the export's are one ---------------------------

SUN = "d" * 64
SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def test_the_home_average_is_the_pages_and_the_reports(api: Api, tmp_path: Path) -> None:
    """A week worked by hand (Shanghai time). 14 November is the first of the 7 days, left out;
    the 19th's reading is flagged unreliable, left out and counted. Counted: 150/90, 140/88,
    146/94, 138/86, 152/92: systolic 726 / 5 = 145.2, diastolic 450 / 5 = 90.0, on 5 readings;
    high by the 2018 guideline (systolic at or above 140); fewer than 12 readings."""
    week = [(bp(200, 120, SUN), shanghai(14, 8)),
            (bp(150, 90, SUN), shanghai(15, 7)), (bp(140, 88, SUN), shanghai(15, 20)),
            (bp(146, 94, SUN), shanghai(17, 7, 30)), (bp(138, 86, SUN), shanghai(18, 21)),
            (bp(260, 70, SUN, suspect=["pulse_pressure_too_narrow"]), shanghai(19, 8)),
            (bp(152, 92, SUN), shanghai(20, 7))]
    kiosk = WireKiosk(site=HOME)
    records = [kiosk.reading(payload, at=at.astimezone(UTC)) for payload, at in week]
    commit_gulp(api.engine, records, rules=AlertRules(), notify=False, received_at=datetime(2026, 11, 21, tzinfo=UTC))
    counted = [json.loads(records[i].body)["message_id"] for i in (1, 2, 3, 4, 6)]

    [average] = observations_found(api, f"patient={SUN}&code=96607-7")
    check_average(average)
    means = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in average["component"]}
    assert means == {"96608-5": 145.2, "96609-3": 90.0}
    assert average["extension"] == [{"url": CARDX + "NumberOfMeasurementsExt", "valueInteger": 5}]
    assert average["derivedFrom"] == [{"reference": f"Observation/{m}"} for m in counted]
    assert average["effectivePeriod"] == {"start": "2026-11-15T00:00:00+08:00", "end": "2026-11-20T23:59:59+08:00"}
    assert average["interpretation"][0]["coding"][0]["code"] == "high"
    assert average["note"] == [{"text": "The mean of the readings taken on 2026-11-15 to 2026-11-20 (site time), the day "
                                        "before them left out as the home blood-pressure guidelines do. It rests on 5 "
                                        "readings, fewer than the 12 the guidelines ask for a decision. Left out: 1 "
                                        "reading of those days flagged unreliable or incomplete."}]

    # The doctor's page shows the same numbers (cloud_bridge/averages.py, the one place) ...
    page = api.get("doctor", f"/api/v1/residents/{HOME}/{SUN}").body["average"]
    assert page["overall"] == {"systolic_mmhg": 145.2, "diastolic_mmhg": 90.0, "readings": 5}
    assert (page["first_day"], page["last_day"], page["category"]) == ("2026-11-15", "2026-11-20", "high")
    # ... and so does the printed report.
    pdf = api.get("doctor", f"/api/v1/residents/{HOME}/{SUN}/report.pdf").body
    (tmp_path / "report.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "report.pdf"), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert re.search(r"平均 Average: 145/90 mmHg（5 次 readings）\s+分级 Category: 高血压 high", text), text
    # The bulk export carries the same resource.
    assert average in exported(api.engine, HOME)
