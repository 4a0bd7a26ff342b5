"""The kiosk agent: watches its devices, saves every reading to the outbox, keeps the uplink pumping.

It needs no network to start: readings are saved locally and leave when a broker is reachable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from bleak.backends.client import BaseBleakClient

from contract.payloads import DeviceIdentity
from contract.sealing import Sealer
from contract.telemetry import DeviceTelemetry, KioskTelemetry
from contract.topics import QOS_TELEMETRY, KioskTopics
from runtime.config import ConfigError
from drivers.ble.blood_pressure import BloodPressureMeasurement
from drivers.ble.errors import BleDriverError, DeviceNotFoundError, DeviceUnavailableError
from edge_agent.alarms import CHECK_EVERY_S as ALARMS_CHECK_EVERY_S, AlarmWatch
from edge_agent.bridge_workers import BridgeWorkers
from edge_agent.clock import ClockWatch, kernel_clock_synchronised
from edge_agent.desired_config import ConfigChange, DesiredConfigApplier, config_path, schedule_periods
from edge_agent.device_health import DeviceHealthBook, line_telemetry
from edge_agent.pairing import PairingDesk
from edge_agent.devices import CuffPressureListener, CursorStore, DeviceReader, reader_for
from edge_agent.kiosk_commands import kiosk_handlers
from edge_agent.laundry import LaundryRoom
from contract.pseudonym import Pseudonyms
from edge_agent.readings import DeviceReading, fingerprint, outgoing
from edge_agent.remote import RemoteCommands
from edge_agent.runway import RunwayWatch
from edge_agent.scheduling import AgentScheduler, JobWatch, watch_clock_jumps
from edge_agent.screen.app import create_app
from edge_agent.screen.context import ScreenContext
from edge_agent.screen.guard import PinGuard, RateLimit
from edge_agent.screen.measurement import MeasurementDesk
from edge_agent.screen.scans import ScanBox
from edge_agent.readers import ReaderWatch
from edge_agent.receipt import ReceiptPrinter
from edge_agent.screen.server import ScreenServer
from edge_agent.screen.speech import Speaker
from edge_agent.screen.staff_call import StaffCall
from edge_agent.settings import AgentSettings, DeviceSettings, LaundrySettings
from edge_agent.status_file import AgentStatus, JobState, status_path, write_status
from edge_agent.store.condition_log import ConditionLog
from edge_agent.store.cursors import DeviceCursors
from edge_agent.store.local_audit import LocalAudit
from edge_agent.store.outbox import Outbox, RecordState, SavedRecord
from edge_agent.store.relay_station import RelayBook
from edge_agent.systemd import notify, watchdog_interval_s
from edge_agent.telemetry import kiosk_telemetry
from edge_agent.unlock_key import kiosk_unlock_key, unlock_key_path
from edge_agent.updates.layout import UpdateLayout
from edge_agent.updates.updater import Updater
from edge_agent.uplink import Uplink
from firmware_configs.profiles import load_ble_profiles

log = logging.getLogger(__name__)

# How often the `outbox-flush` job pumps the uplink when nothing else wakes it: re-send
# deadlines are checked then.
PUMP_INTERVAL_S = 0.5
# How often the kiosk asks the kernel whether its clock is synchronised yet.
TIME_SANITY_EVERY_S = 30.0
# How often an unavailable laundry line (adapter unplugged, wrong port) is tried again.
LAUNDRY_RETRY_S = 30.0
# How long a stop waits for scheduled jobs that are running to finish.
STOP_GRACE_S = 5.0
# How often relay-station visits past the maximum stay are closed (they stop counting as
# inside at once; this only tells the cloud).
RELAY_EXPIRE_EVERY_S = 600.0

SavedListener = Callable[[SavedRecord, DeviceReading], None]
RunEnd = Literal["stopped", "reload", "restart"]


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        backends: Mapping[str, type[BaseBleakClient]] | None = None,
        on_saved: SavedListener | None = None,
        on_cuff_pressure: CuffPressureListener | None = None,
        config_path: Path | None = None,
    ) -> None:
        """`backends` maps a device address to a bleak backend (tests, simulations); a device
        marked `simulated` without one gets the default simulator of its kind. `config_path`:
        the file the settings came from, re-read by the remote `reload_config` command."""
        self.config_path = config_path
        # The kiosk's own settings; `settings` is what runs: these with the fleet's over them
        # (edge_agent/desired_config.py).
        self.base_settings = settings
        self.settings = settings
        self.topics = KioskTopics(settings.site, settings.kiosk)
        self._backends = dict(backends or {})
        self._on_saved = on_saved
        self._on_cuff_pressure = on_cuff_pressure
        self._wakeup = asyncio.Event()
        self.outbox: Outbox | None = None
        self.uplink: Uplink | None = None
        self.alarms: AlarmWatch | None = None
        self.laundry: LaundryRoom | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.job_watch: JobWatch | None = None
        self._started = time.monotonic()
        self.clock_watch = ClockWatch(
            kernel_clock_synchronised if settings.trust_clock == "if_synchronised" else lambda: True
        )
        # The bridge workers heard online, kept across uplinks: whether readings go in session boxes.
        self.bridge_workers = BridgeWorkers()
        self._last_reading_at: dict[str, datetime] = {}
        self._last_seen_at: dict[str, datetime] = {}
        self.device_health = DeviceHealthBook(log)
        self.runway = RunwayWatch(settings.outbox.runway_window_s)
        # Errors at a storage limit (a full disk), logged once per condition with a count.
        self.conditions = ConditionLog(log)
        self.remote: RemoteCommands | None = None
        self.fleet_config: DesiredConfigApplier | None = None
        self.pairing: PairingDesk | None = None  # the technician screen's "pair a new cuff"
        self.unlock_key: bytes | None = None  # for Omron cuffs that unlock with a key; read at run()
        # Held while the uplink pumps, and while a new broker's uplink replaces it.
        self._uplink_lock = asyncio.Lock()
        self._laundry_task: asyncio.Task[None] | None = None
        self._device_tasks: dict[str, asyncio.Task[None]] = {}
        self._readers: dict[str, DeviceReader] = {}
        self._command_tasks: set[asyncio.Task[object]] = set()
        self._stop: asyncio.Event | None = None
        self._reload_requested = False
        self._restart_requested = False
        self.updater: Updater | None = None
        # The blood-pressure desk of the screen: whose record the next cuff reading goes on.
        self.desk = MeasurementDesk(
            bands=settings.screen.blood_pressure_bands, timeout_s=settings.screen.measure_timeout_s,
            wall_clock=lambda: datetime.now().astimezone() if self.clock_watch.trusted else None,
        )
        self.relay: RelayBook | None = None
        self.screen: ScreenServer | None = None
        self.speaker: Speaker | None = None  # screen.speak_results
        # Serial card and QR readers' scans, to the screen through the desk's events.
        self.scans = ScanBox(self.desk.announce)
        self.readers: list[ReaderWatch] = []
        self.printer: ReceiptPrinter | None = None

    async def run(self, stop: asyncio.Event) -> RunEnd:
        """Until `stop` is set ("stopped"), or a remote reload_config asks for a restart with
        the file's new settings ("reload": the caller builds a new Agent)."""
        loop = asyncio.get_running_loop()
        # This run's own end: `stop` is the caller's and outlives a reload, so a reload must not
        # set it (the next run would end as soon as it began).
        self._stop = asyncio.Event()
        follow_stop = asyncio.create_task(_set_when(stop, self._stop), name="stop")
        self.fleet_config = DesiredConfigApplier(
            self, self.base_settings, config_path(self.base_settings.outbox_path),
            health_s=self.base_settings.config_health_s, reported=self._report_telemetry,
        )
        self.settings = self.fleet_config.startup_settings()  # the last good, as before a restart
        self.unlock_key = kiosk_unlock_key(unlock_key_path(self.base_settings.outbox_path))
        self.pairing = PairingDesk(
            profiles=load_ble_profiles(), configured=lambda: self.settings.devices,
            configure=self.fleet_config.pair_device, forget=self.fleet_config.forget_paired,
            paired=lambda: self.fleet_config.paired if self.fleet_config is not None else [],
            bond_trouble=self.device_health.bond_trouble,
            unlock_key=self.unlock_key, backend_for=self._backends.get,
        )
        self.desk.bands, self.desk.timeout_s = self.settings.screen.blood_pressure_bands, self.settings.screen.measure_timeout_s
        watch = self.clock_watch
        self.outbox = Outbox(
            self.settings.outbox_path,
            limits=self.settings.outbox.limits(),
            clock_trusted=lambda: watch.trusted,
            sealer=Sealer.from_text(self.settings.payload_public_key,
                                    session_boxes=self.bridge_workers.all_open_session_boxes)
            if self.settings.payload_public_key else None,
        )
        self.alarms = AlarmWatch(self.outbox)
        # Steady interval jobs, and a watch that brings them forward when the clock steps back:
        # a Pi's clock jumps (edge_agent/scheduling.py).
        self.scheduler = AgentScheduler()
        self.job_watch = JobWatch(self.scheduler)
        self.scheduler.add_job(watch.refresh, "interval", seconds=TIME_SANITY_EVERY_S, id="time-sanity")
        self.scheduler.add_job(
            self._prune, "interval", seconds=self.settings.outbox.prune_every_s, id="outbox-prune",
            max_instances=1, coalesce=True, misfire_grace_time=None,
        )
        self.scheduler.add_job(self._flush, "interval", seconds=PUMP_INTERVAL_S, id="outbox-flush")
        self.scheduler.add_job(
            self._check_alarms, "interval", seconds=ALARMS_CHECK_EVERY_S, id="alarms",
            max_instances=1, coalesce=True, misfire_grace_time=None,
        )
        self.scheduler.add_job(
            self._report_telemetry, "interval", seconds=self.settings.telemetry_every_s, id="telemetry",
            max_instances=1, coalesce=True, misfire_grace_time=None,
        )
        watchdog_s = watchdog_interval_s()
        if watchdog_s is not None:
            # From the scheduler on the event loop: a hung loop stops the pings.
            self.scheduler.add_job(notify, "interval", args=["WATCHDOG=1"], seconds=watchdog_s, id="systemd-watchdog")
        if self.settings.relay is not None:
            self.relay = RelayBook(
                self.outbox, self.topics, max_stay=timedelta(hours=self.settings.relay.max_stay_hours),
                saved=self._wakeup.set,
            )
            self.scheduler.add_job(
                self._expire_relay_visits, "interval", seconds=RELAY_EXPIRE_EVERY_S, id="relay-expire",
                max_instances=1, coalesce=True, misfire_grace_time=None,
            )
        self.scheduler.start()
        self.uplink = self._new_uplink(loop)
        self.remote = RemoteCommands(
            self.outbox, self.topics, kiosk_handlers(self), timeout_s=self.settings.command_timeout_s,
            saved=self._wakeup.set,
        )
        await asyncio.to_thread(self.remote.close_interrupted)
        await asyncio.to_thread(self.alarms.check)
        self.uplink.set_alarms(self.alarms.current())  # on the first connect, whatever it is: a stale set is replaced
        self.uplink.start()
        self.updater = Updater(
            self, UpdateLayout(self.base_settings.updates_root), trusted_keys=self.base_settings.release_public_keys,
            health_s=self.base_settings.update_health_s, retry_s=self.base_settings.update_retry_s,
            bridge_ca=self.base_settings.bridge_ca, reported=self._report_telemetry,
        )
        await self.updater.resume()
        await asyncio.to_thread(self._write_status)
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._pump_forever(), name="uplink"),
            asyncio.create_task(watch_clock_jumps(self.scheduler, on_jump=self._clock_jumped), name="clock-jumps"),
        ]
        if self.settings.laundry is not None:
            self._laundry_task = asyncio.create_task(self._open_laundry(self.settings.laundry), name="laundry")
        for device in self.settings.devices:
            self.restart_device(device.address)
        if self.settings.screen.enabled:
            tasks += self._open_peripherals()
            await self._open_screen()
        log.info("agent %s/%s running with %d device(s), Doorstep %s", self.topics.site, self.topics.kiosk,
                 len(self.settings.devices), self.updater.running_version)
        notify("READY=1")
        try:
            await self._stop.wait()
        finally:
            follow_stop.cancel()
            await self.pairing.stop()
            await self.fleet_config.stop()
            if self.updater is not None:
                await self.updater.stop()
            # Let running jobs (a telemetry save, a pruning pass) finish: shutting the scheduler
            # down cancels them mid-write.
            self.scheduler.pause()
            if self.screen is not None:
                self.desk.close_streams()
                await self.screen.stop()
            await self.job_watch.finished(timeout_s=STOP_GRACE_S)
            tasks += [*self._device_tasks.values(), *self._command_tasks, *filter(None, [self._laundry_task])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.scheduler.shutdown(wait=False)
            self.uplink.stop()
            self.outbox.close()
        if self._restart_requested:
            return "restart"
        return "reload" if self._reload_requested else "stopped"

    def _new_uplink(self, loop: asyncio.AbstractEventLoop) -> Uplink:
        return Uplink(
            self.outbox,  # type: ignore[arg-type]  # set before
            self.topics,
            self.settings.broker,
            window=self.settings.inflight_window,
            publish_window=self.settings.publish_window,
            batch_records=self.settings.batch_records,
            ack_timeout_s=self.settings.ack_timeout_s,
            resend_max_s=self.settings.resend_max_s,
            wake=lambda: loop.call_soon_threadsafe(self._wakeup.set),
            bridge_workers=self.bridge_workers,
        )

    def _pseudonyms(self) -> Pseudonyms | None:
        secret = self.settings.resident_secret
        return None if secret is None else Pseudonyms(secret.get_secret_value().encode(), site=self.settings.site)

    def _open_peripherals(self) -> list[asyncio.Task[None]]:
        """The screen's readers (their tasks, to be cancelled at the end) and receipt printer."""
        def now() -> datetime:
            return datetime.now(UTC)

        if self.settings.printer is not None:
            self.printer = ReceiptPrinter(self.settings.printer, health=self.device_health, wall_clock=now)
        self.readers = [
            ReaderWatch(reader, pseudonyms=self._pseudonyms(), scans=self.scans, health=self.device_health,
                        wall_clock=now)
            for reader in self.settings.readers
        ]
        return [asyncio.create_task(r.run(), name=f"reader {r.address}") for r in self.readers]

    async def _open_screen(self) -> None:
        """Serve the kiosk screen. A screen that cannot listen is logged, and the kiosk goes on
        saving readings and laundry events without it."""
        screen = self.settings.screen
        secret = self.settings.resident_secret
        if secret is None:
            log.warning("no resident_secret: the screen offers measuring without a record only, "
                        "and no check-ins or laundry starts")
        if screen.speak_results:
            self.speaker = Speaker(screen.speech_voice)
            self.desk.on_result = self.speaker.say
            await self.speaker.check()
        context = ScreenContext(
            settings=self.settings,
            desk=self.desk,
            pseudonyms=self._pseudonyms(),
            lookups=RateLimit(screen.identify_per_minute),
            pin=PinGuard(screen.technician_pin, attempts=screen.pin_attempts, lockout_s=screen.pin_lockout_s),
            relay=lambda: self.relay,
            laundry=lambda: self.laundry,
            status=self.local_status,
            audit=LocalAudit(self.outbox.database).record if self.outbox is not None else (lambda action, result, **detail: None),
            speaker=self.speaker,
            pairing=self.pairing,
            staff=None if self.outbox is None else StaffCall(self.outbox, self.topics, repeat_s=screen.staff_call_repeat_s,
                                                             saved=self._wakeup.set),
            scans=self.scans if self.readers else None,
            printer=self.printer,
        )
        server = ScreenServer(create_app(context), screen.host, screen.port)
        try:
            await server.start()
        except OSError as error:
            log.error("the kiosk screen cannot listen on %s:%d (%s); the kiosk goes on without it",
                      screen.host, screen.port, error)
            return
        self.screen = server

    def local_status(self) -> dict[str, Any]:
        """What the technician's admin endpoint shows."""
        assert self.outbox is not None and self.uplink is not None
        counts = self.outbox.counts()
        return {
            "site": self.topics.site,
            "kiosk": self.topics.kiosk,
            "uplink_connected": self.uplink.connected,
            "clock_synchronised": self.clock_watch.trusted,
            "outbox": {state.value: counts.get(state, 0) for state in RecordState},
            "devices": [d.model_dump(mode="json") for d in self.device_telemetry()],
            "relay_inside": None if self.relay is None else self.relay.inside(),
        }

    async def _pump_forever(self) -> None:
        assert self.uplink is not None
        while True:
            self._wakeup.clear()
            try:
                async with self._uplink_lock:
                    await asyncio.to_thread(self.uplink.pump)
            except Exception as error:
                # Our bug (loud, every time) or a disk at its limit (once, with a count): keep
                # the records, try again.
                if not self.conditions.failed("the uplink (marking records sent)", error):
                    log.exception("the uplink failed; retrying")
            else:
                self.conditions.succeeded("the uplink (marking records sent)")
            for received in self.uplink.take_commands():
                assert self.remote is not None
                task: asyncio.Task[object] = asyncio.create_task(self.remote.handle(received), name="remote command")
                self._command_tasks.add(task)
                task.add_done_callback(self._command_tasks.discard)
            desired = self.uplink.take_desired()
            if desired is not None and self.fleet_config is not None:
                self.fleet_config.offer(desired)
            # Woken by a save, an ack, a command, or the `outbox-flush` job (re-send deadlines).
            await self._wakeup.wait()

    async def _open_laundry(self, settings: LaundrySettings) -> None:
        """Open the laundry room's line, retrying: an unplugged RS-485 adapter must not keep the
        health devices from being served."""
        assert self.outbox is not None
        room = LaundryRoom(settings, self.outbox, self.topics, saved=self._wakeup.set, scheduler=self.scheduler)
        while True:
            try:
                await room.start()
            except Exception as error:  # noqa: BLE001 - any failure to open: say why, retry
                log.error("laundry room on %s unavailable (%s); retrying in %.0f s", settings.port, error,
                          LAUNDRY_RETRY_S)
                await room.stop()
                await asyncio.sleep(LAUNDRY_RETRY_S)
                continue
            break
        self.laundry = room
        try:
            await asyncio.Event().wait()
        finally:
            self.laundry = None
            await room.stop()

    def device_telemetry(self) -> list[DeviceTelemetry]:
        devices = [
            DeviceTelemetry(
                address=d.address,
                model=d.model,
                last_reading_at=self._last_reading_at.get(d.address),
                last_seen_at=self._last_seen_at.get(d.address),
                battery_percent=self._readers[d.address].battery_percent if d.address in self._readers else None,
                clock_offset_s=self._readers[d.address].clock_offset_s if d.address in self._readers else None,
                **self.device_health.telemetry(d.address),
            )
            for d in self.settings.devices
        ]
        if self.laundry is not None:
            devices += [
                DeviceTelemetry(address=f"modbus-unit-{m.unit}", model=m.profile.model, link=m.link.state.value,
                                **line_telemetry(m.link))
                for m in self.laundry.machines()
            ]
        devices += [reader.telemetry() for reader in self.readers]
        if self.printer is not None:
            devices.append(self.printer.telemetry())
        return devices

    async def snapshot(self) -> KioskTelemetry:
        assert self.outbox is not None
        outbox = self.outbox

        def measure() -> KioskTelemetry:
            runway = self.runway.sample(time.monotonic(), outbox.undelivered_bytes(), budget_bytes=outbox.limits.budget_bytes)
            return kiosk_telemetry(
                outbox,
                uptime_s=time.monotonic() - self._started,
                clock_synchronised=self.clock_watch.trusted,
                now=datetime.now(UTC),
                devices=self.device_telemetry(),
                speech=None if self.speaker is None else self.speaker.health,
                runway=runway,
                config=None if self.fleet_config is None else self.fleet_config.report(),
                software=None if self.updater is None else self.updater.report(),
            )

        return await asyncio.to_thread(measure)

    async def _report_telemetry(self) -> None:
        assert self.outbox is not None and self.alarms is not None
        telemetry = await self.snapshot()
        try:
            with self.alarms.saving():
                await asyncio.to_thread(self.outbox.save, self.topics.telemetry, telemetry, qos=QOS_TELEMETRY)
        except Exception as error:
            if not self.conditions.failed("saving telemetry", error):
                raise
        else:
            self.conditions.succeeded("saving telemetry")
        finally:
            await self._check_alarms()
        await asyncio.to_thread(self._write_status)
        self._wakeup.set()

    async def _check_alarms(self) -> None:
        """Publish the kiosk's alarms when their set changes (edge_agent/alarms.py)."""
        assert self.alarms is not None
        changed = await asyncio.to_thread(self.alarms.check)
        if changed is not None and self.uplink is not None:
            self.uplink.set_alarms(changed)

    def _clock_jumped(self, _step_s: float) -> None:
        # The kernel's verdict may have changed with the step (NTP's first synchronisation).
        self.clock_watch.refresh()

    def job_states(self) -> list[JobState]:
        assert self.scheduler is not None and self.job_watch is not None
        records = self.job_watch.records
        states = []
        for job in self.scheduler.get_jobs():
            record = records.get(job.id)
            if record is None:
                states.append(JobState(id=job.id, next_run_time=job.next_run_time))
                continue
            states.append(JobState(id=job.id, next_run_time=job.next_run_time, last_run_at=record.last_run_at,
                                   last_outcome=record.last_outcome, last_error=record.last_error, runs=record.runs,
                                   failures=record.failures))
        return states

    def _write_status(self) -> None:
        """For `doorstep doctor`, another process: what this one is doing and when."""
        assert self.scheduler is not None and self.uplink is not None
        status = AgentStatus(
            pid=os.getpid(),
            written_at=datetime.now(UTC),
            uplink_connected=self.uplink.connected,
            clock_synchronised=self.clock_watch.trusted,
            jobs=self.job_states(),
            telemetry_every_s=self.settings.telemetry_every_s,
            outbox_growth_bytes_per_h=self.runway.latest.growth_bytes_per_h,
            outbox_runway_h=self.runway.latest.hours,
        )
        try:
            write_status(status_path(self.settings.outbox_path), status)
        except OSError as error:
            if not self.conditions.failed("writing the status file for doctor", error):
                log.warning("could not write the status file for doctor: %s", error)
        else:
            self.conditions.succeeded("writing the status file for doctor")
        self._wakeup.set()

    # -- what remote commands act on (edge_agent/kiosk_commands.py) --

    def restart_device(self, address: str) -> bool:
        """(Re)start the watch of one configured device, with a session now; False if there is no
        such device. Its `device <address>` job asks for a session every reconnect_interval_s."""
        assert self.scheduler is not None
        settings = next((d for d in self.settings.devices if d.address == address), None)
        if settings is None:
            return False
        running = self._device_tasks.pop(address, None)
        if running is not None:
            running.cancel()
        due = asyncio.Event()
        due.set()

        async def ask_for_a_session() -> None:  # a coroutine: apscheduler runs it on this loop
            due.set()

        self.scheduler.add_job(
            ask_for_a_session, "interval", seconds=settings.reconnect_interval_s, id=f"device {address}",
            replace_existing=True,
        )
        self._device_tasks[address] = asyncio.create_task(self._watch_device(settings, due), name=f"device {address}")
        return True

    # -- what a fleet configuration acts on (edge_agent/desired_config.py) --

    async def apply_settings(self, new: AgentSettings, change: ConfigChange) -> None:
        """Run with `new`: only the parts `change` names are touched, each on its own; the
        outbox and its records never are."""
        assert self.outbox is not None and self.scheduler is not None
        self.settings = new
        for address in change.devices_stopped:
            await self._stop_device(address)
        for address in change.devices_started:
            self.restart_device(address)
        if change.outbox_limits:
            self.outbox.limits = new.outbox.limits()
        periods = schedule_periods(new)
        for job in change.schedules:
            self.scheduler.reschedule_job(job, trigger="interval", seconds=periods[job])
        self.desk.bands, self.desk.timeout_s = new.screen.blood_pressure_bands, new.screen.measure_timeout_s
        if change.screen:
            await self._restart_screen()
        if change.laundry:
            await self._restart_laundry()
        if change.broker:
            await self._restart_uplink()

    def unhealthy(self, change: ConfigChange, since: datetime) -> list[str]:
        """What does not answer of what a change touched, and the broker; [] if all is well."""
        assert self.uplink is not None
        problems = []
        if not self.uplink.connected:
            problems.append(f"the broker {self.settings.broker.host}:{self.settings.broker.port} is not reachable")
        for address in change.devices_started:
            seen = self._last_seen_at.get(address)
            if seen is None or seen < since:
                problems.append(f"device {address} has not answered")
        if change.laundry and self.settings.laundry is not None:
            if self.laundry is None:
                problems.append(f"the laundry line {self.settings.laundry.port} has not opened")
            else:
                silent = [m.unit for m in self.laundry.machines() if m.link.state.value != "online"]
                if silent:
                    problems.append(f"laundry machine(s) {', '.join(map(str, silent))} have not answered")
        return problems

    async def why_not_now(self) -> str | None:
        """Why a configuration must wait: someone is measuring, or a washer start is in doubt."""
        if self.desk.snapshot()["state"] != "idle":
            return "a blood-pressure measurement is under way"
        if self.laundry is not None and len(await asyncio.to_thread(self.laundry.ledger.in_doubt)) > 0:
            return "a laundry start is in doubt"
        return None

    async def _stop_device(self, address: str) -> None:
        assert self.scheduler is not None
        if self.scheduler.get_job(f"device {address}") is not None:
            self.scheduler.remove_job(f"device {address}")
        self._readers.pop(address, None)
        task = self._device_tasks.pop(address, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _restart_screen(self) -> None:
        if self.screen is not None:
            self.desk.close_streams()
            await self.screen.stop()
            self.screen = None
        if self.settings.screen.enabled:
            await self._open_screen()

    async def _restart_laundry(self) -> None:
        if self._laundry_task is not None:
            self._laundry_task.cancel()
            await asyncio.gather(self._laundry_task, return_exceptions=True)
            self._laundry_task = None
        if self.settings.laundry is not None:
            self._laundry_task = asyncio.create_task(self._open_laundry(self.settings.laundry), name="laundry")

    async def _restart_uplink(self) -> None:
        """A new connection to the broker now configured. The records the old one had in flight
        are sent again with their ids by the new one (the bridge stores each once)."""
        assert self.uplink is not None and self.alarms is not None
        async with self._uplink_lock:
            await asyncio.to_thread(self.uplink.stop)
            self.uplink = self._new_uplink(asyncio.get_running_loop())
            self.uplink.set_alarms(self.alarms.current())
            self.uplink.start()

    async def _flush(self) -> None:
        self._wakeup.set()

    def check_new_config(self) -> list[str]:
        """Problems of the configuration file as it is now; [] if the agent may restart with it."""
        if self.config_path is None:
            return ["this agent was not started from a configuration file"]
        try:
            AgentSettings.from_file(self.config_path)
        except ConfigError as error:
            return str(error).splitlines()
        return []

    def request_restart(self) -> None:
        """End this process, for systemd to start it again through deploy/doorstep-launch (a
        software update switched versions, or went back)."""
        self._restart_requested = True
        if self._stop is not None:
            self._stop.set()

    def update_health(self) -> list[str]:
        """What keeps a version on trial from being kept (edge_agent/updates/updater.py): the
        outbox opened and migrated (it has, when this runs), the broker, every configured device."""
        assert self.uplink is not None
        problems = [] if self.uplink.connected else [f"the broker {self.settings.broker.host}:"
                                                     f"{self.settings.broker.port} is not reachable"]
        problems += [f"device {d.address} has not answered" for d in self.settings.devices
                     if d.address not in self._last_seen_at]
        return problems

    def request_reload(self) -> None:
        self._reload_requested = True
        if self._stop is not None:
            self._stop.set()

    async def _expire_relay_visits(self) -> None:
        # A coroutine, so apscheduler runs it on this loop; the SQLite work goes to a thread.
        if self.relay is not None:
            await asyncio.to_thread(self.relay.expire)

    async def _prune(self) -> None:
        assert self.outbox is not None
        try:
            pruned = await asyncio.to_thread(self.outbox.prune)
        except Exception as error:
            if not self.conditions.failed("pruning the outbox", error):
                raise
            return
        self.conditions.succeeded("pruning the outbox")
        log.info("outbox pruned: %d delivered, %d expired, %d fingerprints", pruned.delivered, pruned.expired,
                 pruned.fingerprints)

    def _reader_for(self, device: DeviceSettings) -> DeviceReader:
        assert self.outbox is not None
        cursors = DeviceCursors(self.outbox.database)
        return reader_for(
            device,
            load_ble_profiles()[device.model],
            backend=self._backends.get(device.address),
            cursor=CursorStore(cursors.position, cursors.set_position),
            on_cuff_pressure=self._cuff_pressure,
            kiosk_time=lambda: datetime.now() if self.clock_watch.trusted else None,
            unlock_key=self.unlock_key,
        )

    async def _watch_device(self, settings: DeviceSettings, due: asyncio.Event) -> None:
        """One session each time the device's job says it is due (a session longer than the
        interval is followed by the next at once, never by two at the same time)."""
        reader = self._reader_for(settings)
        address = settings.address
        self._readers[address] = reader
        while True:
            await due.wait()
            due.clear()
            await self._session_with(reader)

    async def _session_with(self, reader: DeviceReader) -> None:
        """One session with a device: its readings saved, its failure counted, and the screen's
        desk told that a cuff's session is over (one that dropped mid-measurement says so)."""
        address = reader.device.address
        dropped = False
        try:
            readings = await reader.read()
        except BleDriverError as error:
            now = datetime.now(UTC)
            if not isinstance(error, DeviceNotFoundError):
                self._last_seen_at[address] = now  # it connected, then failed
            self.device_health.failed(address, error.code, str(error), now)
            # The link's fault, not the bytes' (drivers/ble/errors.py): the cuff is gone.
            dropped = isinstance(error, DeviceUnavailableError)
        except Exception:
            log.exception("reading %s failed unexpectedly; will try again", address)
        else:
            self._last_seen_at[address] = datetime.now(UTC)
            self.device_health.succeeded(address)
            await self._save_session(reader, readings)
        self.desk.cuff_session_over(address, dropped=dropped)

    async def _save_session(self, reader: DeviceReader, readings: Sequence[DeviceReading]) -> None:
        # The newest blood-pressure reading of a session (a cuff sends its memory oldest first)
        # is the one the resident at the screen has just taken: only it goes on the record the
        # desk names now, and only it is shown; older ones replayed with it stay anonymous, and
        # must not end her session before it (the newest went anonymous after an older one did).
        newest = max((i for i, r in enumerate(readings) if isinstance(r, BloodPressureMeasurement)), default=None)
        subject = self.desk.subject_now()
        try:
            for i, reading in enumerate(readings):
                await self.save_reading(reading, reader.device, subject=subject if i == newest else None,
                                        shown=i == newest)
        except Exception as error:
            # Not the device's fault (that is a DecodeError, handled in the driver): our bug, or
            # the disk (a storage limit is logged once per condition, with a count).
            if not self.conditions.failed(f"saving the readings of {reader.device.address}", error):
                log.exception("could not save the readings of %s", reader.device.address)
        else:
            self.conditions.succeeded(f"saving the readings of {reader.device.address}")
            reader.saved()

    def _cuff_pressure(self, device: DeviceIdentity, pressure: float | None) -> None:
        self.desk.cuff_pressure(device.address, pressure)
        if self._on_cuff_pressure is not None:
            self._on_cuff_pressure(device, pressure)

    async def save_reading(
        self, reading: DeviceReading, device: DeviceIdentity, *, subject: str | None = None, shown: bool = True
    ) -> SavedRecord | None:
        """Commit the reading durably; only then is it reported saved. None: saved before (a replay).
        `subject`: the resident's pseudonym; None: anonymous. `shown`: a blood-pressure reading
        goes to the screen's desk as the result of the measurement at hand."""
        assert self.outbox is not None and self.alarms is not None
        wire = outgoing(reading)
        payload = wire.payload if subject is None else wire.payload.model_copy(update={"subject": subject})
        try:
            with self.alarms.saving():  # a failure is an alarm (cannot_save), sent ahead of any backlog
                saved = await asyncio.to_thread(
                    self.outbox.save,
                    self.topics.reading(wire.kind),
                    payload,
                    device=device,
                    device_time=wire.device_time,
                    fingerprint=fingerprint(device, wire),
                )
        finally:
            await self._check_alarms()
        if saved is None:
            log.info("%s replayed a reading saved before (%s); not saved again", device.address, wire.device_time)
            return None
        self._wakeup.set()  # the uplink first: the screen and the log do not hold the reading back
        log.info("saved %s from %s (seq %d)%s", wire.kind, device.address, saved.seq,
                 f", suspect: {', '.join(wire.payload.suspect)}" if wire.payload.suspect else "")
        self._last_reading_at[device.address] = datetime.now(UTC)
        if self._on_saved is not None:
            self._on_saved(saved, reading)
        if shown and isinstance(reading, BloodPressureMeasurement):
            self.desk.reading_saved(saved.seq, reading, subject)  # committed: the screen may say "saved"
        return saved


async def _set_when(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()
