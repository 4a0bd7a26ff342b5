"""`doorstep config validate`: what a file configures, and every problem in it, by file and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cloud_bridge.settings import BridgeSettings
from edge_agent.settings import AgentSettings
from firmware_configs.laundry import LaundryProfile, format_problems
from firmware_configs.profiles import BleDeviceProfile
from firmware_configs.readers import ReaderProfile

_BLE_KINDS = {"blood_pressure", "glucose", "temperature", "weight", "spo2"}
# What only a bridge configuration has (both have `broker`).
_BRIDGE_KEYS = set(BridgeSettings.model_fields) - set(AgentSettings.model_fields)


def _what(data: dict[str, Any]) -> tuple[str, type[BaseModel]] | None:
    if "site" in data or "kiosk" in data or "devices" in data:
        return "agent configuration", AgentSettings
    if data.keys() & _BRIDGE_KEYS:
        return "bridge configuration", BridgeSettings
    # A register map is known by its status block too, so a misspelt `kind` is reported as a
    # field problem of the map rather than as a file of unknown purpose.
    if data.get("kind") in {"washer", "dryer"} or "status_block" in data:
        return "laundry register map", LaundryProfile
    if data.get("kind") in _BLE_KINDS:
        return "Bluetooth device profile", BleDeviceProfile
    if "framing" in data or data.get("identifier") in {"card", "qr"}:
        return "card or QR reader profile", ReaderProfile
    return None


def validate_file(path: Path) -> tuple[str | None, list[str]]:
    """(what the file is, problems); no problems means valid. Environment variables are ignored:
    this checks the file as written."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        return None, [f"{path}: cannot read: {error.strerror}"]
    except yaml.YAMLError as error:
        return None, [f"{path}: not valid YAML: {error}"]
    if not isinstance(data, dict):
        return None, [f"{path}: expected a mapping, got {type(data).__name__}"]
    found = _what(data)
    if found is None:
        return None, [
            f"{path}: cannot tell what this configures (an agent or bridge configuration, "
            "a Bluetooth device profile, a laundry register map or a card reader profile)"
        ]
    what, model = found
    validate: Callable[[dict[str, Any]], object] = model.model_validate
    try:
        validate(data)
    except ValidationError as error:
        return what, format_problems(str(path), error)
    return what, []
