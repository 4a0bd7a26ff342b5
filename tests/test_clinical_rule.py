"""Issue 17, "one clinical rule, two answers": the kiosk's screen, the doctor's chart and the
dangerous-reading alert give one answer for one reading, from the settings as files write them.

Every expected value here is worked by hand from the 2018 Chinese guideline (very high from
180 systolic or 110 diastolic) and the definition of the unit (1 mmHg = 133.322 387 415 Pa);
none is computed with the rule under test. The kiosk's part runs its real measurement desk;
the bridge's, its real pipeline on a real database, and once through a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.alerts import Alert
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.decode import Inbound
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import DEVELOPMENT_SECRET, BridgeSettings
from doorstep.config_validate import validate_file
from contract.clinical import (
    BloodPressureGuideline, Threshold, category_of, check_dangerous_line, dangerous_line, is_dangerous, to_mmhg,
)
from broker_admin.mosquitto import MosquittoProcess
from runtime.mqtt import make_client
from contract.payloads import BloodPressurePayload
from contract.topics import QOS_RELIABLE
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from edge_agent.readings import outgoing
from edge_agent.screen.measurement import MeasurementDesk
from edge_agent.settings import AgentSettings
from tests.bridge.wire_kiosk import WireKiosk
from tests.support import KIOSK, SITE, Bridge, ServedApp, api_token, broker_settings, wait_until

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

# 165/112: the resident of the issue. 112 >= 110 diastolic: very high (grade 3), whatever 165 is.
RESIDENT_OF_THE_ISSUE = dict(systolic=165.0, diastolic=112.0, unit=BloodPressureUnit.MMHG)
# The same reading from a cuff set to kPa: 22.0 x 7.500 616 = 165.01, 14.9 x 7.500 616 = 111.76 mmHg.
IN_KPA = dict(systolic=22.0, diastolic=14.9, unit=BloodPressureUnit.KPA)
# Implausible: pulse pressure 96 - 91 = 5 mmHg (< 10) and a pulse of 240/min (> 220)
# (drivers/plausibility.py). By its numbers alone 91 >= 90 would make it "high".
NARROW_AND_RACING = dict(systolic=96.0, diastolic=91.0, pulse_rate=240.0, unit=BloodPressureUnit.MMHG)
# Implausible and, by its numbers alone, dangerous: a slipped cuff's 200/195 (pulse pressure 5).
SLIPPED_CUFF = dict(systolic=200.0, diastolic=195.0, pulse_rate=70.0, unit=BloodPressureUnit.MMHG)
# High, not very high: 150 < 180 and 95 < 110.
HIGH = dict(systolic=150.0, diastolic=95.0, pulse_rate=70.0, unit=BloodPressureUnit.MMHG)


def measurement(values: dict[str, Any]) -> BloodPressureMeasurement:
    return BloodPressureMeasurement(mean_arterial_pressure=None, **values)


def sent_by_the_kiosk(values: dict[str, Any], subject: str | None = None) -> BloodPressurePayload:
    """The payload as the kiosk's own code puts it on the wire, its plausibility verdict included."""
    payload = outgoing(measurement(values)).payload
    assert isinstance(payload, BloodPressurePayload)
    return payload.model_copy(update={"subject": subject})


# --- The rule itself ----------------------------------------------------------------------------


def test_the_one_constant_is_the_conventional_millimetre_of_mercury() -> None:
    # 100 mmHg = 100 x 133.322 387 415 Pa = 13.332 238 741 5 kPa, exactly.
    assert to_mmhg(13.3322387415, "kPa") == pytest.approx(100.0, abs=1e-9)
    assert to_mmhg(120.0, "mmHg") == 120.0
    with pytest.raises(ValueError, match="not a blood-pressure unit: 'cmH2O'"):
        to_mmhg(120.0, "cmH2O")


@pytest.mark.parametrize(
    ("systolic", "diastolic", "category"),
    [(119, 79, "normal"), (120, 79, "high_normal"), (139, 89, "high_normal"), (139, 90, "high"), (179, 109, "high"),
     (165, 112, "very_high"), (180, 60, "very_high"), (110, 110, "very_high")],
)
def test_the_higher_of_the_two_numbers_counts(systolic: float, diastolic: float, category: str) -> None:
    assert category_of(systolic, diastolic, "mmHg", BloodPressureGuideline(), suspect=()) == category


def test_no_category_without_a_plausible_value_and_no_alert_either() -> None:
    line = dangerous_line(BloodPressureGuideline())
    assert category_of(200, 195, "mmHg", BloodPressureGuideline(), suspect=["pulse_pressure_too_narrow"]) is None
    assert category_of(None, 95, "mmHg", BloodPressureGuideline(), suspect=()) is None
    assert not is_dangerous(200, 195, "mmHg", line, suspect=["pulse_pressure_too_narrow"])
    assert is_dangerous(165, 112, "mmHg", line, suspect=()) and not is_dangerous(179, 109, "mmHg", line, suspect=())


def test_the_alert_line_is_very_high_unless_set_apart_at_or_above_high() -> None:
    guideline = BloodPressureGuideline()
    assert dangerous_line(guideline) == Threshold(systolic=180, diastolic=110)
    apart = Threshold(systolic=200, diastolic=120)
    assert dangerous_line(guideline, apart) == apart
    check_dangerous_line(guideline, Threshold(systolic=140, diastolic=90))  # at high: allowed
    with pytest.raises(ValueError, match="130/95 must be at or above where high starts"):
        check_dangerous_line(guideline, Threshold(systolic=130, diastolic=95))


def test_the_contract_imports_nothing_of_ours() -> None:
    code = "import sys, contract.clinical; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    ours = ("doorstep", "contract", "runtime", "broker_admin", "kiosk_config", "drivers", "edge_agent", "cloud_bridge",
            "firmware_configs")
    assert [m for m in loaded if m.split(".")[0] in ours] == ["contract", "contract.clinical"]


# --- The kiosk's screen ------------------------------------------------------------------------


def kiosk_says(values: dict[str, Any], agent_yaml: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result the kiosk's screen is sent for this reading, with the agent's settings."""
    settings = AgentSettings.model_validate({"site": "s", "kiosk": "k", **(agent_yaml or {})})
    results: list[dict[str, Any]] = []
    desk = MeasurementDesk(bands=settings.screen.blood_pressure_bands, timeout_s=60, on_result=results.append)
    desk.reading_saved(1, measurement(values), None)
    [result] = results
    return result


def test_the_kiosk_calls_165_over_112_very_high_in_mmhg_and_in_kpa() -> None:
    assert kiosk_says(RESIDENT_OF_THE_ISSUE)["category"] == "very_high"
    assert kiosk_says(IN_KPA)["category"] == "very_high"
    assert kiosk_says(HIGH)["category"] == "high"


def test_an_implausible_reading_gets_no_category_on_the_kiosk() -> None:
    for values in (NARROW_AND_RACING, SLIPPED_CUFF):
        result = kiosk_says(values)
        assert result["category"] is None and result["suspect"], values  # "please measure again"


def test_an_agent_yaml_with_the_old_bands_keeps_its_meaning() -> None:
    # agent.yaml as written before issue 17: screen.blood_pressure_bands.{category}.{systolic,diastolic}.
    stricter = {"screen": {"blood_pressure_bands": {"high_normal": {"systolic": 115, "diastolic": 75},
                                                    "high": {"systolic": 130, "diastolic": 80},
                                                    "very_high": {"systolic": 170, "diastolic": 105}}}}
    assert kiosk_says(dict(systolic=132.0, diastolic=70.0, unit=BloodPressureUnit.MMHG), stricter)["category"] == "high"
    assert kiosk_says(dict(systolic=150.0, diastolic=106.0, unit=BloodPressureUnit.MMHG), stricter)["category"] == "very_high"


# --- The bridge: chart, readings and alert, from bridge.yaml -------------------------------------


def bridge_settings(tmp_path: Path, bridge_yaml: dict[str, Any]) -> BridgeSettings:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({"environment": "development", **bridge_yaml}), encoding="utf-8")
    return BridgeSettings.from_file(path)


def stored_through_the_pipeline(engine: Engine, settings: BridgeSettings, *payloads: BloodPressurePayload) -> None:
    """Each reading through the bridge's real pipeline, as its service wires it."""
    kiosk = WireKiosk()
    items: list[Inbound] = [kiosk.reading(p) for p in payloads]
    commit_gulp(engine, items, rules=settings.alerts, guideline=settings.blood_pressure_guideline, notify=False,
                 received_at=NOW)


def dangerous_alerts(engine: Engine) -> dict[str, tuple[float, float]]:
    with Session(engine) as session:
        found = session.exec(select(Alert).where(Alert.kind == "dangerous_reading")).all()
    return {a.about: (a.data["systolic_mmhg"], a.data["diastolic_mmhg"]) for a in found}


def served(engine: Engine, settings: BridgeSettings, path: str, **params: Any) -> Any:
    token = api_token(engine, DEVELOPMENT_SECRET, "doctor", WireKiosk().site)
    context = BridgeContext(engine, secret_key=DEVELOPMENT_SECRET, alert_rules=settings.alerts,
                            blood_pressure_guideline=settings.blood_pressure_guideline)
    with ServedApp(create_app(engine, context), token=token) as api:
        answer = api.get(path, **params)
    assert answer.status == 200, answer.body
    return answer.body


def test_the_doctors_chart_starts_very_high_where_the_kiosk_does(bridge_engine: Engine, tmp_path: Path) -> None:
    settings = bridge_settings(tmp_path, {})
    blood_pressure = served(bridge_engine, settings, "/api/v1/dashboard/settings")["blood_pressure"]
    very_high = {b["category"]: b for b in blood_pressure["bands"]}["very_high"]
    assert (very_high["systolic_from"], very_high["diastolic_from"]) == (180, 110)


def test_the_bridge_calls_165_over_112_very_high_and_alerts_but_not_an_implausible_reading(
    bridge_engine: Engine, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, {})
    stored_through_the_pipeline(
        bridge_engine, settings,
        sent_by_the_kiosk(RESIDENT_OF_THE_ISSUE, "a1" * 32),
        sent_by_the_kiosk(IN_KPA, "b2" * 32),
        sent_by_the_kiosk(SLIPPED_CUFF, "c3" * 32),
        sent_by_the_kiosk(HIGH, "d4" * 32),
    )
    assert dangerous_alerts(bridge_engine) == {"a1" * 32: (165, 112), "b2" * 32: (165, 112)}
    readings = served(bridge_engine, settings, "/api/v1/readings", kind="blood_pressure")["items"]
    meaning = {r["subject"]: r["blood_pressure"] for r in readings}
    assert {s: (m["category"], m["dangerous"]) for s, m in meaning.items()} == {
        "a1" * 32: ("very_high", True), "b2" * 32: ("very_high", True),
        "c3" * 32: (None, False), "d4" * 32: ("high", False),
    }


def test_a_kpa_reading_is_converted_at_the_one_constant(bridge_engine: Engine, tmp_path: Path) -> None:
    # 20 kPa = 20 000 Pa / 133.322 387 415 Pa/mmHg = 150.012 315 17 mmHg; 12 kPa = 90.007 389 10 mmHg.
    # (The old copies: 7.50062 gave 150.0124 at the bridge, 7.5006168, a torr's, 150.012 336 at the kiosk.)
    settings = bridge_settings(tmp_path, {})
    stored_through_the_pipeline(
        bridge_engine, settings, sent_by_the_kiosk(dict(systolic=20.0, diastolic=12.0, unit=BloodPressureUnit.KPA)))
    [reading] = served(bridge_engine, settings, "/api/v1/readings", kind="blood_pressure")["items"]
    assert reading["blood_pressure"]["systolic_mmhg"] == pytest.approx(150.01231517, abs=1e-8)
    assert reading["blood_pressure"]["diastolic_mmhg"] == pytest.approx(90.00738910, abs=1e-8)
    assert reading["blood_pressure"]["category"] == "high"  # 150 >= 140


def test_an_operator_sets_the_alert_line_apart_in_one_place(bridge_engine: Engine, tmp_path: Path) -> None:
    settings = bridge_settings(tmp_path, {"alerts": {"dangerous_blood_pressure": {"systolic": 200, "diastolic": 120}}})
    stored_through_the_pipeline(
        bridge_engine, settings,
        sent_by_the_kiosk(dict(systolic=190.0, diastolic=115.0, pulse_rate=70.0, unit=BloodPressureUnit.MMHG), "e5" * 32),
        sent_by_the_kiosk(dict(systolic=201.0, diastolic=100.0, pulse_rate=70.0, unit=BloodPressureUnit.MMHG), "f6" * 32),
        sent_by_the_kiosk(dict(systolic=150.0, diastolic=121.0, pulse_rate=70.0, unit=BloodPressureUnit.MMHG), "a7" * 32),
    )
    # 190/115: very high on the chart (>= 180), below 200 and 120: no page. 201 >= 200; 121 >= 120.
    assert dangerous_alerts(bridge_engine) == {"f6" * 32: (201, 100), "a7" * 32: (150, 121)}
    blood_pressure = served(bridge_engine, settings, "/api/v1/dashboard/settings")["blood_pressure"]
    very_high = {b["category"]: b for b in blood_pressure["bands"]}["very_high"]
    assert (very_high["systolic_from"], very_high["diastolic_from"]) == (180, 110)
    assert blood_pressure["dangerous_reading"] == {"systolic": 200, "diastolic": 120}


def test_an_alert_line_below_high_is_refused_with_the_file_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({"environment": "development",
                                    "alerts": {"dangerous_blood_pressure": {"systolic": 130, "diastolic": 95}}}))
    what, problems = validate_file(path)
    assert what == "bridge configuration"
    assert problems == [f"{path}: alerts.dangerous_blood_pressure: the dangerous-reading line 130/95 must be at or "
                        "above where high starts (140/90)"]
    path.write_text(yaml.safe_dump({"environment": "development",
                                    "alerts": {"dangerous_blood_pressure": {"systolic": 0, "diastolic": 120}}}))
    assert validate_file(path)[1] == [
        f"{path}: alerts.dangerous_blood_pressure.systolic: Input should be greater than 0"]


def test_a_bridge_yaml_with_the_old_keys_keeps_its_meaning(bridge_engine: Engine, tmp_path: Path) -> None:
    # bridge.yaml as written before issue 17: a flat guideline, and the alert thresholds, which
    # drew the chart's very high too. Both still mean what they meant.
    settings = bridge_settings(tmp_path, {
        "blood_pressure_guideline": {"name": "local protocol", "high_systolic_mmhg": 135, "high_diastolic_mmhg": 85},
        "alerts": {"dangerous_systolic_mmhg": 170, "dangerous_diastolic_mmhg": 105},
    })
    blood_pressure = served(bridge_engine, settings, "/api/v1/dashboard/settings")["blood_pressure"]
    starts = {b["category"]: (b["systolic_from"], b["diastolic_from"]) for b in blood_pressure["bands"]}
    assert starts == {"normal": (None, None), "high_normal": (120, 80), "high": (135, 85), "very_high": (170, 105)}
    assert blood_pressure["guideline"] == "local protocol"
    stored_through_the_pipeline(bridge_engine, settings, sent_by_the_kiosk(
        dict(systolic=160.0, diastolic=106.0, pulse_rate=70.0, unit=BloodPressureUnit.MMHG), "b8" * 32))
    assert dangerous_alerts(bridge_engine) == {"b8" * 32: (160, 106)}  # 106 >= 105


def test_an_old_key_and_its_new_place_both_set_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({"environment": "development", "alerts": {"dangerous_diastolic_mmhg": 120},
                                    "blood_pressure_guideline": {"very_high": {"systolic": 180, "diastolic": 110}}}))
    [problem] = validate_file(path)[1]
    assert problem == (f"{path}: alerts.dangerous_diastolic_mmhg (deprecated) and blood_pressure_guideline.very_high "
                       "both set very_high's diastolic: keep only blood_pressure_guideline.very_high.diastolic")


# --- End to end: a real broker, the bridge's worker, its API -------------------------------------


@pytest.mark.asyncio
async def test_through_the_broker_165_over_112_pages_the_doctor_and_a_slipped_cuff_does_not(
    running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    bridge: Bridge = bridge_factory(running_broker)
    kiosk = WireKiosk(site=SITE, kiosk=KIOSK)
    client = make_client("wire-kiosk", broker_settings(running_broker))
    client.connect(running_broker.host, running_broker.port)
    client.loop_start()
    try:
        await wait_until(lambda: bridge.ingest.connected, what="the bridge connected")
        await asyncio.sleep(0.3)
        # The slipped cuff first: its (absent) alert has had every chance once the others arrived.
        for payload in (sent_by_the_kiosk(SLIPPED_CUFF, "c3" * 32), sent_by_the_kiosk(RESIDENT_OF_THE_ISSUE, "a1" * 32),
                        sent_by_the_kiosk(IN_KPA, "b2" * 32)):
            reading = kiosk.reading(payload)
            client.publish(reading.topic, reading.body, qos=QOS_RELIABLE).wait_for_publish(5)
        with bridge.api(role="doctor", site=SITE) as doctor:
            await wait_until(lambda: doctor.get("/api/v1/readings").body["total"] == 3, what="all three stored")
            alerts = doctor.get("/api/v1/alerts", kind="dangerous_reading").body["items"]
            assert sorted(a["about"] for a in alerts) == ["a1" * 32, "b2" * 32]
    finally:
        client.loop_stop()
        client.disconnect()
