"""Per-model device profiles: YAML data shipped in this package, validated when loaded.

A new cuff model is a new file in firmware_configs/ble/, not a code change.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from firmware_configs.omron_memory import OmronMemory


logger = logging.getLogger(__name__)


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the field and the problem."""


class Quirk(StrEnum):
    NEEDS_BONDING = "needs_bonding"  # refuses to indicate until bonded
    FORGETS_BOND = "forgets_bond"  # drops its bond after each session: remove ours and pair again


# Quirks that named what the agent does for every device anyway, so nothing read them (issue 17).
# A profile that still lists one loads, with a warning, and the name is dropped: a model file
# written for an older release asks for nothing that is not done, and refusing it would stop a
# kiosk from starting (its settings load every profile). Deprecated: to be refused later.
RETIRED_QUIRKS: Final[Mapping[str, str]] = MappingProxyType({
    "replays_memory": "every reading is deduplicated by device, device time and values, whatever the profile",
    "clock_unreliable": "the kiosk's time is written to every device with a writable Current Time",
})


class BloodPressureDialectConfig(BaseModel):
    """Where a cuff departs from GSS 3.31 (drivers.ble.blood_pressure.BloodPressureDialect)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pulse_rate_byte_order: Literal["little", "big"] = "little"
    measurement_status_byte_order: Literal["little", "big"] = "little"
    user_id_without_flag: bool = False


ShortUuid = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{4}$")]

# The IO capability the kiosk's pairing agent registers with BlueZ for a model (BlueZ
# doc/org.bluez.AgentManager.rst, RegisterAgent): with the cuff's own IO it decides the pairing
# method (Core Vol 3, Part H, 2.3.5.1): NoInputNoOutput gives Just Works, a cuff that shows a
# passkey needs DisplayYesNo or KeyboardDisplay on our side.
PairingCapability = Literal["NoInputNoOutput", "DisplayYesNo", "KeyboardDisplay", "DisplayOnly", "KeyboardOnly"]


class BleDeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="the name used in settings and on the wire")
    manufacturer: str = Field(min_length=1)
    kind: Literal["blood_pressure", "glucose", "temperature", "weight", "spo2"]
    name_patterns: list[str] = Field(default_factory=list, description="regular expressions on the advertised name")
    services: list[ShortUuid] = Field(min_length=1, description="16-bit service UUIDs it advertises, lowercase hex")
    quirks: list[Quirk] = Field(default_factory=list)
    blood_pressure_dialect: BloodPressureDialectConfig = BloodPressureDialectConfig()
    # Set: the cuff keeps its readings in memory, read over Omron's vendor service (drivers/ble/omron/).
    omron_memory: OmronMemory | None = None
    pairing_capability: PairingCapability = Field(
        default="NoInputNoOutput",
        description="the IO capability the kiosk pairs it with: NoInputNoOutput for Just Works cuffs",
    )
    notes: str = Field(default="", description="where the facts above come from; what is unverified")

    @field_validator("quirks", mode="before")
    @classmethod
    def _drop_retired_quirks(cls, quirks: Any) -> Any:
        if not isinstance(quirks, list):
            return quirks  # validation proper says what is wrong with it
        kept = []
        for quirk in quirks:
            if isinstance(quirk, str) and quirk in RETIRED_QUIRKS:
                logger.warning("quirk %r is retired and ignored (%s): remove it from the profile",
                               quirk, RETIRED_QUIRKS[quirk])
            else:
                kept.append(quirk)
        return kept

    @field_validator("name_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
        return patterns


def load_profile(source: Traversable, name: str) -> BleDeviceProfile:
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ProfileError(f"{name}: not valid YAML: {error}") from None
    try:
        return BleDeviceProfile.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{name}: {'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors(include_url=False)
        ]
        raise ProfileError("\n".join(problems)) from None


def load_ble_profiles() -> dict[str, BleDeviceProfile]:
    """Every profile shipped in firmware_configs/ble/, by model name."""
    profiles: dict[str, BleDeviceProfile] = {}
    for source in sorted(files(__package__).joinpath("ble").iterdir(), key=lambda t: t.name):
        if not source.name.endswith(".yaml"):
            continue
        profile = load_profile(source, f"firmware_configs/ble/{source.name}")
        if profile.model in profiles:
            raise ProfileError(f"firmware_configs/ble/{source.name}: model: {profile.model!r} is defined twice")
        profiles[profile.model] = profile
    return profiles
