"""A kiosk's desired configuration, as the bridge retains it on …/desired, and the kiosk's report
of the configuration it runs (in its telemetry). docs/protocol.md, "Desired configuration".

The bridge publishes the whole effective configuration (site and kiosk documents combined,
kiosk_config/fleet.py) with a version that only grows, retained at QoS 1, after its database
commit: a kiosk that was offline gets the newest when it subscribes (MQTT 5.0, 3.3.1.3).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, ValidationError

from contract.codec import MAX_MESSAGE_BYTES, describe
from contract.errors import ContractError
from contract.storable import INT32_MAX, StorableTime, StrictModel


class DesiredConfig(StrictModel):
    """Retained on …/desired by the bridge."""

    version: int = Field(ge=1, le=INT32_MAX, description="grows with every change of this kiosk's effective configuration")
    config: dict[str, Any] = Field(description="the sections to set (kiosk_config/fleet.py, FleetConfig)")
    changed_by: str = Field(max_length=64, description="the technician whose change made this version")
    changed_at: StorableTime


def decode_desired(body: bytes) -> DesiredConfig:
    if len(body) > MAX_MESSAGE_BYTES:
        raise ContractError(f"desired configuration of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return DesiredConfig.model_validate_json(body)
    except ValidationError as error:
        raise ContractError(describe(error)) from None


class ConfigOutcome(StrEnum):
    APPLIED = "applied"  # running it, and it passed the health check
    REFUSED = "refused"  # invalid here: never applied, the previous one runs on
    ROLLED_BACK = "rolled_back"  # applied, failed the health check, the last good one restored


class ConfigReport(StrictModel):
    """The kiosk's word on its configuration, in its telemetry."""

    version: int = Field(ge=0, le=INT32_MAX, description="the desired version it runs; 0: its own file alone")
    tried_version: int | None = Field(default=None, ge=1, le=INT32_MAX, description="the newest version it acted on")
    outcome: ConfigOutcome | None = Field(default=None, description="what became of tried_version")
    reason: str | None = Field(default=None, max_length=2000, description="why it was refused or rolled back")
    at: StorableTime | None = Field(default=None, description="the kiosk's time of that outcome")
