"""The kiosk's own health, sent on a schedule on its telemetry topic (QoS 0: a lost one is
replaced by the next)."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field

from contract.desired import ConfigReport
from contract.device_errors import ErrorCodeText
from contract.software import SoftwareReport
from contract.storable import INT32_MAX, INT64_MAX, StorableTime, StrictModel


# A runway (KioskTelemetry.runway_h) under a day is short: where the bridge alerts by default
# (alerts.runway_h) and `doorstep doctor` warns on the kiosk, so both say the same of it.
RUNWAY_SHORT_H: Final = 24.0


class OutboxDepth(StrictModel):
    records: int = Field(ge=0, le=INT32_MAX, description="undelivered records of this class")
    oldest_age_s: float | None = Field(default=None, ge=0, description="age of the oldest; null if none")


class DeviceError(StrictModel):
    """The newest failure to read a device, as the kiosk classified it (device_errors.py)."""

    code: ErrorCodeText = Field(description="a DeviceErrorCode, e.g. ble_bond_lost; unknown codes are kept as text")
    at: StorableTime = Field(description="the kiosk's time of the failure")
    message: str = Field(max_length=500, description="plain words, for a technician")


class DeviceTelemetry(StrictModel):
    address: str = Field(min_length=1, max_length=64, description="BLE address, or modbus-unit-{n}")
    model: str = Field(min_length=1, max_length=64)
    link: Literal["online", "degraded", "offline", "unknown"] = "unknown"
    battery_percent: int | None = Field(default=None, ge=0, le=100)
    last_reading_at: StorableTime | None = None
    clock_offset_s: float | None = Field(
        default=None, description="the device's clock minus the kiosk's when last connected, before the kiosk set it"
    )
    last_seen_at: StorableTime | None = Field(
        default=None,
        description="a Bluetooth device's last connection (it is reachable only while it measures, "
        "so its link stays 'unknown' and this is what tells a silent device from a lost one)",
    )
    # Since schema 1's first kiosks these three are optional with defaults: telemetry from a
    # kiosk that does not send them still validates (docs/protocol.md, "Telemetry").
    last_error: DeviceError | None = Field(default=None, description="the newest failure since the agent started")
    failing_since: StorableTime | None = Field(
        default=None, description="the first failure after the last successful session; null once one succeeds"
    )
    error_counts: dict[ErrorCodeText, Annotated[int, Field(ge=1, le=INT64_MAX)]] = Field(
        default_factory=dict, max_length=32, description="failures per code since the last successful session"
    )


class KioskTelemetry(StrictModel):
    """The kiosk's own health, on a schedule (telemetry topic)."""

    uptime_s: float = Field(ge=0)
    outbox: dict[Literal["health", "event", "telemetry"], OutboxDepth]
    outbox_bytes: int = Field(ge=0, le=INT64_MAX)
    outbox_budget_bytes: int = Field(ge=0, le=INT64_MAX)
    health_over_budget: bool = Field(description="only health readings left, over the budget: kept, and alarming")
    refused_records: int = Field(default=0, ge=0, le=INT64_MAX, description="records the bridge refused as breaking the contract: kept, not sent")
    disk_free_bytes: int | None = Field(default=None, ge=0, le=INT64_MAX)
    cpu_temperature_c: float | None = None
    clock_synchronised: bool = Field(description="false until NTP has set the kiosk's clock (a Pi has no RTC)")
    # Optional, so an older kiosk's telemetry still parses. The contract refuses unknown fields:
    # bridges are upgraded before kiosks send these (docs/protocol.md, "Telemetry").
    speech_ok: bool | None = Field(
        default=None, description="the loudspeaker really played the last speech (or the start-up check); "
        "null: speech is off, or not tried yet",
    )
    speech_error: str | None = Field(default=None, max_length=300, description="why speech failed, when speech_ok is false")
    # The outbox's runway (issue 19), optional for the same reason. Measured on the kiosk: the
    # growth of its undelivered bytes over a recent window (edge_agent/runway.py).
    outbox_growth_bytes_per_h: float | None = Field(
        default=None,
        description="how fast the undelivered records' bytes grew over the last window (outbox.runway_window_s), "
        "per hour; negative while they drain; null until the kiosk has measured a window's tenth",
    )
    runway_h: float | None = Field(
        default=None, ge=0,
        description="hours until the undelivered records fill the disk budget at that growth (then the oldest "
        "lower-class records are evicted); null when they are not growing (unbounded) or not measured yet",
    )
    devices: list[DeviceTelemetry] = Field(default_factory=list, max_length=256)
    config: ConfigReport | None = Field(
        default=None, description="the desired configuration it runs, and what became of the newest it tried; "
        "null from a kiosk before fleet configuration",
    )
    software: SoftwareReport | None = Field(
        default=None, description="the version it runs and the newest update it tried; null from a kiosk before updates",
    )
