"""The blood-pressure bands the dashboard draws: a bridge setting, served to logged-in people,
by the one clinical rule (contract/clinical.py), with the dangerous-reading line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.settings import DEVELOPMENT_SECRET, BridgeSettings
from contract.clinical import BloodPressureGuideline, Threshold
from tests.support import ServedApp, api_token


def served_settings(engine: Engine, **context: object) -> dict[str, object]:
    token = api_token(engine, DEVELOPMENT_SECRET, "doctor", "test-site")
    app = create_app(engine, BridgeContext(engine, secret_key=DEVELOPMENT_SECRET, **context))  # type: ignore[arg-type]
    with ServedApp(app, token=token) as api:
        answer = api.get("/api/v1/dashboard/settings")
        assert answer.status == 200
        return answer.body  # type: ignore[no-any-return]


def test_the_defaults_are_the_2018_chinese_guideline_and_the_alert_fires_at_very_high(bridge_engine: Engine) -> None:
    # Before issue 17 very high (and the alert) started at 120 diastolic here and at 110 on the
    # kiosk; the guideline's grade 3 is >= 180 or >= 110.
    served = served_settings(bridge_engine)
    assert served == {
        "refresh_s": 5.0,
        "low_battery_percent": 20,
        "runway_h": 24.0,
        "blood_pressure": {
            "unit": "mmHg",
            "guideline": "中国高血压防治指南（2018年修订版）",
            "bands": [
                {"category": "normal", "systolic_from": None, "systolic_below": 120.0,
                 "diastolic_from": None, "diastolic_below": 80.0},
                {"category": "high_normal", "systolic_from": 120.0, "systolic_below": 140.0,
                 "diastolic_from": 80.0, "diastolic_below": 90.0},
                {"category": "high", "systolic_from": 140.0, "systolic_below": 180.0,
                 "diastolic_from": 90.0, "diastolic_below": 110.0},
                {"category": "very_high", "systolic_from": 180.0, "systolic_below": None,
                 "diastolic_from": 110.0, "diastolic_below": None},
            ],
            "dangerous_reading": {"systolic": 180.0, "diastolic": 110.0},
        },
    }


def test_the_settings_move_the_bands_and_the_alert_line_set_apart_moves_only_the_alert(bridge_engine: Engine) -> None:
    served = served_settings(
        bridge_engine,
        blood_pressure_guideline=BloodPressureGuideline(
            name="local protocol", high=Threshold(systolic=135, diastolic=85), very_high=Threshold(systolic=170, diastolic=105)),
        alert_rules=AlertRules(dangerous_blood_pressure=Threshold(systolic=190, diastolic=115), low_battery_percent=25),
        dashboard_refresh_s=10,
    )
    bands = {b["category"]: b for b in served["blood_pressure"]["bands"]}  # type: ignore[index]
    assert (bands["high"]["systolic_from"], bands["high"]["diastolic_from"]) == (135, 85)
    assert (bands["high"]["systolic_below"], bands["very_high"]["systolic_from"]) == (170, 170)
    assert bands["very_high"]["diastolic_from"] == 105
    assert served["blood_pressure"]["dangerous_reading"] == {"systolic": 190, "diastolic": 115}  # type: ignore[index]
    assert (served["refresh_s"], served["low_battery_percent"], served["blood_pressure"]["guideline"]) == (  # type: ignore[index]
        10, 25, "local protocol")


def test_bands_out_of_order_are_refused_with_the_field_named() -> None:
    # The old flat keys (deprecated, still read) and the new ones are checked alike.
    with pytest.raises(ValidationError, match=r"high.systolic \(130\) must be above high_normal.systolic \(140\) "
                                              r"\(deprecated keys moved: .*high_normal_systolic_mmhg"):
        BridgeSettings.model_validate({"environment": "development", "blood_pressure_guideline": {
            "high_normal_systolic_mmhg": 140, "high_systolic_mmhg": 130}})
    with pytest.raises(ValidationError, match=r"high.diastolic \(80\) must be above high_normal.diastolic \(80\)"):
        BloodPressureGuideline(high=Threshold(systolic=140, diastolic=80))
    # "High" must start below very high, which the old alert thresholds now set.
    with pytest.raises(ValidationError, match=r"very_high.systolic \(140\) must be above high.systolic \(140\) "
                                              r"\(deprecated keys moved: alerts.dangerous_systolic_mmhg"):
        BridgeSettings(environment="development", alerts=AlertRules(dangerous_systolic_mmhg=140))
    # A dangerous-reading line set apart must be at or above high, or the pager contradicts the chart.
    with pytest.raises(ValidationError, match="must be at or above where high starts"):
        BridgeSettings.model_validate(
            {"environment": "development", "alerts": {"dangerous_blood_pressure": {"systolic": 139, "diastolic": 120}}})
    with pytest.raises(ValidationError, match="dashboard_refresh_s"):
        BridgeSettings(environment="development", dashboard_refresh_s=0.1)


def test_the_settings_need_a_login(bridge_engine: Engine) -> None:
    with ServedApp(create_app(bridge_engine, BridgeContext(bridge_engine))) as api:
        refused = api.get("/api/v1/dashboard/settings")
    assert refused.status == 401 and refused.body["error"] == "unauthenticated"
