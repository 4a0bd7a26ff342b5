"""The agent's settings: `doorstep agent --config FILE`, overridable by DOORSTEP_AGENT_* variables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, Field, FilePath, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from contract.batch import MAX_BATCH_RECORDS
from contract.sealing import public_key_from
from contract.topics import Slug
from releases.keys import verify_key_from
from runtime.config import FileSettings
from runtime.mqtt import BrokerSettings
from edge_agent.logs import LogSettings
from edge_agent.store.outbox import OutboxLimits, RecordClass
# The sections an operator changes live below the agent, so the bridge validates a desired
# configuration with the same models (kiosk_config/sections.py); importable from here as before.
from kiosk_config.peripherals import PrinterSettings, ReaderSettings
from kiosk_config.sections import (
    DeviceSettings,
    LaundryRoomSettings,
    LaundrySettings,
    Localised,
    OutboxBudget,
    PollCadence,
    ScreenSettings,
)

__all__ = [
    "AgentSettings", "DeviceSettings", "LaundryRoomSettings", "LaundrySettings", "Localised", "OutboxSettings",
    "PollCadence", "RelaySettings", "ScreenSettings",
]


class OutboxSettings(OutboxBudget):
    def limits(self) -> OutboxLimits:
        return OutboxLimits.for_disk(
            int(self.budget_mb * 1024 * 1024),
            delivered_retention=timedelta(days=self.delivered_retention_days),
            max_age=MappingProxyType(
                {
                    RecordClass.EVENT: timedelta(days=self.event_max_age_days),
                    RecordClass.TELEMETRY: timedelta(days=self.telemetry_max_age_days),
                }
            ),
        )



DEFAULT_RELAY_OFFERS = (
    Localised(zh="饮用水", en="Drinking water"),
    Localised(zh="手机充电", en="Phone charging"),
    Localised(zh="微波炉热饭", en="Microwave for your meal"),
    Localised(zh="休息座椅", en="A seat to rest"),
    Localised(zh="卫生间", en="Toilet"),
)


class RelaySettings(BaseModel):
    """A 24-hour love relay station (爱心接力站) at this kiosk."""

    offers: list[Localised] = Field(
        default_factory=lambda: list(DEFAULT_RELAY_OFFERS), max_length=12, description="what the station offers"
    )
    max_stay_hours: float = Field(
        default=12, gt=0, description="a visit not checked out by then no longer counts as inside (closed as expired)"
    )


class AgentSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="DOORSTEP_AGENT_", env_nested_delimiter="__", extra="forbid")

    site: Slug
    kiosk: Slug
    outbox_path: Path = Path("/var/lib/doorstep/outbox.sqlite3")
    outbox: OutboxSettings = OutboxSettings()
    broker: BrokerSettings = BrokerSettings()
    ack_timeout_s: float = Field(
        default=15.0, gt=0, description="re-send a record the bridge has not confirmed within this time"
    )
    inflight_window: int = Field(
        default=1000, ge=1, le=10_000,
        description="records sent but not yet confirmed by the bridge, at most: several batches' worth, so that "
        "a backlog keeps the bridge busy while its acks come back",
    )
    publish_window: int = Field(
        default=20, ge=1, le=1000,
        description="messages (a record, or a batch) published but not yet acknowledged by the broker (PUBACK), "
        "at most: MQTT's in-flight window",
    )
    batch_records: int = Field(
        default=100, ge=1, le=MAX_BATCH_RECORDS,
        description="records sent in one message when two or more are due (within 64 KiB); 1: each alone",
    )
    payload_public_key: str | None = Field(
        default=None,
        description="the bridge's payload key (base64, from `doorstep keys create`): health readings are sealed "
        "for it when saved, so neither this kiosk's disk nor the broker holds them readable",
    )
    resend_max_s: float = Field(
        default=300, gt=0, description="while the bridge does not answer, one record is re-sent at most this rarely"
    )
    telemetry_every_s: float = Field(default=60, gt=0, description="how often the kiosk reports its own health")
    command_timeout_s: float = Field(default=30, gt=0, description="a remote command not done by then is answered timed_out")
    config_health_s: float = Field(
        default=60, gt=0,
        description="after a fleet configuration is applied, how long the broker and every device it changed have "
        "to answer before it is rolled back (docs/configuration.md, Fleet configuration)",
    )
    trust_clock: Literal["if_synchronised", "always"] = Field(
        default="if_synchronised",
        description="believe the kiosk's clock only once the kernel says NTP synchronised it (a Pi has no RTC), "
        "or always (a board with a battery-backed clock and no NTP)",
    )
    devices: list[DeviceSettings] = Field(default_factory=list, description="health devices at this kiosk")
    readers: list[ReaderSettings] = Field(
        default_factory=list, max_length=4,
        description="card and QR readers on serial ports (readers that type like a keyboard need nothing here)",
    )
    printer: PrinterSettings | None = Field(default=None, description="a receipt printer for results, if any")
    updates_root: Path = Field(
        default=Path("/var/lib/doorstep/updates"),
        description="where software updates are downloaded and installed, one virtualenv per version "
        "(docs/updates.md); deploy/doorstep-launch reads the same directory (DOORSTEP_UPDATES_ROOT)",
    )
    release_public_keys: list[str] = Field(
        default_factory=list,
        description="the release keys this kiosk trusts (base64, from `doorstep release keygen`); none: every "
        "update is refused",
    )
    update_health_s: float = Field(
        default=120, gt=0,
        description="after an update, how long the new version has to pass its health check (broker, outbox, "
        "devices) before it goes back to the previous version by itself",
    )
    update_retry_s: float = Field(
        default=30, gt=0, description="an update waiting for a measurement or a washer start is tried again this often"
    )
    bridge_ca: FilePath | None = Field(
        default=None,
        description="the CA of the bridge's HTTPS certificate, when not one the system trusts (a private CA): update "
        "bundles are downloaded trusting it; `doorstep enrol --bridge-ca` writes it",
    )

    @field_validator("release_public_keys")
    @classmethod
    def _release_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            verify_key_from(key)
        return keys

    @field_validator("payload_public_key")
    @classmethod
    def _a_public_key(cls, text: str | None) -> str | None:
        if text is not None:
            public_key_from(text)
        return text
    laundry: LaundrySettings | None = Field(default=None, description="the laundry room's RS-485 line, if any")
    relay: RelaySettings | None = Field(default=None, description="a 24-hour love relay station at this kiosk, if any")
    screen: ScreenSettings = ScreenSettings()
    resident_secret: SecretStr | None = Field(
        default=None,
        description="the per-site secret that keys residents' pseudonyms (HMAC-SHA256); none: identified use is off",
    )
    log: LogSettings = LogSettings()

    @field_validator("resident_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        # A short secret could be guessed, and then every phone's last four digits with it.
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("at least 32 characters (openssl rand -hex 32)")
        return secret
