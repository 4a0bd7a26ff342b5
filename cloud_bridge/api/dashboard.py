"""What the dashboard's pages need from the bridge's configuration, so that none is hard-coded
in the browser: how often to refresh, the battery level that is low, and the blood-pressure
bands a resident's chart shows."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloud_bridge.api.deps import ERROR_RESPONSES, ContextDep, PrincipalDep
from cloud_bridge.guideline import BloodPressureBands, blood_pressure_bands

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], responses=ERROR_RESPONSES)


class DashboardSettings(BaseModel):
    refresh_s: float = Field(description="how often an open page asks for fresh data")
    low_battery_percent: int = Field(description="a device at or below this is marked (and alerted on)")
    blood_pressure: BloodPressureBands


@router.get("/settings", response_model=DashboardSettings)
def dashboard_settings(context: ContextDep, _who: PrincipalDep) -> DashboardSettings:
    """For anyone logged in: it holds configuration only, no one's data. The very-high band
    starts at the bridge's dangerous-reading alert thresholds."""
    return DashboardSettings(
        refresh_s=context.dashboard_refresh_s,
        low_battery_percent=context.alert_rules.low_battery_percent,
        blood_pressure=blood_pressure_bands(context.blood_pressure_guideline, context.alert_rules),
    )
