"""A desired configuration from the fleet: which settings it may carry, how site and kiosk
documents and the kiosk's own file combine, and every problem in one, by field.

Precedence (docs/configuration.md, "Fleet configuration"): the kiosk's own file, then its
site's document, then its own document. Each document names whole sections (`devices`,
`laundry`, `screen`, `outbox`, `broker`, `telemetry_every_s`); within a section each key it sets
replaces the value below it whole (a list of devices, a map of machines, the blood-pressure
bands), and the keys it does not set are kept. Keys that identify the kiosk or hold its secrets
(its broker account, its technician PIN, its serial port) are set in its own file only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from firmware_configs.laundry import format_problems
from kiosk_config.sections import DeviceSettings, LaundryRoomSettings, OutboxBudget, ScreenSettings
from runtime.mqtt import BrokerSettings


class FleetConfig(BaseModel):
    """What a desired configuration may set; every section optional (absent: the kiosk's own)."""

    model_config = ConfigDict(extra="forbid")

    devices: list[DeviceSettings] | None = Field(default=None, description="the kiosk's health devices, the whole list")
    laundry: LaundryRoomSettings | None = Field(default=None, description="its laundry room's machines and policy")
    screen: ScreenSettings | None = Field(default=None, description="language, timeouts, blood-pressure bands, speech")
    outbox: OutboxBudget | None = Field(default=None, description="the outbox's disk budget, ages and pruning")
    broker: BrokerSettings | None = Field(default=None, description="which broker to use (host, port)")
    telemetry_every_s: float | None = Field(default=None, gt=0, description="how often the kiosk reports its health")


# Per section, the keys only the kiosk's own file sets: who it is to the broker, its secrets,
# and the hardware and ports of this one box.
LOCAL_ONLY: Final[Mapping[str, frozenset[str]]] = {
    "broker": frozenset({"username", "password", "tls"}),
    "screen": frozenset({"enabled", "host", "port", "allowed_hosts", "technician_pin"}),
    "laundry": frozenset({"port", "baudrate", "reply_timeout_s"}),  # its RS-485 line (LaundrySettings)
}
_SECTION_MODELS: Final[Mapping[str, type[BaseModel]]] = {
    "laundry": LaundryRoomSettings, "screen": ScreenSettings, "outbox": OutboxBudget, "broker": BrokerSettings,
}


def overlay(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`: a section both hold as a mapping takes `over`'s keys over
    `base`'s; anything else `over` holds replaces `base`'s whole."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = {**below, **value}
        else:
            merged[key] = value
    return merged


def fleet_problems(document: Mapping[str, Any], source: str, *, whole: bool = True) -> list[str]:
    """Every problem of a desired configuration (or of a site's or kiosk's document), one
    'source: field: problem' line each, as `doorstep config validate` prints a file's; [] if
    none. The section models are the agent's own (kiosk_config/sections.py). `whole` False:
    only the keys are checked (a kiosk's document may complete a section of its site's)."""
    problems = []
    for section, model in _SECTION_MODELS.items():
        value = document.get(section)
        if not isinstance(value, Mapping):
            continue  # absent, or the wrong type: the model says so below
        local = LOCAL_ONLY.get(section, frozenset())
        for key in sorted(set(value) & local):
            problems.append(f"{source}: {section}.{key}: set in the kiosk's own file only, not from the fleet")
        # The agent's section models ignore unknown keys; from afar a misspelt one would be lost.
        for key in sorted(set(value) - set(model.model_fields) - local):
            problems.append(f"{source}: {section}.{key}: no such setting")
    if not whole:
        return problems
    try:
        FleetConfig.model_validate(document)
    except ValidationError as error:
        problems += format_problems(source, error)
    return problems
