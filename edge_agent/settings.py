"""The agent's settings: `doorstep agent --config FILE`, overridable by DOORSTEP_AGENT_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from doorstep.config import FileSettings
from doorstep.mqtt import BrokerSettings
from doorstep.wire import Slug


class CuffSettings(BaseModel):
    address: str = Field(description="the cuff's Bluetooth address, e.g. 'A4:C1:38:12:34:56'")
    model: str = Field(default="generic", description="device model reported on the wire")
    simulated: bool = Field(default=False, description="talk to a simulated cuff instead of Bluetooth")
    reconnect_interval_s: float = Field(
        default=5.0, gt=0, description="pause between connection attempts (a cuff is only reachable while it measures)"
    )
    idle_timeout_s: float = Field(default=5.0, gt=0, description="end a session this long after the last measurement")


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
    cuffs: list[CuffSettings] = Field(default_factory=list)
