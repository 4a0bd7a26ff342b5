"""Pairing a new cuff from the kiosk's technician screen, and pairing again one that lost its
bond: one pairing at a time, its progress for the screen to show, and the device written into
the kiosk's configuration when BlueZ holds a bond with it.

    idle ──scan──▶ (the devices heard, each with its profile)
         ──pair(address)──▶ pairing ──▶ paired  (configured through DesiredConfigApplier.pair_device)
                                   │        (an Omron key model: the kiosk's unlock key programmed first)
                                   └──▶ failed  (failure: what to tell the technician)

The BlueZ side is drivers/ble/pairing.py; the words are the screen's (static/i18n.js,
"pair.failure.*"), by the failure's code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from contract.telemetry import DeviceError
from bleak.backends.client import BaseBleakClient

from drivers.ble.discovery import DiscoveredDevice
from drivers.ble.errors import BleDriverError
from drivers.ble.omron.session import KeyNotProgrammedError, OmronMemorySession
from drivers.ble.pairing import AgentLog, BluezPairing, PairingError, PairingFailure
from firmware_configs.profiles import BleDeviceProfile, Quirk
from kiosk_config.sections import DeviceSettings

log = logging.getLogger(__name__)

# How long a scan listens: cuffs in pairing mode advertise every second or so.
SCAN_S = 8.0
# Pairing a Just Works cuff takes seconds; one showing a passkey waits for a person.
PAIR_TIMEOUT_S = 60.0


class PairingPhase(StrEnum):
    IDLE = "idle"
    PAIRING = "pairing"
    PAIRED = "paired"
    FAILED = "failed"


class PairingRefused(Exception):
    """A request the desk cannot take now; `reason` is the screen's code."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass
class PairingDesk:
    profiles: Mapping[str, BleDeviceProfile]
    configured: Callable[[], Sequence[DeviceSettings]]  # the devices the agent runs with now
    configure: Callable[[dict[str, Any]], Awaitable[list[str]]]  # DesiredConfigApplier.pair_device
    forget: Callable[[str], Awaitable[list[str]]]  # DesiredConfigApplier.forget_paired
    paired: Callable[[], Sequence[dict[str, Any]]]  # DesiredConfigApplier.paired
    bond_trouble: Callable[[], Mapping[str, DeviceError]]  # DeviceHealthBook.bond_trouble
    unlock_key: bytes  # programmed into Omron cuffs that unlock with a key (edge_agent/unlock_key.py)
    connect: Callable[[], Awaitable[BluezPairing]] = BluezPairing.connect
    # The bleak backend for a device (simulated ones in tests and the demo); None: the platform's.
    backend_for: Callable[[str], type[BaseBleakClient] | None] = lambda _address: None
    scan_s: float = SCAN_S
    pair_timeout_s: float = PAIR_TIMEOUT_S
    phase: PairingPhase = PairingPhase.IDLE
    address: str | None = None
    model: str | None = None
    failure: str | None = None  # a PairingFailure, or "config_refused"
    detail: str | None = None
    _agent: AgentLog | None = None
    _heard: dict[str, DiscoveredDevice] = field(default_factory=dict)
    _paired_at: dict[str, datetime] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def scan(self) -> list[DiscoveredDevice]:
        """The devices heard now, strongest first; those with a profile can be paired."""
        if self.phase is PairingPhase.PAIRING:
            raise PairingRefused(409, "pairing_busy", f"pairing {self.address} is under way")
        try:
            bluez = await self.connect()
            try:
                heard = await bluez.scan(list(self.profiles.values()), self.scan_s)
            finally:
                bluez.disconnect()
        except PairingError as error:
            raise PairingRefused(503, error.failure.value, error.detail) from None
        self._heard = {d.address.upper(): d for d in heard}
        return heard

    def pair(self, address: str) -> None:
        """Start pairing `address`: one heard in the last scan with a profile, or a configured
        device to pair again. The screen follows it in `snapshot()`."""
        if self.phase is PairingPhase.PAIRING:
            raise PairingRefused(409, "pairing_busy", f"pairing {self.address} is under way")
        model = self._model_of(address)
        if model is None:
            raise PairingRefused(404, "not_heard", f"{address} was not heard with a known profile: scan again")
        self.phase, self.address, self.model, self.failure, self.detail = PairingPhase.PAIRING, address, model, None, None
        self._agent = AgentLog(device="")
        self._task = asyncio.create_task(self._pair(address, model, self._agent), name=f"pairing {address}")

    def snapshot(self) -> dict[str, Any]:
        """What the screen shows: this pairing's progress, and the devices to pair again."""
        return {
            "phase": self.phase.value,
            "address": self.address,
            "model": self.model,
            "passkey": None if self._agent is None or self._agent.passkey is None else f"{self._agent.passkey:06d}",
            "failure": self.failure,
            "detail": self.detail,
            "pair_again": self.pair_again(),
            "paired": [{"address": d["address"], "model": d["model"]} for d in self.paired()],
        }

    async def unpair(self, address: str) -> None:
        """Take a device paired here off the kiosk's configuration."""
        if self.phase is PairingPhase.PAIRING:
            raise PairingRefused(409, "pairing_busy", f"pairing {self.address} is under way")
        if not any(d["address"].upper() == address.upper() for d in self.paired()):
            raise PairingRefused(404, "not_paired_here", f"{address} was not paired at this kiosk")
        problems = await self.forget(address)
        if problems:
            raise PairingRefused(422, "config_refused", "; ".join(problems))

    def pair_again(self) -> list[dict[str, Any]]:
        """Configured devices refusing the kiosk for want of a bond since they were last paired."""
        models = {d.address.upper(): d.model for d in self.configured()}
        return [
            {"address": address, "model": models.get(address.upper()), "error": error.code, "since": error.at.isoformat()}
            for address, error in sorted(self.bond_trouble().items())
            if address.upper() in models and error.at > self._paired_at.get(address.upper(), datetime.min.replace(tzinfo=UTC))
        ]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _model_of(self, address: str) -> str | None:
        heard = self._heard.get(address.upper())
        if heard is not None and heard.model is not None:
            return heard.model
        return next((d.model for d in self.configured() if d.address.upper() == address.upper()), None)

    async def _pair(self, address: str, model: str, agent: AgentLog) -> None:
        capability = self.profiles[model].pairing_capability
        try:
            bluez = await self.connect()
            try:
                await bluez.pair(address, capability, timeout_s=self.pair_timeout_s, agent=agent)
            finally:
                bluez.disconnect()
            await self._program_key(address, self.profiles[model])
        except PairingError as error:
            log.warning("pairing %s (%s) failed: %s", address, model, error)
            self.phase, self.failure, self.detail = PairingPhase.FAILED, error.failure.value, error.detail
            return
        except Exception:  # noqa: BLE001 - our bug: logged loudly, and the screen is not left waiting
            log.exception("pairing %s (%s) failed", address, model)
            self.phase, self.failure, self.detail = PairingPhase.FAILED, PairingFailure.FAILED.value, "the kiosk failed"
            return
        problems = await self.configure(self._entry(address, model))
        if problems:
            # Bonded, but the configuration refused it: said, never half-configured.
            self.phase, self.failure, self.detail = PairingPhase.FAILED, "config_refused", "; ".join(problems)
            return
        self._paired_at[address.upper()] = datetime.now(UTC)
        self.phase = PairingPhase.PAIRED

    async def _program_key(self, address: str, profile: BleDeviceProfile) -> None:
        """An Omron cuff that unlocks with a key takes the kiosk's now, while it is still in
        pairing mode (omblepy programs its key right after pairing, omblepy.py main, -p)."""
        memory = profile.omron_memory
        if memory is None or memory.unlock != "key":
            return
        session = OmronMemorySession(address, memory, backend=self.backend_for(address),
                                     needs_bonding=Quirk.NEEDS_BONDING in profile.quirks, unlock_key=self.unlock_key)
        try:
            await session.program_key()
        except (KeyNotProgrammedError, BleDriverError) as error:
            raise PairingError(PairingFailure.KEY_NOT_PROGRAMMED, str(error)) from error
        log.info("programmed this kiosk's unlock key into %s (%s)", address, profile.model)

    def _entry(self, address: str, model: str) -> dict[str, Any]:
        """Its settings: a device paired again keeps its own, with the model just matched."""
        existing = next((d for d in self.configured() if d.address.upper() == address.upper()), None)
        kept = {} if existing is None else existing.model_dump(mode="json", exclude_defaults=True)
        return {**kept, "address": address, "model": model}
