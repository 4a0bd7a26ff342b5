"""`doorstep doctor`: is this kiosk able to do its job? One line per check, in plain words.

It runs beside the agent (another process) and changes nothing: it reads the configuration,
the outbox (read-only), the agent's status file, and tries the broker with a client id of its
own. A failure is something the kiosk cannot do now; a warning is something to look at.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import serial  # type: ignore[import-untyped]

from broker_admin.check import check_broker
from contract.telemetry import RUNWAY_SHORT_H
from edge_agent.clock import kernel_clock_synchronised
from edge_agent.laundry import SIMULATED_PORT
from edge_agent.settings import AgentSettings
from edge_agent.status_file import AgentStatus, JobState, read_status, status_path
from edge_agent.store.integrity import database_files, integrity_problem
from edge_agent.store.outbox import SAVE_NEEDS_BYTES, RecordClass


class Verdict(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    verdict: Verdict
    detail: str

    def as_json(self) -> dict[str, str]:
        """`doorstep doctor --json`'s form of it, one object per check (support bundles hold it too)."""
        return {"check": self.name, "verdict": self.verdict.value, "detail": self.detail}


def examine(settings: AgentSettings, *, now: datetime | None = None, broker: Check | None = None) -> list[Check]:
    """Every check; `broker` stands for the broker's when the agent itself asks (a support
    bundle): a second connection with its identity would take its own session over
    (broker_admin/check.py)."""
    now = now or datetime.now(UTC)
    return [
        *_bluetooth(settings),
        *_serial_port(settings),
        broker or _broker(settings),
        _clock(),
        _disk(settings),
        *_outbox(settings, now),
        *_agent(settings, now),
    ]


def _bluetooth(settings: AgentSettings) -> Iterator[Check]:
    real = [d.address for d in settings.devices if not d.simulated]
    if not real:
        yield Check("bluetooth", Verdict.SKIPPED, "no Bluetooth devices configured (or only simulated ones)")
        return
    try:
        adapters = asyncio.run(_bluez_adapters())
    except Exception as error:  # noqa: BLE001 - no system bus, no BlueZ: say so, whatever the cause
        yield Check("bluetooth", Verdict.FAILED, f"cannot ask BlueZ over D-Bus ({error}): is bluetoothd running?")
        return
    if not adapters:
        yield Check("bluetooth", Verdict.FAILED, "no Bluetooth adapter found")
        return
    powered = [name for name, on in adapters.items() if on]
    if not powered:
        yield Check("bluetooth", Verdict.FAILED, f"adapter {', '.join(adapters)} is off: bluetoothctl power on")
        return
    yield Check("bluetooth", Verdict.OK, f"adapter {', '.join(powered)} powered, for {len(real)} device(s)")


async def _bluez_adapters() -> dict[str, bool]:
    """Adapter name -> Powered, from BlueZ's object manager (dbus-fast comes with bleak)."""
    from dbus_fast import BusType, Message
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
    finally:
        bus.disconnect()
    if reply is None or reply.body is None or not reply.body:
        raise RuntimeError("BlueZ did not answer")
    adapters = {}
    for path, interfaces in reply.body[0].items():
        adapter = interfaces.get("org.bluez.Adapter1")
        if adapter is not None:
            adapters[path.rsplit("/", 1)[-1]] = bool(adapter["Powered"].value)
    return adapters


def _serial_port(settings: AgentSettings) -> Iterator[Check]:
    laundry = settings.laundry
    if laundry is None:
        return
    if laundry.port == SIMULATED_PORT:
        yield Check("serial port", Verdict.SKIPPED, "the laundry room is simulated")
        return
    # Exclusive, as the laundry bus opens it (drivers/laundry/bus.py): a port the running agent
    # owns is found in use, and is not reconfigured under the agent's feet.
    try:
        with serial.Serial(laundry.port, baudrate=laundry.baudrate, timeout=0, exclusive=True):
            pass
    except serial.SerialException as error:
        if "exclusively lock" in str(error):
            yield Check("serial port", Verdict.OK, f"{laundry.port} is there and in use (by the running agent, or "
                        "another program holding it: see `fuser`)")
            return
        yield Check("serial port", Verdict.FAILED, f"{laundry.port}: {error} (is the adapter plugged in? in group dialout?)")
        return
    yield Check("serial port", Verdict.OK, f"{laundry.port} opens at {laundry.baudrate} bit/s")


def _broker(settings: AgentSettings) -> Check:
    result = check_broker(settings.broker, f"doorstep-doctor-{settings.site}-{settings.kiosk}")
    return Check("broker", Verdict.OK if result.ok else Verdict.FAILED, result.detail)


def _clock() -> Check:
    synchronised = kernel_clock_synchronised()
    if synchronised is None:
        return Check("clock", Verdict.SKIPPED, "cannot ask the kernel (not Linux)")
    if not synchronised:
        return Check("clock", Verdict.WARNING, "not synchronised: records are marked untrusted (timedatectl; is NTP reachable?)")
    return Check("clock", Verdict.OK, "synchronised")


def _disk(settings: AgentSettings) -> Check:
    directory = settings.outbox_path.parent
    try:
        free = shutil.disk_usage(directory).free
    except OSError as error:
        return Check("disk", Verdict.FAILED, f"{directory}: {error.strerror}")
    budget = int(settings.outbox.budget_mb * 1024 * 1024)
    mb = free / 1024 / 1024
    if free < SAVE_NEEDS_BYTES:
        return Check("disk", Verdict.FAILED, f"{free} bytes free in {directory}, less than one save needs "
                     f"({SAVE_NEEDS_BYTES}): the kiosk cannot save a reading; free some space")
    if free < budget:
        return Check("disk", Verdict.WARNING, f"{mb:.0f} MB free, less than the outbox budget of {settings.outbox.budget_mb:g} MB")
    return Check("disk", Verdict.OK, f"{mb:.0f} MB free; outbox budget {settings.outbox.budget_mb:g} MB")


def _outbox(settings: AgentSettings, now: datetime) -> Iterator[Check]:
    path = settings.outbox_path
    # Before the check for corruption, which cannot open a read-only file in WAL mode. A
    # directory not there yet is made by the agent.
    unwritable = _unwritable(path) if path.parent.exists() else None
    if unwritable is not None:
        yield Check("outbox", Verdict.FAILED, f"the kiosk cannot save: {unwritable}")
        return
    if not path.exists():
        yield Check("outbox", Verdict.WARNING, f"{path} does not exist yet (the agent creates it)")
        return
    problem = integrity_problem(path)
    if problem is not None:
        yield Check("outbox", Verdict.FAILED, f"{path} is corrupt ({problem}); the agent will set it aside at start")
        return
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        # SQLAlchemy keeps an Enum member's name ('PENDING'), not its value.
        rows = connection.execute(
            "SELECT record_class, COUNT(*), MIN(created_at), SUM(size) FROM outbox "
            "WHERE state IN ('PENDING', 'PUBLISHED') GROUP BY record_class"
        ).fetchall()
        columns = {row[1] for row in connection.execute("PRAGMA table_info(outbox)")}
        refused = (
            connection.execute(
                "SELECT COUNT(*), MAX(seq), (SELECT refusal FROM outbox WHERE state = 'REFUSED' ORDER BY seq DESC LIMIT 1) "
                "FROM outbox WHERE state = 'REFUSED'"
            ).fetchone()
            if "refusal" in columns
            else (0, None, None)
        )
    budget = settings.outbox.limits().budget_bytes  # the records' share of the disk budget
    used = sum(file.stat().st_blocks * 512 for file in database_files(path) if file.exists())
    parts = []
    for record_class, count, oldest, _size in sorted(rows):
        age = (now - datetime.fromisoformat(oldest).replace(tzinfo=UTC)).total_seconds()
        parts.append(f"{RecordClass(record_class).name.lower()} {count} (oldest {age / 3600:.1f} h)")
    detail = f"{used / 1024 / 1024:.1f} of {settings.outbox.budget_mb:g} MB; undelivered: {', '.join(parts) or 'none'}"
    health_bytes = sum(size for c, _n, _o, size in rows if c == RecordClass.HEALTH)
    if health_bytes > budget:  # the alarm of docs/outbox.md: kept, never dropped
        detail = f"HEALTH READINGS OVER THE BUDGET, kept, nothing else left to evict: {detail}"
    health_waiting = any(c == RecordClass.HEALTH and n > 0 for c, n, *_ in rows)
    over = used > settings.outbox.budget_mb * 1024 * 1024 or health_bytes > budget
    verdict = Verdict.WARNING if over or health_waiting else Verdict.OK
    yield Check("outbox", verdict, detail)
    if refused[0]:
        yield Check("outbox refused", Verdict.WARNING,
                    f"the bridge refused {refused[0]} record(s) as breaking the contract (kept, not sent again; "
                    f"a bug to report); the latest, seq {refused[1]}: {refused[2]}")
    # Files set aside at start as corrupt (edge_agent/store/integrity.py): maybe recoverable.
    aside = sorted(p.name for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith(("-wal", "-shm")))
    if aside:
        yield Check("outbox set aside", Verdict.WARNING,
                    f"{len(aside)} corrupt outbox file(s) set aside in {path.parent}: {', '.join(aside)}; "
                    "recover what you can by hand (sqlite3 .recover), then remove them")


def _unwritable(path: Path) -> str | None:
    """Why the agent (as this user) cannot write the outbox, or None. SQLite needs the file and
    its companions writable, and the directory too, to create the WAL and shared-memory files:
    a read-only filesystem or a file owned by another user leaves the kiosk unable to save."""
    for file in database_files(path):
        if file.exists() and not os.access(file, os.W_OK):
            return f"{file} is read-only ({_why_read_only(file)})"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"its directory {path.parent} is read-only ({_why_read_only(path.parent)})"
    return None


def _why_read_only(file: Path) -> str:
    if os.statvfs(file).f_flag & os.ST_RDONLY:
        return "the filesystem is mounted read-only"
    stat = file.stat()
    return f"owner uid {stat.st_uid}, mode {stat.st_mode & 0o777:o}; this is uid {os.geteuid()}: run doctor as the agent's user"


def _agent(settings: AgentSettings, now: datetime) -> Iterator[Check]:
    status = read_status(status_path(settings.outbox_path))
    if status is None:
        yield Check("agent", Verdict.WARNING, "no status file: the agent has not run here yet")
        return
    age = (now - status.written_at).total_seconds()
    alive = _process_alive(status.pid)
    if not alive or age > 3 * status.telemetry_every_s + 10:
        yield Check("agent", Verdict.FAILED, f"not running (pid {status.pid}; last sign of life {age:.0f} s ago)")
        return
    uplink = "connected to the broker" if status.uplink_connected else "NOT connected to the broker"
    yield Check("agent", Verdict.OK if status.uplink_connected else Verdict.WARNING, f"pid {status.pid}, {uplink}")
    yield _runway(status)
    for job in sorted(status.jobs, key=lambda j: j.id):
        yield _job(job, status.written_at)


def _runway(status: AgentStatus) -> Check:
    """The outbox's runway as the agent last measured it (docs/outbox.md, "Runway")."""
    growth, hours = status.outbox_growth_bytes_per_h, status.outbox_runway_h
    if growth is None:
        return Check("outbox runway", Verdict.OK, "not measured yet (a tenth of outbox.runway_window_s after the start)")
    rate = f"{growth / 1024 / 1024:+.2f} MB an hour"
    if hours is None:
        return Check("outbox runway", Verdict.OK, f"undelivered records not growing ({rate})")
    if hours < RUNWAY_SHORT_H:
        return Check("outbox runway", Verdict.WARNING,
                     f"{hours:.1f} h until the undelivered records fill the budget ({rate}); then the oldest events "
                     "and telemetry are evicted: the bridge is not confirming them (check the network, the broker "
                     "and the bridge), or raise outbox.budget_mb")
    return Check("outbox runway", Verdict.OK, f"{hours:.0f} h until the undelivered records fill the budget ({rate})")


def _job(job: JobState, written_at: datetime) -> Check:
    """A job is fine when it is scheduled and its last run (as of the status file) went well."""
    when = job.next_run_time.astimezone(UTC).strftime("%H:%M:%S UTC") if job.next_run_time else "none (paused)"
    if job.last_run_at is None:
        last = "not run yet"
    else:
        ago = max(0.0, (written_at - job.last_run_at).total_seconds())
        last = f"last run {ago:.0f} s before the status was written: {job.last_outcome}"
        if job.last_outcome == "failed":
            last += f" ({job.last_error})"
    counts = f"; {job.runs} run(s), {job.failures} failed" if job.runs else ""
    healthy = job.next_run_time is not None and job.last_outcome != "failed"
    return Check(f"job {job.id}", Verdict.OK if healthy else Verdict.WARNING, f"{last}{counts}; next run {when}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.verdict is Verdict.FAILED for c in checks) else 0


