"""The bridge's settings: `doorstep bridge --config FILE`, overridable by DOORSTEP_BRIDGE_* variables."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.enrolment import EnrolmentSettings
from cloud_bridge.guideline import ALERT_KEYS, BridgeGuideline, fold_old_keys
from cloud_bridge.rollouts import Delivery
from cloud_bridge.support_bundles import DEFAULT_KEPT
from cloud_bridge.webhook import WebhookSettings
from contract.clinical import check_dangerous_line
from contract.topics import SLUG_PATTERN
from contract.sealing import Opener, encode_key, private_key_from_file
from runtime.config import FileSettings
from runtime.mqtt import BrokerSettings


SLUG = re.compile(SLUG_PATTERN)
# Good for a laptop and the tests; refused anywhere else.
DEVELOPMENT_SECRET = "development-only-secret"
# A release bundle is Doorstep's wheels and their dependencies' (a few tens of megabytes for the
# Pi's platform); the bound only stops a runaway upload filling the bridge's disk.
DEFAULT_RELEASE_MAX_BYTES = 512 * 1024 * 1024
# A worker's client id on a broker without accounts (a laptop, the demo).
DEFAULT_CLIENT_ID = "doorstep-bridge-1"


class BridgeSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix="DOORSTEP_BRIDGE_", env_nested_delimiter="__", extra="forbid")

    database_url: str = Field(
        default="sqlite:///doorstep-bridge.sqlite3",
        description="SQLAlchemy URL: sqlite:///path (default) or postgresql+psycopg://user:pass@host/db",
    )
    broker: BrokerSettings = BrokerSettings()
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="unique per worker; stable across restarts (persistent session); with a broker.username, "
        "that username (the default), since the broker binds each account to its own client id",
    )
    share_group: str = Field(
        default="bridge", pattern=r"^[A-Za-z0-9_-]+$", description="MQTT 5 shared-subscription group of all workers"
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    # A gulp (the messages a worker stores in one transaction) writes each of its kiosks' rows
    # and every device they report once, however many of their messages it holds, and needs
    # fewer acks (one per kiosk per gulp): on the fleet's mix (200 kiosks) storing on PostgreSQL
    # cost 107, 65 and 51 µs of CPU a message in gulps of 1,000, 4,000 and 8,000. Only a backlog
    # fills one (cloud_bridge/ingest.py, gather_seconds). ("Batch" is a kiosk's message of many
    # records, docs/protocol.md.)
    gulp_max: int = Field(default=8000, ge=1, le=10_000, description="messages stored per transaction at most")
    gulp_wait_s: float = Field(
        default=0.005, ge=0, le=5,
        description="how long to gather a gulp while messages stream in; the first message after a quiet spell "
        "(nothing stored for this long) is stored at once",
    )
    # Their names before issue 17, still read: moved to gulp_max and gulp_wait_s.
    batch_max: int | None = Field(default=None, ge=1, le=10_000, description="deprecated: gulp_max")
    batch_wait_s: float | None = Field(default=None, ge=0, le=5, description="deprecated: gulp_wait_s")
    support_bundles_kept: int = Field(
        default=DEFAULT_KEPT, ge=1, le=100, description="support bundles kept per kiosk, the newest (each at most 96 KiB)"
    )
    alerts: AlertRules = AlertRules()
    webhook: WebhookSettings | None = Field(default=None, description="where alerts are posted as they open and change")
    command_ttl_s: float = Field(
        default=300, gt=0, le=7 * 24 * 3600, description="a command not acted on by then is refused by the kiosk"
    )
    dead_letter_retention_days: float = Field(default=30, gt=0, description="refused messages are kept this long")
    environment: Literal["production", "development"] = Field(
        default="production", description="development allows the built-in secret_key; production refuses it"
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        description="keys the hashes of API tokens; at least 32 characters, e.g. `openssl rand -hex 32`",
    )
    session_hours: float = Field(default=12, gt=0, le=24 * 30, description="a login's token lasts this long")
    payload_keys: list[FilePath] = Field(
        default_factory=list,
        description="private keys (from `doorstep keys create`) that open the readings kiosks sealed; "
        "an old and a new one while kiosks move over",
    )

    @field_validator("payload_keys")
    @classmethod
    def _keys_readable(cls, paths: list[Path]) -> list[Path]:
        for path in paths:
            private_key_from_file(path)  # ValueError names the file and the problem
        return paths

    def opener(self) -> Opener | None:
        keys = [private_key_from_file(path) for path in self.payload_keys]
        return Opener(keys) if keys else None

    def payload_public_key(self) -> str | None:
        """The key enrolled kiosks seal for: the last of payload_keys (list a new key last)."""
        return encode_key(private_key_from_file(self.payload_keys[-1]).public_key) if self.payload_keys else None

    enrolment: EnrolmentSettings = Field(
        default_factory=EnrolmentSettings,
        description="one-time codes with which a new kiosk gets its broker account (docs/deployment.md)",
    )

    blood_pressure_guideline: BridgeGuideline = Field(
        default_factory=BridgeGuideline,
        description="the categories the dashboard draws on a resident's chart; very high is also where the "
        "dangerous-reading alert fires unless alerts.dangerous_blood_pressure sets it apart",
    )
    resident_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="per site, the kiosks' resident_secret, so that a doctor can find a resident by card number "
        "(the bridge derives the same pseudonym and forgets the number); a site left out: look-up by QR code only",
    )
    time_zone: str = Field(
        default="Asia/Shanghai",
        description="the sites' local time (IANA name): which readings are mornings and evenings, and which day "
        "a reading is on, for the home averages (cloud_bridge/averages.py)",
    )

    @field_validator("resident_keys")
    @classmethod
    def _resident_keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for site, secret in keys.items():
            if not SLUG.match(site):
                raise ValueError(f"{site!r} is not a site id")
            # The kiosks refuse a shorter resident_secret (edge_agent/settings.py): one here is a typo.
            if len(secret.get_secret_value()) < 32:
                raise ValueError(f"{site}: at least 32 characters, the site's resident_secret")
        return keys

    @field_validator("time_zone")
    @classmethod
    def _a_time_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not a time zone (an IANA name such as Asia/Shanghai)") from None
        return name

    # Software updates (issue 20, docs/updates.md).
    releases_dir: Path = Field(default=Path("doorstep-releases"),
                               description="where uploaded release bundles are kept, one file per version")
    releases_max_bytes: int = Field(default=DEFAULT_RELEASE_MAX_BYTES, ge=1024, le=2**40,
                                    description="the largest bundle an upload may be")
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s]+$",
        description="the bridge's address as kiosks reach it (https://… in production): kiosks download bundles "
        "from {public_url}/api/v1/releases/{version}/bundle; default http://{http_host}:{http_port}",
    )
    rollout_command_ttl_s: float = Field(
        default=24 * 3600, gt=0, le=7 * 24 * 3600,
        description="a kiosk away longer than this when a rollout asks it refuses the update; the rollout counts it failed",
    )

    def delivery(self) -> Delivery:
        return Delivery(public_url=self.public_url or f"http://{self.http_host}:{self.http_port}",
                        command_ttl=timedelta(seconds=self.rollout_command_ttl_s))

    # Each open dashboard asks for the fleet this often: a wall of 200 kiosks is a few pages of
    # JSON per refresh, and a killed kiosk's Last Will shows within one period.
    dashboard_refresh_s: float = Field(default=5, ge=1, le=300, description="how often an open dashboard refreshes")

    @property
    def worker_id(self) -> str:
        """This worker's client id: `client_id`, else its broker username, else doorstep-bridge-1."""
        return self.client_id or self.broker.username or DEFAULT_CLIENT_ID

    @model_validator(mode="after")
    def _client_id_is_the_username(self) -> BridgeSettings:
        # deploy/mosquitto/doorstep.conf makes every client id the username (use_username_as_clientid,
        # issue 16), and gives a worker's account only its own presence topic,
        # doorstep/v1/_bridge/{username}: a different client_id would announce a worker the
        # broker does not let it announce.
        username = self.broker.username
        if username is not None and self.client_id is not None and self.client_id != username:
            raise ValueError(f"client_id {self.client_id!r} is not broker.username {username!r}: the broker binds "
                             "each account to its own client id; leave client_id out, or make them the same")
        return self

    @model_validator(mode="after")
    def _one_blood_pressure_rule(self) -> BridgeSettings:
        # Keys from before issue 17 are moved to their one place, then cleared, so nothing can
        # read a second copy of a threshold (cloud_bridge/guideline.py).
        old = {key: getattr(self.alerts, key) for key in ALERT_KEYS}
        self.blood_pressure_guideline = fold_old_keys(self.blood_pressure_guideline, old)
        for key in ALERT_KEYS:
            setattr(self.alerts, key, None)
        try:
            check_dangerous_line(self.blood_pressure_guideline, self.alerts.dangerous_blood_pressure)
        except ValueError as error:  # a cross-field check: name the field the operator set
            raise ValueError(f"alerts.dangerous_blood_pressure: {error}") from None
        return self

    @model_validator(mode="after")
    def _gulp_under_its_old_names(self) -> BridgeSettings:
        for old, new in (("batch_max", "gulp_max"), ("batch_wait_s", "gulp_wait_s")):
            value = getattr(self, old)
            if value is None:
                continue
            if new in self.model_fields_set:
                raise ValueError(f"{old} (deprecated) and {new} both set: keep only {new}")
            setattr(self, new, value)
            setattr(self, old, None)
        return self

    @model_validator(mode="after")
    def _a_real_secret_outside_development(self) -> BridgeSettings:
        secret = self.secret_key.get_secret_value()
        if self.environment != "development":
            if secret == DEVELOPMENT_SECRET:
                raise ValueError("secret_key is the development default: set a secret of your own "
                                 "(DOORSTEP_BRIDGE_SECRET_KEY), or environment: development on a laptop")
            if len(secret) < 32:
                raise ValueError("secret_key must be at least 32 characters outside development")
        return self
