"""The blood-pressure bands the dashboard draws: a bridge setting, served to logged-in people,
its top band the bridge's own dangerous-reading threshold."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.guideline import BloodPressureGuideline
from cloud_bridge.settings import DEVELOPMENT_SECRET, BridgeSettings
from tests.support import ServedApp, api_token


def served_settings(engine: Engine, **context: object) -> dict[str, object]:
    token = api_token(engine, DEVELOPMENT_SECRET, "doctor", "test-site")
    app = create_app(engine, BridgeContext(engine, secret_key=DEVELOPMENT_SECRET, **context))  # type: ignore[arg-type]
    with ServedApp(app, token=token) as api:
        answer = api.get("/api/v1/dashboard/settings")
        assert answer.status == 200
        return answer.body  # type: ignore[no-any-return]


def test_the_defaults_are_the_2018_chinese_guideline_and_the_alert_thresholds(bridge_engine: Engine) -> None:
    served = served_settings(bridge_engine)
    assert served == {
        "refresh_s": 5.0,
        "low_battery_percent": 20,
        "blood_pressure": {
            "unit": "mmHg",
            "guideline": "中国高血压防治指南（2018年修订版）",
            "bands": [
                {"category": "normal", "systolic_from": None, "systolic_below": 120.0,
                 "diastolic_from": None, "diastolic_below": 80.0, "alerts": False},
                {"category": "high_normal", "systolic_from": 120.0, "systolic_below": 140.0,
                 "diastolic_from": 80.0, "diastolic_below": 90.0, "alerts": False},
                {"category": "high", "systolic_from": 140.0, "systolic_below": 180.0,
                 "diastolic_from": 90.0, "diastolic_below": 120.0, "alerts": False},
                {"category": "very_high", "systolic_from": 180.0, "systolic_below": None,
                 "diastolic_from": 120.0, "diastolic_below": None, "alerts": True},
            ],
        },
    }


def test_the_settings_move_the_bands_and_the_alert_rules_move_the_top_one(bridge_engine: Engine) -> None:
    served = served_settings(
        bridge_engine,
        blood_pressure_guideline=BloodPressureGuideline(name="local protocol", high_systolic_mmhg=135, high_diastolic_mmhg=85),
        alert_rules=AlertRules(dangerous_systolic_mmhg=170, dangerous_diastolic_mmhg=110, low_battery_percent=25),
        dashboard_refresh_s=10,
    )
    bands = {b["category"]: b for b in served["blood_pressure"]["bands"]}  # type: ignore[index]
    assert (bands["high"]["systolic_from"], bands["high"]["diastolic_from"]) == (135, 85)
    assert (bands["high"]["systolic_below"], bands["very_high"]["systolic_from"]) == (170, 170)
    assert bands["very_high"]["diastolic_from"] == 110
    assert (served["refresh_s"], served["low_battery_percent"], served["blood_pressure"]["guideline"]) == (  # type: ignore[index]
        10, 25, "local protocol")


def test_bands_out_of_order_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="high_systolic_mmhg must be above high_normal_systolic_mmhg"):
        BloodPressureGuideline(high_normal_systolic_mmhg=140, high_systolic_mmhg=130)
    with pytest.raises(ValidationError, match="high_diastolic_mmhg must be above high_normal_diastolic_mmhg"):
        BloodPressureGuideline(high_diastolic_mmhg=80)
    # "High" must start below the dangerous-reading alert, or the chart and the alerts disagree.
    with pytest.raises(ValidationError, match="blood_pressure_guideline.high_systolic_mmhg must be below alerts.dangerous"):
        BridgeSettings(environment="development", alerts=AlertRules(dangerous_systolic_mmhg=140))
    with pytest.raises(ValidationError, match="dashboard_refresh_s"):
        BridgeSettings(environment="development", dashboard_refresh_s=0.1)


def test_the_settings_need_a_login(bridge_engine: Engine) -> None:
    with ServedApp(create_app(bridge_engine, BridgeContext(bridge_engine))) as api:
        refused = api.get("/api/v1/dashboard/settings")
    assert refused.status == 401 and refused.body["error"] == "unauthenticated"
