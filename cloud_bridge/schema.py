"""Every table of the bridge, in one metadata: what Alembic compares its migrations with."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel

from cloud_bridge.accounts import ApiToken, AuditEntry, LoginAttempts, User
from cloud_bridge.alerts import Alert
from cloud_bridge.commands import Command
from cloud_bridge.desired_config import ConfigDocument, DesiredState
from cloud_bridge.enrolment import EnrolmentCode
from cloud_bridge.fleet import Device, Kiosk
from cloud_bridge.releases import Release
from cloud_bridge.rollouts import Rollout, RolloutKiosk
from cloud_bridge.store import CommandResult, DeadLetter, Event, Reading, Telemetry, table_of
from cloud_bridge.support_bundles import SupportBundle
from cloud_bridge.webhook import WebhookDelivery

BRIDGE_MODELS: tuple[type[SQLModel], ...] = (
    Reading,
    Event,
    Telemetry,
    CommandResult,
    DeadLetter,
    Kiosk,
    Device,
    Alert,
    Command,
    WebhookDelivery,
    User,
    ApiToken,
    AuditEntry,
    LoginAttempts,
    EnrolmentCode,
    SupportBundle,
    ConfigDocument,
    DesiredState,
    Release,
    Rollout,
    RolloutKiosk,
)


def bridge_metadata() -> MetaData:
    """The bridge's tables alone (SQLModel's shared metadata also holds the agent's)."""
    metadata = MetaData()
    for model in BRIDGE_MODELS:
        table_of(model).to_metadata(metadata)
    return metadata
