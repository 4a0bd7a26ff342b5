"""What the bridge knows of each kiosk and device now, folded from what they send.

Kiosk and device rows are state derived from messages, never the messages themselves (those are
in cloud_bridge/store.py). Messages arrive out of order (re-sends, several workers, a backlog
drained health readings first), so every field is written only by a report newer than the one
that wrote it before: each group of fields keeps the kiosk time of its source.

A kiosk's time orders its reports only up to KIOSK_TIME_AHEAD_ALLOWED ahead of the bridge's
clock (a Pi with no real-time clock, a bad NTP answer, a rogue kiosk can be further): past that
"horizon" a time is news when it arrives and old news after — it replaces what is there, and
anything that comes after replaces it, however the kiosk dates that (supersedes) — and the
kiosk's row records when one came (clock_ahead_at). A report dated 8999 used to win every
comparison after it: the kiosk's telemetry and its devices' rows ignored every later report
(issue 16, finding 7); a row an older bridge froze so is released by the next report too. Every
kiosk-time comparison of the fleet follows this one rule, in Python (supersedes) and in SQL
(_supersedes_sql): telemetry, device identity, link and state, and last_reading_at (from
readings and from telemetry). Statuses, last_seen_at and the gap scan are ordered by the
bridge's own clock.

Within one batch the rows of a kiosk are first "touched" (inserted if new) in a fixed order,
which takes PostgreSQL's row locks and SQLite's write lock before anything is read: two workers
folding reports of the same kiosk wait for each other instead of interleaving.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import JSON, BigInteger, ColumnElement, Row, bindparam, case, func, or_, update
from sqlmodel import Field, Session, SQLModel, col, select

from contract.envelope import UpstreamMessage
from contract.payloads import LaundryMachineEvent
from contract.status import KioskState, Status
from contract.telemetry import DeviceTelemetry, KioskTelemetry
from contract.topics import Channel, EventType

from cloud_bridge.store import BulkInsert, bulk_insert, json_column, json_parameters, table_of


# How far ahead of the bridge's clock a kiosk's time may be and still order its reports: a day
# covers any honest clock error and time zone mistake; further is a broken clock.
KIOSK_TIME_AHEAD_ALLOWED: Final = timedelta(days=1)


def horizon_of(received_at: datetime) -> datetime:
    """The latest kiosk time that orders reports received at `received_at` (the bridge's clock).
    Behind is not bounded: a backlog legitimately arrives days late."""
    return received_at + KIOSK_TIME_AHEAD_ALLOWED


def supersedes(new: datetime, old: datetime | None, horizon: datetime, *, ties: bool = True) -> bool:
    """Whether a kiosk's report dated `new` replaces state its report dated `old` wrote: when
    it is newer (or as new, with `ties`) — but a time past `horizon` is news on arrival and old
    news after: it replaces what is there, and whatever comes after replaces it."""
    if old is None or old > horizon or new > horizon:
        return True
    return new >= old if ties else new > old


def _supersedes_sql(old: Any, new: Any, horizon: Any) -> ColumnElement[bool]:
    """supersedes() (with ties) in SQL, for the device upserts."""
    return or_(old.is_(None), old > horizon, new > horizon, old <= new)


# A device's link time (link_at) moves on in its row only when its link fields change, or once
# the report is this much newer than the row: most telemetry only says "still the same", and
# rewriting every device of every kiosk for it was about 1,800 row versions per 1,000 messages
# of the fleet's mix. The alerts that read the link group (device_unreachable after 24 h by
# default) are computed from each report as before; only the stored time is this coarse.
LINK_AT_STEP: Final = timedelta(minutes=10)


# A kiosk's status column holds a KioskState's value ("online", "offline") once its retained
# status came; before that, this.
NO_STATUS_YET: Final = "unknown"


class KioskBase(SQLModel):
    """A kiosk's fleet state, its columns once: the table (Kiosk), the API's shape (KioskPublic)
    and the rows a batch folds and the alert rules read are all this."""

    site: str = Field(primary_key=True, max_length=32)
    kiosk: str = Field(primary_key=True, max_length=32)
    status: str = Field(default=NO_STATUS_YET, max_length=16)
    status_reason: str | None = Field(default=None, max_length=200)
    status_at: datetime | None = Field(default=None, description="when the bridge received the status")
    first_seen_at: datetime
    last_seen_at: datetime = Field(description="when the bridge last received anything from the kiosk")
    last_seq: int = Field(default=0, description="the highest sequence number received")
    seq_checked_through: int = Field(
        default=0, description="every sequence number up to here is accounted for (stored or flagged as a gap)"
    )
    clock_trusted: bool | None = Field(default=None, description="in the kiosk's newest message")
    clock_ahead_at: datetime | None = Field(
        default=None, description="when the bridge last received a message from this kiosk dated more than a day "
        "ahead of the bridge's clock: the kiosk's clock is wrong (such a time orders as its arrival)")
    telemetry_at: datetime | None = Field(default=None, description="kiosk time of the newest telemetry folded in")
    uptime_s: float | None = None
    backlog_records: int | None = Field(default=None, description="undelivered health and event records")
    backlog_oldest_age_s: float | None = None
    backlog_rising: int = Field(default=0, description="consecutive fresh reports with a growing backlog")
    # Byte counts pass 2**31 on any SD card: PostgreSQL's integer would overflow.
    outbox_bytes: int | None = Field(default=None, sa_type=BigInteger)
    outbox_budget_bytes: int | None = Field(default=None, sa_type=BigInteger)
    health_over_budget: bool = False
    # The buffer in sight (issue 19), from telemetry; null until a kiosk that reports them does.
    outbox_depth: dict[str, dict[str, int | float | None]] | None = Field(
        default=None, sa_type=JSON,
        description="undelivered records per class (health, event, telemetry): {records, oldest_age_s}")
    outbox_growth_bytes_per_h: float | None = Field(
        default=None, description="growth of the kiosk's undelivered bytes over its last window, per hour")
    runway_h: float | None = Field(
        default=None, description="hours until its undelivered records fill its budget at that growth; null: "
        "not growing (unbounded), not measured yet, or an older kiosk")
    disk_free_bytes: int | None = Field(default=None, sa_type=BigInteger)
    cpu_temperature_c: float | None = None
    # The configuration the kiosk says it runs (its telemetry's `config`, contract/desired.py).
    config_version: int | None = Field(default=None, description="the desired version it runs; 0: its own file alone")
    config_tried_version: int | None = Field(default=None, description="the newest desired version it acted on")
    config_outcome: str | None = Field(default=None, max_length=16, description="applied, refused or rolled_back")
    config_reason: str | None = Field(default=None, max_length=2000, description="why it was refused or rolled back")
    # The software the kiosk says it runs, and the newest update it tried (its telemetry's
    # `software`, contract/software.py); rollouts advance from these (cloud_bridge/rollouts.py).
    software_version: str | None = Field(default=None, max_length=48, description="the Doorstep version it runs")
    software_previous_version: str | None = Field(default=None, max_length=48, description="the one it would roll back to")
    update_version: str | None = Field(default=None, max_length=48, description="the newest update it tried")
    update_state: str | None = Field(default=None, max_length=16, description="an UpdateState: where that update stands")
    update_reason: str | None = Field(default=None, max_length=2000, description="why it was refused, failed, rolled back or deferred")
    update_rollout_id: int | None = Field(default=None, sa_type=BigInteger, description="the rollout that asked for it")
    update_at: datetime | None = Field(default=None, description="the kiosk's time of that state")


class Kiosk(KioskBase, table=True):
    __tablename__ = "kiosks"

    # Not in KioskBase: the workers' bookkeeping (DeviceRows), not the kiosk's state.
    devices_version: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"},
                                 description="moved on by every gulp that touches the kiosk")


class DeviceBase(SQLModel):
    site: str = Field(primary_key=True, max_length=32)
    kiosk: str = Field(primary_key=True, max_length=32)
    address: str = Field(primary_key=True, max_length=64, description="BLE address, or modbus-unit-{n}")
    model: str | None = Field(default=None, max_length=64)
    firmware: str | None = Field(default=None, max_length=64)
    identity_at: datetime | None = Field(default=None, description="kiosk time of the newest model/firmware")
    link: str | None = Field(default=None, max_length=16)
    battery_percent: int | None = None
    last_seen_at: datetime | None = Field(default=None, description="the device's last connection, as the kiosk saw it")
    clock_offset_s: float | None = None
    # What the kiosk's telemetry says of the device's failures (contract/device_errors.py);
    # the link group, written with link_at.
    last_error_code: str | None = Field(default=None, max_length=48, description="a DeviceErrorCode, e.g. ble_bond_lost")
    last_error_at: datetime | None = Field(default=None, description="kiosk time of that failure")
    last_error_message: str | None = Field(default=None, max_length=500)
    failing_since: datetime | None = Field(
        default=None, description="kiosk time of the first failure after its last successful session; null once one succeeds")
    error_counts: dict[str, int] | None = Field(default=None, sa_type=JSON, description="failures per code since then")
    link_at: datetime | None = Field(
        default=None, description="kiosk time of the link/battery/error report that wrote them: a report that changes "
        "nothing moves it on only once it is 10 minutes newer (LINK_AT_STEP)")
    state: str | None = Field(default=None, max_length=16, description="a laundry machine's state")
    error_code: int | None = None
    error_text: dict[str, str] | None = Field(default=None, sa_type=JSON)
    state_at: datetime | None = Field(default=None, description="kiosk time of the newest state report")
    last_reading_at: datetime | None = Field(default=None, description="kiosk time of the newest reading")


class Device(DeviceBase, table=True):
    __tablename__ = "devices"


# --- What a batch says about kiosks and devices ---------------------------------------------


@dataclass(slots=True)
class _Fields:
    """Values of one group of fields and the kiosk time they were reported at."""

    at: datetime
    # A device of a telemetry report stays as it came until its columns are asked for: of a
    # gulp's telemetry, most lose to a newer report of the same kiosk.
    given: dict[str, Any] | DeviceTelemetry
    _columns: dict[str, Any] | None = None

    @property
    def values(self) -> dict[str, Any]:
        if isinstance(self.given, dict):
            return self.given
        if self._columns is None:
            self._columns = _link_columns(self.given)
        return self._columns


@dataclass(slots=True)
class DeviceReport:
    site: str
    kiosk: str
    address: str
    identity: _Fields | None = None
    link: _Fields | None = None
    state: _Fields | None = None
    last_reading_at: datetime | None = None
    # The model a telemetry report names: only fills a row that has none. A reading's identity
    # (model and firmware) is the device's own word; telemetry's must not outdate it.
    model_hint: str | None = None

    def merge(self, group: str, at: datetime, values: dict[str, Any] | DeviceTelemetry, horizon: datetime) -> None:
        current: _Fields | None = getattr(self, group)
        if current is None or supersedes(at, current.at, horizon):
            setattr(self, group, _Fields(at, values))

    def reading_at(self, at: datetime, horizon: datetime) -> None:
        """A reading was taken at `at`: last_reading_at only moves forward (as supersedes says)."""
        if self.last_reading_at is None or supersedes(at, self.last_reading_at, horizon):
            self.last_reading_at = at


@dataclass(slots=True)
class KioskReport:
    site: str
    kiosk: str
    last_seen_at: datetime
    last_seq: int = 0
    newest_seq_clock_trusted: tuple[int, bool] | None = None
    clock_ahead_at: datetime | None = None  # a message of the batch was dated past the horizon
    telemetry: tuple[datetime, KioskTelemetry] | None = None  # the newest in the batch
    status: tuple[datetime, Status] | None = None
    devices: dict[str, DeviceReport] = field(default_factory=dict)

    @property
    def horizon(self) -> datetime:
        return horizon_of(self.last_seen_at)  # last_seen_at is the batch's arrival

    def device(self, address: str) -> DeviceReport:
        if address not in self.devices:
            self.devices[address] = DeviceReport(self.site, self.kiosk, address)
        return self.devices[address]


def fold(messages: Iterable[UpstreamMessage], statuses: Iterable[tuple[str, str, Status]], received_at: datetime) -> list[KioskReport]:
    """What a batch says about each kiosk and its devices, newest report per field group."""
    reports: dict[tuple[str, str], KioskReport] = {}

    def report(site: str, kiosk: str) -> KioskReport:
        key = (site, kiosk)
        if key not in reports:
            reports[key] = KioskReport(site, kiosk, last_seen_at=received_at)
        return reports[key]

    for message in messages:
        envelope = message.envelope
        kiosk = report(message.topic.site, message.topic.kiosk)
        kiosk.last_seq = max(kiosk.last_seq, envelope.seq)
        if kiosk.newest_seq_clock_trusted is None or envelope.seq > kiosk.newest_seq_clock_trusted[0]:
            kiosk.newest_seq_clock_trusted = (envelope.seq, envelope.kiosk_clock_trusted)
        at = envelope.kiosk_time
        horizon = kiosk.horizon
        if at > horizon:
            kiosk.clock_ahead_at = received_at
        if envelope.device is not None:
            device = kiosk.device(envelope.device.address)
            device.merge("identity", at, {"model": envelope.device.model, "firmware": envelope.device.firmware}, horizon)
        channel = message.topic.channel
        if channel is Channel.READINGS and envelope.device is not None:
            kiosk.device(envelope.device.address).reading_at(at, horizon)
        elif channel is Channel.EVENTS and message.topic.name == EventType.LAUNDRY_MACHINE:
            event = message.payload
            assert isinstance(event, LaundryMachineEvent)
            address = envelope.device.address if envelope.device else f"modbus-unit-{event.unit}"
            device = kiosk.device(address)
            device.merge("state", at, {"state": event.state, "error_code": event.error_code, "error_text": event.error_text},
                         horizon)
            device.merge("link", at, {"link": event.link}, horizon)
        elif channel is Channel.TELEMETRY:
            telemetry = message.payload
            assert isinstance(telemetry, KioskTelemetry)
            if kiosk.telemetry is None or supersedes(at, kiosk.telemetry[0], horizon, ties=False):
                kiosk.telemetry = (at, telemetry)
            for reported in telemetry.devices:
                device = kiosk.device(reported.address)
                device.model_hint = reported.model
                device.merge("link", at, reported, horizon)
                if reported.last_reading_at is not None:  # the kiosk's clock too
                    device.reading_at(reported.last_reading_at, horizon)
    for site, kiosk_id, status in statuses:
        kiosk = report(site, kiosk_id)
        kiosk.status = (received_at, status)
    return sorted(reports.values(), key=lambda r: (r.site, r.kiosk))


def _link_columns(reported: DeviceTelemetry) -> dict[str, Any]:
    """A device's columns of the link group from its telemetry. An older kiosk's telemetry has
    no error fields: they read as no failure reported (their defaults)."""
    error = reported.last_error
    return {
        "link": reported.link,
        "battery_percent": reported.battery_percent,
        "last_seen_at": reported.last_seen_at,
        "clock_offset_s": reported.clock_offset_s,
        "last_error_code": None if error is None else error.code,
        "last_error_at": None if error is None else error.at,
        "last_error_message": None if error is None else error.message,
        "failing_since": reported.failing_since,
        "error_counts": dict(reported.error_counts),
    }


# --- Writing it ---------------------------------------------------------------------------


def _greatest(session: Session, a: Any, b: Any) -> ColumnElement[Any]:
    # SQLite's two-argument max() is PostgreSQL's greatest(). SQLite's max() is NULL if
    # either is, so a column never written yet is coalesced with the new value first.
    if session.get_bind().dialect.name == "postgresql":
        return func.greatest(func.coalesce(a, b), b)
    return func.max(func.coalesce(a, b), b)


def status_reason(status: Status) -> str:
    if status.state is KioskState.ONLINE:
        return "connected"
    # The agent sets at on a clean stop; the Last Will was written before it had a time to give.
    return "stopped cleanly" if status.at is not None else "connection lost (Last Will)"


# A batch reads and folds kiosks' rows as plain KioskBase models built without validation from
# what the database returned, never as Kiosk ORM objects: building, copying and flushing a Kiosk
# per kiosk was a fifth of a batch's CPU.
_KIOSK_COLUMNS = tuple(KioskBase.model_fields)
SOFTWARE_COLUMNS = ("software_version", "software_previous_version", "update_version", "update_state", "update_reason",
                    "update_rollout_id", "update_at")
# What folding a batch into a kiosk's row may change (the touch wrote last_seen_at, last_seq;
# seq_checked_through is the gap scan's).
_FOLDED = ("clock_trusted", "clock_ahead_at", "status", "status_reason", "status_at", "telemetry_at", "uptime_s", "backlog_records",
           "backlog_oldest_age_s", "backlog_rising", "outbox_bytes", "outbox_budget_bytes", "health_over_budget",
           "outbox_depth", "outbox_growth_bytes_per_h", "runway_h", "disk_free_bytes", "cpu_temperature_c",
           "config_version", "config_tried_version", "config_outcome", "config_reason", *SOFTWARE_COLUMNS)
_TOUCH_COLUMNS = ("site", "kiosk", "status", "first_seen_at", "last_seen_at", "last_seq", "seq_checked_through",
                  "backlog_rising", "health_over_budget", "devices_version")


@dataclass(slots=True)
class TouchedKiosks:
    """The gulp's kiosks as touch_kiosks left them (locked), and each one's devices_version now."""

    rows: dict[tuple[str, str], KioskBase]
    versions: dict[tuple[str, str], int]


def touch_kiosks(session: Session, reports: Sequence[KioskReport]) -> TouchedKiosks:
    """Insert unseen kiosks; advance last seen, the highest sequence number and the devices'
    version. One statement for the batch, in the reports' order (workers lock rows alike), which
    locks the rows for the transaction (PostgreSQL: as FOR UPDATE would) and returns them as they
    are now."""
    if not reports:
        return TouchedKiosks({}, {})
    table = table_of(Kiosk)

    def finish(statement: Any) -> Any:
        excluded = statement.excluded
        return statement.on_conflict_do_update(index_elements=["site", "kiosk"], set_={
            "last_seen_at": _greatest(session, table.c.last_seen_at, excluded.last_seen_at),
            "last_seq": _greatest(session, table.c.last_seq, excluded.last_seq),
            "devices_version": table.c.devices_version + 1,
        }).returning(*[table.c[name] for name in (*_KIOSK_COLUMNS, "devices_version")])

    touch = bulk_insert(session, "kiosks:touch", Kiosk, _TOUCH_COLUMNS, finish)
    rows = touch.execute(session, [
        {
            "site": report.site,
            "kiosk": report.kiosk,
            "status": NO_STATUS_YET,
            "first_seen_at": report.last_seen_at,
            "last_seen_at": report.last_seen_at,
            "last_seq": report.last_seq,
            "seq_checked_through": 0,
            "backlog_rising": 0,
            "health_over_budget": False,
            # A new row starts anywhere, so that a kiosk retired (its rows deleted) and seen
            # again never matches what a worker remembers of it (DeviceRows).
            "devices_version": random.getrandbits(62),
        }
        for report in reports
    ])
    touched = TouchedKiosks({}, {})
    for row in rows:
        columns = dict(row._mapping)
        version = columns.pop("devices_version")
        kiosk = KioskBase.model_construct(**columns)  # the database's own values: nothing to validate
        touched.rows[(kiosk.site, kiosk.kiosk)] = kiosk
        touched.versions[(kiosk.site, kiosk.kiosk)] = version
    return touched


def apply_kiosk_reports(session: Session, reports: Sequence[KioskReport],
                        rows: dict[tuple[str, str], KioskBase]) -> list[tuple[KioskBase, KioskReport, KioskBase]]:
    """Fold the reports into the kiosks' rows (touched, so locked: `rows` is what touch_kiosks
    returned), in one executemany UPDATE; returns (before, report, after) for each kiosk, for
    the alert rules."""
    changed = []
    updates = []
    for report in reports:
        before = rows.get((report.site, report.kiosk))
        assert before is not None, "touch_kiosks first"
        folded: dict[str, Any] = {}
        if report.newest_seq_clock_trusted is not None and report.newest_seq_clock_trusted[0] >= before.last_seq:
            folded["clock_trusted"] = report.newest_seq_clock_trusted[1]
        if report.clock_ahead_at is not None:
            folded["clock_ahead_at"] = report.clock_ahead_at
        if report.status is not None:
            at, status = report.status
            if before.status_at is None or at >= before.status_at:
                folded |= {"status": status.state.value, "status_reason": status_reason(status), "status_at": at}
        if report.telemetry is not None:
            at, telemetry = report.telemetry
            if supersedes(at, before.telemetry_at, report.horizon, ties=False):
                folded |= _telemetry_columns(before, at, telemetry)
        # A copy with the new values, not assignments: SQLModel's __setattr__ costs ~2 µs a
        # field (30 µs for a kiosk's telemetry, measured), the copy ~3 µs in all.
        after = before.model_copy(update=folded) if folded else before
        if any(getattr(before, name) != value for name, value in folded.items()):
            updates.append({"key_site": after.site, "key_kiosk": after.kiosk} | {name: getattr(after, name) for name in _FOLDED})
        changed.append((before, report, after))
    if updates:
        if session.get_bind().dialect.name == "postgresql":
            session.connection().execute(_KIOSK_UPDATE_FROM_JSON, json_parameters(_KIOSK_UPDATE_COLUMNS, updates))
        else:
            session.connection().execute(_KIOSK_UPDATE, updates)
    return changed


_KIOSKS = table_of(Kiosk)
_KIOSK_UPDATE = (
    update(_KIOSKS)
    .where(_KIOSKS.c.site == bindparam("key_site"), _KIOSKS.c.kiosk == bindparam("key_kiosk"))
    .values({name: bindparam(name) for name in _FOLDED})
)
# On PostgreSQL one UPDATE … FROM the rows as JSON arrays (as BulkInsert does), not an
# executemany: psycopg pipelines that as a statement per kiosk, ~40 µs of CPU each.
_KIOSK_UPDATE_COLUMNS = ("key_site", "key_kiosk", *_FOLDED)
_FOLDED_ROWS = select(
    json_column("key_site", _KIOSKS.c.site.type).label("key_site"),
    json_column("key_kiosk", _KIOSKS.c.kiosk.type).label("key_kiosk"),
    *[json_column(name, _KIOSKS.c[name].type).label(name) for name in _FOLDED],
).subquery("folded")
_KIOSK_UPDATE_FROM_JSON = (
    update(_KIOSKS)
    .where(_KIOSKS.c.site == _FOLDED_ROWS.c.key_site, _KIOSKS.c.kiosk == _FOLDED_ROWS.c.key_kiosk)
    .values({name: _FOLDED_ROWS.c[name] for name in _FOLDED})
)


def _telemetry_columns(row: KioskBase, at: datetime, telemetry: KioskTelemetry) -> dict[str, Any]:
    """The columns a kiosk's telemetry (newer than what `row` holds) sets."""
    backlog = sum(depth.records for name, depth in telemetry.outbox.items() if name != "telemetry")
    oldest = [d.oldest_age_s for n, d in telemetry.outbox.items() if n != "telemetry" and d.oldest_age_s is not None]
    previous = row.backlog_records
    return {
        "backlog_rising": row.backlog_rising + 1 if previous is not None and backlog > previous else 0,
        "backlog_records": backlog,
        "backlog_oldest_age_s": max(oldest) if oldest else None,
        "telemetry_at": at,
        "uptime_s": telemetry.uptime_s,
        "outbox_bytes": telemetry.outbox_bytes,
        "outbox_budget_bytes": telemetry.outbox_budget_bytes,
        "health_over_budget": telemetry.health_over_budget,
        "outbox_depth": {name: depth.model_dump() for name, depth in telemetry.outbox.items()},
        # An older kiosk's telemetry has neither: they read as not measured.
        "outbox_growth_bytes_per_h": telemetry.outbox_growth_bytes_per_h,
        "runway_h": telemetry.runway_h,
        "disk_free_bytes": telemetry.disk_free_bytes,
        "cpu_temperature_c": telemetry.cpu_temperature_c,
        **_config_columns(telemetry),
        **_software_columns(telemetry),
    }


def _config_columns(telemetry: KioskTelemetry) -> dict[str, Any]:
    """What the kiosk says of its configuration; a kiosk from before fleet configuration says
    nothing, and its columns stay as they were."""
    report = telemetry.config
    if report is None:
        return {}
    return {"config_version": report.version, "config_tried_version": report.tried_version,
            "config_outcome": None if report.outcome is None else report.outcome.value, "config_reason": report.reason}


def _software_columns(telemetry: KioskTelemetry) -> dict[str, Any]:
    """What the kiosk says of its software; a kiosk from before software updates says nothing,
    and its columns stay as they were."""
    software = telemetry.software
    if software is None:
        return {}
    update = software.update
    return {"software_version": software.version, "software_previous_version": software.previous_version,
            "update_version": None if update is None else update.version,
            "update_state": None if update is None else update.state.value,
            "update_reason": None if update is None else update.reason,
            "update_rollout_id": None if update is None else update.rollout_id,
            "update_at": None if update is None else update.at}


_GROUPS = {"identity": "identity_at", "link": "link_at", "state": "state_at"}


# The devices' columns the upsert returns, as it left them, for the alert rules.
_DEVICE_COLUMNS = tuple(DeviceBase.model_fields)


DeviceKey = tuple[str, str, str]  # (site, kiosk, address)


@dataclass(slots=True)
class KnownDevice:
    """A device's row as a worker's gulp left it, and the telemetry report of the device whose
    link columns the row holds, if one did: a report equal to that one changes nothing there
    (one comparison of two models, not a column each)."""

    row: Row[Any]
    reported: DeviceTelemetry | None = None
    # The alert rules under which a report that changes nothing raises nothing for this row
    # (gulp._device_signals): it then needs no rule run at all.
    quiet_under: object = None


class DeviceRows:
    """The device rows a worker last wrote or found unchanged, by kiosk, with the kiosk's
    devices_version its gulp left: what lets a gulp leave out a device whose report changes
    nothing but its link time (LINK_AT_STEP).

    Trusted only while that version is still the kiosk's: every gulp that touches the kiosk
    moves it on (touch_kiosks), so a gulp of another worker, or a kiosk retired and seen again,
    makes the rows forgotten. Taken in only after the commit (store_gulp), so a gulp rolled
    back teaches nothing. At most `kiosks` kiosks, the least recently seen forgotten first."""

    def __init__(self, kiosks: int = 50_000) -> None:
        self._limit = kiosks
        self._known: OrderedDict[tuple[str, str], tuple[int, dict[str, KnownDevice]]] = OrderedDict()

    def of(self, kiosk: tuple[str, str], version_now: int) -> dict[str, KnownDevice]:
        """The kiosk's rows as this worker left them, if no one wrote since: its own gulp left
        the version one below what this gulp's touch returned."""
        found = self._known.get(kiosk)
        return found[1] if found is not None and found[0] == version_now - 1 else {}

    def take(self, known: dict[tuple[str, str], tuple[int, dict[str, KnownDevice]]]) -> None:
        for kiosk, entry in known.items():
            self._known[kiosk] = entry
            self._known.move_to_end(kiosk)
        while len(self._known) > self._limit:
            self._known.popitem(last=False)


@dataclass(slots=True)
class DevicesApplied:
    """What apply_device_reports did: the reported devices' rows as they are now, those whose
    link report changed nothing but its time (left out, their link report won all the same),
    and what the worker may remember after the commit (DeviceRows.take)."""

    rows: dict[DeviceKey, Row[Any]] = field(default_factory=dict)
    unchanged: set[DeviceKey] = field(default_factory=set)
    known: dict[tuple[str, str], tuple[int, dict[str, KnownDevice]]] = field(default_factory=dict)


def _changes_nothing(known: KnownDevice | None, report: DeviceReport, link: _Fields, horizon: datetime) -> bool:
    """Whether a newer link report would leave the row as it is but for link_at, and that only
    by less than LINK_AT_STEP: only the link group reported, with the values the row holds."""
    if known is None:
        return False
    row = known.row
    return (
        report.identity is None and report.state is None
        and (report.last_reading_at is None or report.last_reading_at == row.last_reading_at)
        and (report.model_hint is None or row.model is not None)
        and row.link_at is not None and row.link_at <= link.at < row.link_at + LINK_AT_STEP and link.at <= horizon
        and ((known.reported is not None and link.given == known.reported)
             or all(getattr(row, name) == value for name, value in link.values.items()))
    )


def _reported(link: _Fields | None) -> DeviceTelemetry | None:
    return link.given if link is not None and isinstance(link.given, DeviceTelemetry) else None


def apply_device_reports(session: Session, reports: Sequence[KioskReport], touched: TouchedKiosks,
                         known: DeviceRows | None = None) -> DevicesApplied:
    """Upsert each reported device, each field group only from a report newer than the last;
    returns the rows as they are now, by (site, kiosk, address).

    A link report older than the kiosk's newest telemetry (`touched`, as the gulp found it) is
    old news: the kiosk lists every device it has in its telemetry (edge_agent/agent.py), so
    that telemetry said since what the device's link was, or that it has no such device; it
    may have said it in a write LINK_AT_STEP left out. A device whose report changes nothing
    but its link time, as `known` remembers it, is not written.

    A statement per shape (the field groups reported, and their columns), built once per
    database and cached, every device of that shape in it. Their kiosks' rows are locked
    first (touch_kiosks) and only a batch writes devices, so two workers never wait on each
    other's devices in opposite orders."""
    applied = DevicesApplied()
    by_shape: dict[_UpsertShape, list[dict[str, Any]]] = {}
    links: dict[DeviceKey, _Fields | None] = {}  # the link report each written device was sent with
    for kiosk in reports:
        key = (kiosk.site, kiosk.kiosk)
        version = touched.versions[key]
        remembered = known.of(key, version) if known is not None else {}
        applied.known[key] = (version, dict(remembered))
        telemetry_at = touched.rows[key].telemetry_at
        for address in sorted(kiosk.devices):
            report = kiosk.devices[address]
            link = report.link
            if link is not None and telemetry_at is not None and not supersedes(link.at, telemetry_at, kiosk.horizon):
                link = None
            if link is not None and _changes_nothing(remembered.get(address), report, link, kiosk.horizon):
                row_now = remembered[address].row
                applied.rows[(kiosk.site, kiosk.kiosk, address)] = row_now
                applied.unchanged.add((kiosk.site, kiosk.kiosk, address))
                before = remembered[address]
                applied.known[key][1][address] = KnownDevice(row_now, _reported(link) or before.reported, before.quiet_under)
                continue
            links[(kiosk.site, kiosk.kiosk, address)] = link
            row: dict[str, Any] = {"site": report.site, "kiosk": report.kiosk, "address": report.address}
            shape: list[tuple[str, tuple[str, ...]]] = []
            for group, fields in (("identity", report.identity), ("link", link), ("state", report.state)):
                if fields is not None:
                    stamp = _GROUPS[group]
                    row |= fields.values | {stamp: fields.at}
                    shape.append((stamp, tuple(sorted(fields.values))))
            # A model from telemetry only fills a model never reported by the device itself.
            with_model_hint = report.identity is None and report.model_hint is not None
            if with_model_hint:
                row["model"] = report.model_hint
            if report.last_reading_at is not None:
                row["last_reading_at"] = report.last_reading_at
            by_shape.setdefault((tuple(shape), report.last_reading_at is not None, with_model_hint), []).append(row)
    # One batch, one arrival: every report's horizon is the same.
    shared = {"horizon": max(kiosk.horizon for kiosk in reports)} if by_shape else {}
    for shape_key, rows in by_shape.items():
        # The rows as returned (read by attribute, as a DeviceBase is): a DeviceBase built for
        # each was 20-30 µs of CPU a message on the fleet's mix, 9 devices in each telemetry.
        for returned in _device_upsert(session, shape_key, tuple(rows[0])).execute(session, rows, shared):
            device = (returned.site, returned.kiosk, returned.address)
            applied.rows[device] = returned
            link = links.get(device)
            # The row holds this report's link columns if its link time is the report's.
            reported = _reported(link) if link is not None and returned.link_at == link.at else None
            applied.known[(returned.site, returned.kiosk)][1][returned.address] = KnownDevice(returned, reported)
    return applied


# (((group stamp, its columns), ...), with last_reading_at, with a model hint)
_UpsertShape = tuple[tuple[tuple[str, tuple[str, ...]], ...], bool, bool]


def _device_upsert(session: Session, key: _UpsertShape, columns: tuple[str, ...]) -> BulkInsert:
    """INSERT … ON CONFLICT of device rows of this shape: each group's fields and its stamp
    are taken only if the report's stamp supersedes the row's; last_reading_at only moves
    forward. The batch's horizon is the parameter `horizon`."""
    table = table_of(Device)
    horizon = bindparam("horizon", type_=table.c.state_at.type)

    def finish(statement: Any) -> Any:
        excluded = statement.excluded
        updates: dict[str, Any] = {}
        groups, with_last_reading, with_model_hint = key
        for stamp, names in groups:
            newer = _supersedes_sql(table.c[stamp], excluded[stamp], horizon)
            for name in [*names, stamp]:
                updates[name] = case((newer, excluded[name]), else_=table.c[name])
        if with_last_reading:
            later = _supersedes_sql(table.c.last_reading_at, excluded.last_reading_at, horizon)
            updates["last_reading_at"] = case((later, excluded.last_reading_at), else_=table.c.last_reading_at)
        if with_model_hint:
            updates["model"] = func.coalesce(table.c.model, excluded.model)
        returning = [table.c[name] for name in _DEVICE_COLUMNS]
        if updates:
            upsert = statement.on_conflict_do_update(index_elements=["site", "kiosk", "address"], set_=updates)
        else:
            upsert = statement.on_conflict_do_nothing(index_elements=["site", "kiosk", "address"])
        return upsert.returning(*returning)

    return bulk_insert(session, f"devices:{key}", Device, columns, finish)


def kiosk_devices(session: Session, site: str, kiosk: str) -> list[Device]:
    return list(session.exec(select(Device).where(col(Device.site) == site, col(Device.kiosk) == kiosk).order_by(col(Device.address))))
