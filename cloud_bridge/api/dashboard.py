"""What the dashboard's pages need from the bridge's configuration, so that none is hard-coded
in the browser: how often to refresh, the battery level that is low, and the blood-pressure
bands a resident's chart shows."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloud_bridge.api.deps import ERROR_RESPONSES, ContextDep, PrincipalDep
from contract.clinical import Band, Threshold, bands, dangerous_line

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], responses=ERROR_RESPONSES)


class BloodPressureBands(BaseModel):
    """The guideline's categories as the chart draws them (contract/clinical.py)."""

    unit: str = "mmHg"
    guideline: str = Field(description="the guideline's name, shown under the chart")
    bands: list[Band] = Field(description="normal, high_normal, high, very_high, lowest first")
    dangerous_reading: Threshold = Field(
        description="where the dangerous-reading alert fires: very high's start unless the operator set it apart"
    )


class DashboardSettings(BaseModel):
    refresh_s: float = Field(description="how often an open page asks for fresh data")
    low_battery_percent: int = Field(description="a device at or below this is marked (and alerted on)")
    runway_h: float = Field(description="a kiosk whose outbox runway is under this many hours is marked (and alerted on)")
    blood_pressure: BloodPressureBands


@router.get("/settings", response_model=DashboardSettings)
def dashboard_settings(context: ContextDep, _who: PrincipalDep) -> DashboardSettings:
    """For anyone logged in: it holds configuration only, no one's data."""
    guideline = context.blood_pressure_guideline
    return DashboardSettings(
        refresh_s=context.dashboard_refresh_s,
        low_battery_percent=context.alert_rules.low_battery_percent,
        runway_h=context.alert_rules.runway_h,
        blood_pressure=BloodPressureBands(
            guideline=guideline.name,
            bands=bands(guideline),
            dangerous_reading=dangerous_line(guideline, context.alert_rules.dangerous_blood_pressure),
        ),
    )
