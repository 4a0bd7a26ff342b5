"""The parts of a kiosk's configuration an operator changes, from its own file or from the fleet
(docs/configuration.md, "Fleet configuration"): its devices, laundry room, screen and outbox budget.

One definition for both sides: the agent loads these inside its settings (edge_agent/settings.py)
and the bridge validates a desired configuration with them (kiosk_config/fleet.py) before it
sends one, so a value the bridge accepts is one the kiosk can load. They live below both,
beside the device profiles and register maps they name (firmware_configs/).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from contract.clinical import BloodPressureGuideline
from firmware_configs.laundry import LaundryProfile, Program, load_laundry_profiles
from firmware_configs.profiles import load_ble_profiles


def known_profile(model: str, profiles: Iterable[str], folder: str) -> str:
    """`model`, if it names one of `profiles` (shipped in `folder`); a ValueError listing them if not."""
    known = sorted(profiles)
    if model not in known:
        raise ValueError(f"no profile {model!r} in {folder}; known: {', '.join(known)}")
    return model


class DeviceSettings(BaseModel):
    address: str = Field(description="the device's Bluetooth address, e.g. 'A4:C1:38:12:34:56'")
    model: str = Field(
        default="generic",
        description="a profile in firmware_configs/ble/ (its 'model'): decides the kind of device and its quirks",
    )
    simulated: bool = Field(default=False, description="talk to a simulated device of that kind instead of Bluetooth")
    simulated_start_button: Path | None = Field(
        default=None,
        description="with simulated: the cuff is off until this file appears (its start button: the demo makes it "
        "when Enter is pressed in its terminal), then measures once at a person's pace",
    )
    reconnect_interval_s: float = Field(
        default=5.0, gt=0, description="pause between sessions (a device is only reachable while it measures)"
    )
    idle_timeout_s: float = Field(default=5.0, gt=0, description="end a session this long after the last measurement")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        return known_profile(model, load_ble_profiles(), "firmware_configs/ble/")


class PollCadence(BaseModel):
    """How often each machine's status is read: often enough that "done" shows up at once,
    rarely enough that an idle room costs the Pi nothing."""

    tick_s: float = Field(default=1.0, gt=0, description="how often the scheduler looks for machines due a poll")
    idle_s: float = Field(default=10.0, gt=0, description="idle, done or faulted machines")
    running_s: float = Field(default=5.0, gt=0, description="running or paused machines")
    finishing_s: float = Field(default=1.0, gt=0, description="machines about to finish, and those mid-start")
    finishing_within_s: int = Field(default=120, ge=0, description="'about to finish': this many seconds left or fewer")


class ProgramSetting(BaseModel):
    """One program of a register map as this room sells it; unset: as the map says."""

    # A misspelt key set from afar would otherwise be lost without a word.
    model_config = ConfigDict(extra="forbid")

    price_points: int | None = Field(default=None, ge=0, description="its price in volunteer points, over the map's")
    offered: bool = Field(default=True, description="false: not on the screen, and a start of it is refused")


class LaundryRoomSettings(BaseModel):
    """The laundry room as an operator sets it (from the fleet too): its machines, their polling, its policy."""

    machines: dict[int, str] = Field(
        min_length=1, description="Modbus unit id (1-247) -> register map model in firmware_configs/laundry/"
    )
    poll: PollCadence = PollCadence()
    free_from_age: int = Field(default=80, ge=0, description="residents this old or older this year start for free")
    refund_if_fault_within_s: float = Field(
        default=300,
        ge=0,
        description="a paid wash that faults within this many seconds of its start (by the kiosk's clock) has not"
        " really run: its points are given back",
    )
    programs: dict[str, dict[int, ProgramSetting]] = Field(
        default_factory=dict,
        description="register map model -> program code -> its price and whether it is offered here, e.g. "
        "{washer-retrofit-a: {1: {price_points: 3}, 3: {offered: false}}}; a program not named is sold as its map says",
    )

    @field_validator("machines")
    @classmethod
    def _known_machines(cls, machines: dict[int, str]) -> dict[int, str]:
        known = sorted(load_laundry_profiles())
        problems = [f"unit {unit}: Modbus units are 1-247" for unit in machines if not 1 <= unit <= 247]
        problems += [
            f"unit {unit}: no register map {model!r} in firmware_configs/laundry/; known: {', '.join(known)}"
            for unit, model in machines.items()
            if model not in known
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return machines

    @field_validator("programs")
    @classmethod
    def _known_programs(cls, programs: dict[str, dict[int, ProgramSetting]]) -> dict[str, dict[int, ProgramSetting]]:
        profiles = load_laundry_profiles()
        problems = []
        for model, settings in programs.items():
            profile = profiles.get(model)
            if profile is None:
                problems.append(f"{model}: no register map {model!r} in firmware_configs/laundry/; "
                                f"known: {', '.join(sorted(profiles))}")
                continue
            codes = [p.code for p in profile.programs]
            problems += [f"{model}: program {code}: {model} has no such program; its programs: "
                         f"{', '.join(map(str, codes))}" for code in settings if code not in codes]
            if not any(settings.get(code, ProgramSetting()).offered for code in codes):
                problems.append(f"{model}: every program withdrawn: its machines could not be sold")
        if problems:
            raise ValueError("\n".join(problems))
        return programs

    def offered(self, profile: LaundryProfile) -> tuple[Program, ...]:
        """The map's programs this room sells, at this room's prices (the screen's list, the
        start's check and the price charged, from this one rule)."""
        settings = self.programs.get(profile.model, {})
        sold = []
        for program in profile.programs:
            setting = settings.get(program.code, ProgramSetting())
            if setting.offered:
                price = program.price_points if setting.price_points is None else setting.price_points
                sold.append(program.model_copy(update={"price_points": price}))
        return tuple(sold)


class LaundrySettings(LaundryRoomSettings):
    """The room, and the kiosk's own RS-485 line to it (set only in the kiosk's file)."""

    port: str = Field(description="the RS-485 adapter's serial port, e.g. /dev/ttyUSB0; 'simulated' for the demo's room inside the agent")
    baudrate: int = Field(default=9600, description="as set on every controller board of the line")
    reply_timeout_s: float = Field(default=0.3, gt=0, description="how long to wait for a machine's reply")


class OutboxBudget(BaseModel):
    """The outbox's disk budget and ages (edge_agent/settings.py turns them into the store's limits)."""

    budget_mb: float = Field(default=256, gt=0, description="disk the outbox's files may occupy (WAL included); over it, lower classes are evicted")
    delivered_retention_days: float = Field(default=7, ge=0, description="delivered records are deleted after this")
    event_max_age_days: float = Field(default=90, gt=0, description="an undelivered event older than this is given up")
    telemetry_max_age_days: float = Field(default=2, gt=0, description="an undelivered telemetry record older than this is given up")
    prune_every_s: float = Field(default=3600, gt=0, description="how often old records are deleted")
    runway_window_s: float = Field(
        default=3600, gt=0,
        description="the window over which the growth of undelivered records is measured for the runway "
        "(telemetry's runway_h); reported once a tenth of it is measured",
    )


class Localised(BaseModel):
    """A text the screen shows, in both of its languages."""

    zh: str = Field(min_length=1, max_length=80, description="Chinese (the screen's default language)")
    en: str = Field(min_length=1, max_length=80, description="English")


# A DNS name or IPv4 address, or an IPv6 address in brackets, as it stands in a Host header.
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")


class ScreenSettings(BaseModel):
    """The kiosk's touch screen: a local web app the agent serves, shown full-screen by Chromium."""

    enabled: bool = Field(default=True, description="serve the kiosk screen")
    host: str = Field(
        default="127.0.0.1",
        description="where the screen's HTTP server listens: loopback, so only the kiosk's own browser reaches it",
    )
    port: int = Field(default=8088, ge=0, le=65535, description="its port; 0 picks a free one (tests)")
    allowed_hosts: list[str] = Field(
        default_factory=list, max_length=16,
        description="host names the screen answers to besides 127.0.0.1, localhost, [::1] and `host`, e.g. "
        "'kiosk-1.local' if Chromium opens the screen by that name (no scheme, no port: the port is always the "
        "screen's own); any other Host header is refused, which is what stops DNS rebinding",
    )
    language: Literal["zh-CN", "en"] = Field(default="zh-CN", description="the language the screen starts in")
    technician_pin: SecretStr | None = Field(
        default=None, description="6-12 digits that open the admin endpoints; none: they are closed"
    )
    pin_attempts: int = Field(default=5, ge=1, description="wrong PINs in a row before the admin endpoints lock")
    pin_lockout_s: float = Field(default=300, gt=0, description="how long they stay locked")
    identify_per_minute: int = Field(
        default=30, ge=1, description="identity look-ups (card numbers, phone digits) the screen answers per minute"
    )
    measure_timeout_s: float = Field(
        default=180, gt=0, description="a resident who identified but has not measured by then is forgotten"
    )
    idle_reset_s: float = Field(default=90, gt=0, description="the screen goes back to its start after this long untouched")
    speak_results: bool = Field(default=False, description="read the blood-pressure result aloud with espeak-ng")
    speech_voice: str = Field(default="cmn", description="espeak-ng voice: cmn is Mandarin")
    staff_call_repeat_s: float = Field(
        default=300, gt=0, description="after a call for staff, a press within this long calls no one again: already called"
    )
    # The guideline's categories, by the one rule both the kiosk and the bridge use
    # (contract/clinical.py); the key keeps its old name so existing files still load.
    blood_pressure_bands: BloodPressureGuideline = Field(
        default_factory=BloodPressureGuideline,
        description="where each category of the result starts (the bridge's blood_pressure_guideline should match)",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_host_names(cls, names: list[str]) -> list[str]:
        # Compared with the Host header's name part, which is case-insensitive (RFC 9110 4.2.3).
        bad = [name for name in names if not _HOST_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not a host name (no scheme, no port, e.g. 'kiosk-1.local' or '[fe80::1]'): {bad}")
        return [name.lower() for name in names]

    @field_validator("technician_pin")
    @classmethod
    def _pin_digits(cls, pin: SecretStr | None) -> SecretStr | None:
        if pin is not None and not (pin.get_secret_value().isdigit() and 6 <= len(pin.get_secret_value()) <= 12):
            raise ValueError("the technician PIN is 6 to 12 digits")
        return pin
