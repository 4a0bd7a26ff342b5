"""The update of this kiosk's software, step by step (contract/software.py's UpdateState):

    queued -> [deferred] -> downloading -> verifying -> installing -> [deferred] -> switching
      -> (restart: the launcher starts the new version on trial) -> checking -> healthy
                                                                           \\-> rolled_back
    refused (signature, hashes, version)  failed (download, install): the running version stays

Each state is saved (update.json) before its step starts, so that a restart at any step knows
where it was: an interrupted download or install starts again (the download resumes), a
switch that did not happen is made again, and a trial goes on. The launcher
(deploy/doorstep-launch) counts the new version's starts and goes back on its own when it never
gets as far as this code (docs/updates.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, Final, Protocol

from contract.commands import CommandOutcome
from contract.software import SoftwareReport, UpdateReport, UpdateSoftwareArgs, UpdateState
from edge_agent.updates import record as records
from edge_agent.updates.install import InstallError, install
from edge_agent.updates.layout import UpdateLayout
from edge_agent.updates.record import UpdateRecord
from releases.bundle import verify
from releases.errors import ReleaseError

log = logging.getLogger(__name__)

# Written by the launcher when it went back because the version on trial never confirmed its
# health (it crashed or hung at every start): the reason, for the previous version to report.
ROLLED_BACK_MARKER: Final = "rolled_back"
# How often the version on trial looks at its health.
TRIAL_CHECK_EVERY_S: Final = 1.0


class UpdatingKiosk(Protocol):
    """What an update needs of the running agent (edge_agent/agent.py's Agent is one)."""

    async def why_not_now(self) -> str | None: ...

    def update_health(self) -> list[str]: ...

    def request_restart(self) -> None: ...


class Updater:
    def __init__(self, kiosk: UpdatingKiosk, layout: UpdateLayout, *, trusted_keys: list[str], health_s: float,
                 retry_s: float, reported: Callable[[], Awaitable[None]], bridge_ca: Path | None = None) -> None:
        self._kiosk = kiosk
        self._bridge_ca = bridge_ca
        self.layout = layout
        self._trusted_keys = trusted_keys
        self._health_s = health_s
        self._retry_s = retry_s
        self._reported = reported
        self.running_version = installed_version("doorstep")
        self.record = records.load(layout)
        self._task: asyncio.Task[None] | None = None
        self._starting = False  # an update accepted, its command not yet answered (accept)

    def report(self) -> SoftwareReport:
        record = self.record
        previous = record.from_version if record is not None and record.args.version == self.running_version else None
        return SoftwareReport(version=self.running_version, previous_version=previous,
                              update=None if record is None else record.report)

    def begin(self, args: UpdateSoftwareArgs) -> tuple[CommandOutcome, str]:
        """accept, and start at once what it queued."""
        outcome, message, start = self.accept(args)
        if start is not None:
            start()
        return outcome, message

    def accept(self, args: UpdateSoftwareArgs) -> tuple[CommandOutcome, str, Callable[[], None] | None]:
        """The update_software command: the update is queued, and `start` (None when there is
        nothing to start) starts it in the background (it outlives the command and the process;
        its progress is in the telemetry's software report). The command starts it only once
        its answer is saved (remote.Answer.then): started before, a power cut while it
        downloaded answered "failed: interrupted by a kiosk restart" for an update that went on
        and succeeded."""
        if args.version == self.running_version:
            return CommandOutcome.SUCCEEDED, f"{args.version} is running already", None
        if self._starting or (self._task is not None and not self._task.done()):
            assert self.record is not None
            return CommandOutcome.REFUSED, f"an update to {self.record.args.version} is under way", None
        record = self.record = UpdateRecord(args=args, report=_queued(args), from_version=self.running_version)
        records.save(self.layout, record)
        self._starting = True

        def start() -> None:
            self._starting = False
            self._task = asyncio.create_task(self._failing_loudly(self._update(record)), name="software update")

        return CommandOutcome.SUCCEEDED, f"update to {args.version} queued; its progress is in the telemetry", start

    async def resume(self) -> None:
        """At start: carry on with whatever an update was doing when the process ended."""
        record = self.record
        if self.layout.on_trial():
            if record is not None and record.report.state == UpdateState.ROLLED_BACK:
                await self._go_back()  # it failed; the power went before the switch back
                return
            self._task = asyncio.create_task(self._trial(), name="software update trial")
            return
        marker = self.layout.root / ROLLED_BACK_MARKER
        if record is None or record.report.state.finished:
            marker.unlink(missing_ok=True)
            return
        if marker.exists():
            await self._move(UpdateState.ROLLED_BACK, marker.read_text().strip())
            marker.unlink()
        elif record.args.version == self.running_version:
            await self._move(UpdateState.HEALTHY)  # confirmed, then stopped before it could say so
        else:
            log.info("resuming the update to %s, interrupted at %s", record.args.version, record.report.state)
            self._task = asyncio.create_task(self._failing_loudly(self._update(record)), name="software update")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _failing_loudly(self, steps: Coroutine[Any, Any, None]) -> None:
        """An update that fails in a way its steps do not name (a full disk, a downloads folder
        that is not one) ends failed and says why: a task that died silently would report its
        last step for ever, and its rollout would wait for it for ever."""
        try:
            await steps
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - reported, not swallowed
            log.exception("software update failed unexpectedly")
            try:
                await self._move(UpdateState.FAILED, f"the kiosk failed: {type(error).__name__}: {error}")
            except Exception:  # noqa: BLE001 - the record cannot be written either: logged above
                log.exception("software update: the failure could not be recorded")

    async def _move(self, state: UpdateState, reason: str | None = None) -> None:
        assert self.record is not None
        self.record = self.record.moved(state, reason)
        await asyncio.to_thread(records.save, self.layout, self.record)
        (log.warning if state in (UpdateState.REFUSED, UpdateState.FAILED, UpdateState.ROLLED_BACK) else log.info)(
            "software update to %s: %s%s", self.record.args.version, state.value, f" ({reason})" if reason else "")
        await self._reported()

    async def _wait_until_free(self) -> None:
        while (busy := await self._kiosk.why_not_now()) is not None:
            assert self.record is not None
            if self.record.report.state != UpdateState.DEFERRED or self.record.report.reason != busy:
                await self._move(UpdateState.DEFERRED, busy)
            await asyncio.sleep(self._retry_s)

    async def _update(self, record: UpdateRecord) -> None:
        # Loaded when an update runs, not with the agent: httpx stays off a kiosk's resident set
        # (tests/test_agent_imports.py) for the months between updates.
        from edge_agent.updates.download import DownloadError, download

        args, layout = record.args, self.layout
        await self._wait_until_free()
        bundle = layout.downloads / f"doorstep-{args.version}.bundle"
        await self._move(UpdateState.DOWNLOADING)
        try:
            await asyncio.to_thread(download, args.url, bundle, size=args.size, sha256=args.sha256,
                                    ca=self._bridge_ca)
        except DownloadError as error:
            await self._move(UpdateState.FAILED, str(error))
            return
        await self._move(UpdateState.VERIFYING)
        unpacked = layout.downloads / f"doorstep-{args.version}"
        await asyncio.to_thread(shutil.rmtree, unpacked, True)
        try:
            manifest = await asyncio.to_thread(verify, bundle, self._trusted_keys, running_version=self.running_version,
                                               extract_to=unpacked)
        except ReleaseError as error:
            await asyncio.to_thread(shutil.rmtree, layout.downloads, True)
            await self._move(UpdateState.REFUSED, str(error))
            return
        if manifest.version != args.version:
            await self._move(UpdateState.REFUSED, f"the bundle is {manifest.version}, not {args.version}")
            return
        if not layout.installed(args.version):
            await self._move(UpdateState.INSTALLING)
            try:
                await asyncio.to_thread(install, unpacked / "wheels", layout.venv(args.version), args.version)
            except InstallError as error:
                await self._move(UpdateState.FAILED, str(error))
                return
        await asyncio.to_thread(shutil.rmtree, unpacked, True)
        await self._wait_until_free()  # the restart ahead must not cut a measurement short either
        await self._move(UpdateState.SWITCHING)
        await asyncio.to_thread(self._switch, args.version)
        self._kiosk.request_restart()

    def _switch(self, version: str) -> None:
        """`previous` is what runs now, the trial names the new version, then `current` points to
        it: a power cut between the last two leaves a trial the launcher sees is stale."""
        layout = self.layout
        layout.point(layout.previous, layout.running_venv())
        layout.write(layout.trial, f"{layout.venv(version).resolve()} 0\n")
        layout.point(layout.current, layout.venv(version))

    async def _trial(self) -> None:
        """This version is on trial: kept once it is healthy, rolled back if not within health_s."""
        if self.record is not None and self.record.args.version == self.running_version:
            await self._move(UpdateState.CHECKING)
        deadline = time.monotonic() + self._health_s
        while problems := self._kiosk.update_health():
            if time.monotonic() > deadline:
                reason = (f"{self.running_version} was not healthy within {self._health_s:.0f} s: "
                          + "; ".join(problems))
                if self.record is not None:
                    await self._move(UpdateState.ROLLED_BACK, reason)
                await self._go_back()
                return
            await asyncio.sleep(TRIAL_CHECK_EVERY_S)
        await asyncio.to_thread(self.layout.trial.unlink, True)
        if self.record is not None:
            await self._move(UpdateState.HEALTHY)
        await asyncio.to_thread(self._remove_old_versions)
        await asyncio.to_thread(shutil.rmtree, self.layout.downloads, True)  # kept until now for a switch made again

    async def _go_back(self) -> None:
        layout = self.layout
        await asyncio.to_thread(layout.point, layout.current, Path(os.readlink(layout.previous)))
        await asyncio.to_thread(layout.trial.unlink, True)
        self._kiosk.request_restart()

    def _remove_old_versions(self) -> None:
        """Only the running version and the one before it stay on the SD card."""
        keep = {p.resolve() for p in (self.layout.current, self.layout.previous) if p.exists()}
        for venv in self.layout.versions.iterdir() if self.layout.versions.exists() else ():
            if venv.resolve() not in keep:
                shutil.rmtree(venv, ignore_errors=True)


def _queued(args: UpdateSoftwareArgs) -> UpdateReport:
    return UpdateReport(version=args.version, state=UpdateState.QUEUED, rollout_id=args.rollout_id, at=datetime.now(UTC))
