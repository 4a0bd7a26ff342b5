"""The fleet's desired configuration at the kiosk: validate, wait for a quiet moment, apply only
what changed, check health, keep it or roll back, and say which (docs/configuration.md, "Fleet
configuration").

    …/desired (retained) ──▶ newer than what runs? ──▶ valid over the kiosk's own file?
        no: refused (the old one runs on)         │ yes
                                                  ▼
        nobody measuring, no washer start in doubt (wait) ──▶ apply the difference
            ──▶ healthy within config_health_s? yes: applied, the new last good
                                                no:  the last good applied again: rolled_back

The outbox is never part of a change: its records stay where they are, and a new broker
connection sends the unconfirmed ones again with their ids (the bridge stores each once).

What runs and what was last good are kept in a file beside the outbox, written whole
(status_file.write_atomically), so a restart runs the same; a restart in the middle of a health
check starts on the last good one and reports the other rolled back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from contract.desired import ConfigOutcome, ConfigReport, DesiredConfig
from edge_agent.settings import AgentSettings
from edge_agent.status_file import write_atomically
from firmware_configs.laundry import format_problems
from kiosk_config.fleet import fleet_problems, overlay

log = logging.getLogger(__name__)

# How often a change waiting for a quiet moment, or a health check, looks again.
LOOK_AGAIN_S = 0.2
# A reason reported to the bridge is cut to what ConfigReport holds.
MAX_REASON = 2000


# Where a problem with the devices paired at the kiosk comes from, in its messages.
PAIRED_SOURCE = "paired at the kiosk"


def config_path(outbox_path: Path) -> Path:
    return outbox_path.with_name("fleet-config.json")


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What differs between two settings, as the parts of the agent that apply it."""

    devices_started: tuple[str, ...] = ()  # added, or any of their settings changed: (re)started
    devices_stopped: tuple[str, ...] = ()  # no longer configured
    laundry: bool = False  # the room restarts (its line reopens): its machines must answer again
    screen: bool = False  # the screen's server restarts with the new settings
    outbox_limits: bool = False  # budget and ages: the outbox's limits, its records untouched
    schedules: tuple[str, ...] = ()  # the agent's interval jobs whose period changed
    broker: bool = False  # the uplink reconnects to the new broker

    @property
    def empty(self) -> bool:
        return self == ConfigChange()


def schedule_periods(settings: AgentSettings) -> dict[str, float]:
    """The agent's interval jobs a configuration sets the period of, by job id."""
    return {"telemetry": settings.telemetry_every_s, "outbox-prune": settings.outbox.prune_every_s}


def difference(old: AgentSettings, new: AgentSettings) -> ConfigChange:
    before = {d.address: d for d in old.devices}
    after = {d.address: d for d in new.devices}
    outbox_fields = set(type(new.outbox).model_fields) - {"prune_every_s"}
    return ConfigChange(
        devices_started=tuple(a for a, d in after.items() if before.get(a) != d),
        devices_stopped=tuple(a for a in before if a not in after),
        laundry=old.laundry != new.laundry,
        screen=old.screen != new.screen,
        outbox_limits=old.outbox.model_dump(include=outbox_fields) != new.outbox.model_dump(include=outbox_fields),
        schedules=tuple(job for job, period in schedule_periods(new).items() if schedule_periods(old)[job] != period),
        broker=old.broker != new.broker,
    )


def effective_settings(base: AgentSettings, config: dict[str, Any], source: str,
                       paired: Sequence[dict[str, Any]] = ()) -> AgentSettings | list[str]:
    """The kiosk's own settings with the fleet's sections over them and the devices paired at
    the kiosk over those, validated by the agent's own model; or every problem, by field.

    A paired device is a fact of this kiosk (its BlueZ holds the bond), so a fleet document's
    `devices` list, which replaces the file's whole, does not drop it: each paired device is
    added to whatever list results, replacing an entry with its address."""
    problems = fleet_problems(config, source)
    if problems:
        return problems
    merged = overlay(base.model_dump(), config)
    addresses = {d["address"].upper() for d in paired}
    for device in config.get("devices") or []:
        if device["address"].upper() in addresses:
            # Said, not silent: the fleet's entry for this cuff does not run here.
            log.warning("%s: devices: %s is paired at this kiosk; its entry there is replaced by the "
                        "kiosk's (forget it at the kiosk's screen to use the fleet's)", source, device["address"])
    merged["devices"] = [d for d in merged.get("devices", []) if d["address"].upper() not in addresses] + list(paired)
    try:
        return AgentSettings.model_validate(merged)
    except ValidationError as error:
        return format_problems(source, error)


class Applied(BaseModel):
    version: int
    config: dict[str, Any]


class SavedState(BaseModel):
    """The file beside the outbox."""

    applied: Applied | None = None  # written before its health check
    last_good: Applied | None = None  # written after it passed
    report: ConfigReport | None = None
    paired: list[dict[str, Any]] = []  # devices paired at the kiosk (DeviceSettings), over the fleet's


class Agent(Protocol):
    """What the applier needs of the agent (edge_agent/agent.py)."""

    settings: AgentSettings

    async def apply_settings(self, new: AgentSettings, change: ConfigChange) -> None: ...

    def unhealthy(self, change: ConfigChange, since: datetime) -> list[str]: ...

    async def why_not_now(self) -> str | None: ...


class DesiredConfigApplier:
    def __init__(self, agent: Agent, base: AgentSettings, path: Path, *, health_s: float,
                 reported: Callable[[], Awaitable[None]]) -> None:
        """`base`: the kiosk's own settings (its file); `reported`: sends telemetry now, so the
        bridge hears an outcome without waiting for the next one."""
        self._agent = agent
        self._base = base
        self._path = path
        self._health_s = health_s
        self._reported = reported
        self._state = self._load()
        self._newest: DesiredConfig | None = None
        self._task: asyncio.Task[None] | None = None
        # One change at a time, from the fleet or from the kiosk's own screen.
        self._changing = asyncio.Lock()

    # -- at start, before anything runs ---------------------------------------------------

    def startup_settings(self) -> AgentSettings:
        """What to start with: the last good configuration over the file, if it still fits it."""
        state = self._state
        if state.applied is not None and state.applied != state.last_good:
            # Stopped during a health check: that one never proved itself.
            self._report(ConfigOutcome.ROLLED_BACK, state.applied.version,
                         "the agent stopped before its health check ended")
            state.applied = state.last_good
            self._save()
        if state.last_good is not None:
            found = effective_settings(self._base, state.last_good.config,
                                       f"fleet configuration v{state.last_good.version}", state.paired)
            if not isinstance(found, list):
                return found
            # The kiosk's own file changed under it: its file alone, and the fleet told why.
            log.error("the last good fleet configuration no longer fits this kiosk's file: %s", "; ".join(found))
            self._report(ConfigOutcome.REFUSED, state.last_good.version, "\n".join(found))
            state.applied = state.last_good = None
            self._save()
        found = effective_settings(self._base, {}, PAIRED_SOURCE, state.paired)
        if isinstance(found, list):
            log.error("the devices paired at this kiosk no longer fit its file, started without them: %s",
                      "; ".join(found))
            return self._base
        return found

    @property
    def running_version(self) -> int:
        return self._state.last_good.version if self._state.last_good is not None else 0

    def report(self) -> ConfigReport:
        report = self._state.report or ConfigReport(version=self.running_version)
        return report.model_copy(update={"version": self.running_version})

    # -- a desired configuration arrives ----------------------------------------------------

    def offer(self, desired: DesiredConfig) -> None:
        """From the agent's loop: act on it unless it is not new (the retained copy comes again
        on every connect). One change at a time; a newer one waiting replaces an older one."""
        tried = self._state.report.tried_version if self._state.report is not None else None
        if desired.version <= self.running_version or desired.version == tried:
            return
        self._newest = desired
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._work(), name="desired configuration")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _work(self) -> None:
        while self._newest is not None:
            desired, self._newest = self._newest, None
            try:
                async with self._changing:
                    await self._apply(desired)
            except Exception:  # noqa: BLE001 - our bug: said loudly and reported, the agent goes on
                log.exception("applying fleet configuration v%d failed", desired.version)
                self._report(ConfigOutcome.REFUSED, desired.version, "the kiosk failed applying it (see its log)")
                self._save()
            await self._reported()

    async def _apply(self, desired: DesiredConfig) -> None:
        source = f"fleet configuration v{desired.version}"
        found = effective_settings(self._base, desired.config, source, self._state.paired)
        if isinstance(found, list):
            log.error("refused %s: %s", source, "; ".join(found))
            self._report(ConfigOutcome.REFUSED, desired.version, "\n".join(found))
            self._save()
            return
        await self._quiet(source)
        old = self._agent.settings
        change = difference(old, found)
        log.info("applying %s by %s: %s", source, desired.changed_by, change)
        since = datetime.now(UTC)
        self._state.applied = Applied(version=desired.version, config=desired.config)
        self._save()
        await self._agent.apply_settings(found, change)
        problems = await self._health(change, since)
        if problems:
            reason = f"{'; '.join(problems)} within {self._health_s:g} s: rolled back"
            log.error("%s failed its health check: %s", source, reason)
            await self._agent.apply_settings(old, difference(found, old))
            self._state.applied = self._state.last_good
            self._report(ConfigOutcome.ROLLED_BACK, desired.version, reason)
        else:
            self._state.last_good = self._state.applied
            self._report(ConfigOutcome.APPLIED, desired.version, None)
            log.info("%s applied and healthy", source)
        self._save()

    # -- a device paired at the kiosk (edge_agent/pairing.py) --------------------------------------

    @property
    def paired(self) -> list[dict[str, Any]]:
        return list(self._state.paired)

    async def pair_device(self, device: dict[str, Any]) -> list[str]:
        """Add (or replace, by address) a device paired at the kiosk: validated as any change is,
        applied at a quiet moment, kept in the file beside the outbox; [] or every problem.

        No health check: a technician is at the kiosk and sees the next measurement, and a cuff
        is only reachable while it measures, so "not answered yet" would undo every pairing."""
        others = [d for d in self._state.paired if d["address"].upper() != device["address"].upper()]
        return await self._change_paired([*others, device], f"the paired device {device['address']}")

    async def forget_paired(self, address: str) -> list[str]:
        """Take a device paired at the kiosk off its configuration (a cuff replaced or gone): what
        the fleet's own `devices` says of that address stands again."""
        kept = [d for d in self._state.paired if d["address"].upper() != address.upper()]
        return await self._change_paired(kept, f"forgetting the paired device {address}")

    async def _change_paired(self, paired: list[dict[str, Any]], what: str) -> list[str]:
        async with self._changing:
            config = self._state.last_good.config if self._state.last_good is not None else {}
            found = effective_settings(self._base, config, PAIRED_SOURCE, paired)
            if isinstance(found, list):
                log.error("refused %s: %s", what, "; ".join(found))
                return found
            await self._quiet(what)
            change = difference(self._agent.settings, found)
            self._state.paired = paired
            self._save()
            await self._agent.apply_settings(found, change)
            log.info("%s: %s", what, change)
            return []

    async def _quiet(self, source: str) -> None:
        """Never in the middle of a measurement or a washer start in doubt: wait for the end."""
        said = False
        while (busy := await self._agent.why_not_now()) is not None:
            if not said:
                log.info("%s waits: %s", source, busy)
                said = True
            await asyncio.sleep(LOOK_AGAIN_S)

    async def _health(self, change: ConfigChange, since: datetime) -> list[str]:
        deadline = time.monotonic() + self._health_s
        while problems := self._agent.unhealthy(change, since):
            if time.monotonic() >= deadline:
                return problems
            await asyncio.sleep(LOOK_AGAIN_S)
        return []

    # -- the file ------------------------------------------------------------------------------

    def _report(self, outcome: ConfigOutcome, version: int, reason: str | None) -> None:
        self._state.report = ConfigReport(
            version=self.running_version, tried_version=version, outcome=outcome,
            reason=None if reason is None else reason[:MAX_REASON], at=datetime.now(UTC),
        )

    def _load(self) -> SavedState:
        try:
            return SavedState.model_validate_json(self._path.read_bytes())
        except FileNotFoundError:
            return SavedState()
        except (OSError, ValueError) as error:
            log.error("cannot read %s (%s): starting from this kiosk's own file", self._path, error)
            return SavedState()

    def _save(self) -> None:
        write_atomically(self._path, self._state.model_dump_json())
