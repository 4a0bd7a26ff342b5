"""The agent's settings: `doorstep agent --config FILE`, overridable by DOORSTEP_AGENT_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from doorstep.config import FileSettings
from doorstep.mqtt import BrokerSettings
from doorstep.wire import Slug
from firmware_configs.profiles import load_ble_profiles


class DeviceSettings(BaseModel):
    address: str = Field(description="the device's Bluetooth address, e.g. 'A4:C1:38:12:34:56'")
    model: str = Field(
        default="generic",
        description="a profile in firmware_configs/ble/ (its 'model'): decides the kind of device and its quirks",
    )
    simulated: bool = Field(default=False, description="talk to a simulated device of that kind instead of Bluetooth")
    reconnect_interval_s: float = Field(
        default=5.0, gt=0, description="pause between sessions (a device is only reachable while it measures)"
    )
    idle_timeout_s: float = Field(default=5.0, gt=0, description="end a session this long after the last measurement")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        known = sorted(load_ble_profiles())
        if model not in known:
            raise ValueError(f"no profile {model!r} in firmware_configs/ble/; known: {', '.join(known)}")
        return model


class AgentSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="DOORSTEP_AGENT_", env_nested_delimiter="__", extra="forbid")

    site: Slug
    kiosk: Slug
    outbox_path: Path = Path("/var/lib/doorstep/outbox.sqlite3")
    broker: BrokerSettings = BrokerSettings()
    ack_timeout_s: float = Field(
        default=15.0, gt=0, description="re-send a record the bridge has not confirmed within this time"
    )
    inflight_window: int = Field(default=20, ge=1, le=1000, description="records sent but not yet confirmed")
    devices: list[DeviceSettings] = Field(default_factory=list, description="health devices at this kiosk")
