"""The kiosk's durable outbox: every record is committed here before anyone is told "saved".

A record leaves only after the bridge confirms it stored it (wire contract, …/acks). Its
message body is built once, at save time, so a re-send is byte-for-byte the same message with
the same id and sequence number, and the cloud can dedupe it.

States: pending (not yet accepted by the broker) -> published (the broker PUBACKed it; not
storage: Mosquitto can still lose it) -> delivered (the bridge committed it).

Ages (retention, expiry, replay fingerprints) are counted in the kiosk's running time, never
by the wall clock (edge_agent/store/running_clock.py).

The outbox opens the kiosk's database (edge_agent/store/database.py); the ledgers that commit
with its records (laundry, relay, command audit) write through its `unit_of_work`.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index, Integer, bindparam, delete, func, insert, text, update
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import PoolProxiedConnection
from sqlmodel import Field, Session, SQLModel, col, select

from contract.envelope import Envelope
from contract.payloads import DeviceIdentity
from contract.sealing import Sealer
from contract.topics import QOS_RELIABLE, Channel, EventType, parse_topic
from edge_agent.store.condition_log import ConditionLog
from edge_agent.store import readings_seen
from edge_agent.store.database import DEFAULT_WAL_LIMIT_BYTES, KioskDatabase
from edge_agent.store.prepared import Prepared, as_sqlalchemy_error
from edge_agent.store.running_clock import RunningClock

log = logging.getLogger(__name__)

# Records evicted per query while making room.
EVICTION_BATCH = 200


class RecordState(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    DELIVERED = "delivered"
    # The bridge refused it as breaking the contract (a bug): never sent again, kept for a
    # technician, reported in telemetry and by doctor; it ages out like an undelivered record.
    REFUSED = "refused"


# Records still to be sent: neither confirmed nor refused.
_UNSENT = (RecordState.PENDING, RecordState.PUBLISHED)
# The same, as SQL over the stored enum names, for the partial index of unsent records.
UNSENT_SQL = "state IN ({})".format(", ".join(f"'{state.name}'" for state in _UNSENT))
UNSENT_INDEX = "ix_outbox_unsent"


class RecordClass(IntEnum):
    """Priority, highest first: sent first, evicted last. A health record is never evicted."""

    # Readings, and the relay check-ins/outs the screen confirmed to a person ("checked in"):
    # what someone was told is kept must be, so they are never evicted (docs/outbox.md).
    HEALTH = 0
    EVENT = 1  # laundry, faults, command results
    TELEMETRY = 2  # heartbeats and health of the kiosk: the next one replaces a lost one


# The conditions of the budget, per class (see `_make_room`); they clear when pruning finds a
# tenth of the budget free (clearing on the next save that fits logged every other save).
_EVICTING = {c: f"saving {c.name.lower()} records without evicting undelivered ones" for c in RecordClass}
_NOT_KEPT = {c: f"keeping new {c.name.lower()} records" for c in RecordClass}
_ROOM_AGAIN = 0.9

# Events a person is told about as done (the screen answers "checked_in"/"checked_out" once
# the event is committed): kept like health readings, never evicted over the budget.
_CONFIRMED_EVENTS = frozenset({EventType.RELAY_CHECKIN, EventType.RELAY_CHECKOUT})


@functools.lru_cache(maxsize=256)
def is_reading(topic: str) -> bool:
    """Whether `topic` carries a health reading: the records a sealer seals."""
    return parse_topic(topic).channel is Channel.READINGS


# Cached: parsing the topic was a tenth of a save's Python (cProfile); a kiosk has few topics
# (a command result's has its request id in it, hence the bound).
@functools.lru_cache(maxsize=256)
def record_class_of(topic: str) -> RecordClass:
    parsed = parse_topic(topic)
    channel = parsed.channel
    if channel is Channel.READINGS or (channel is Channel.EVENTS and parsed.name in _CONFIRMED_EVENTS):
        return RecordClass.HEALTH
    if channel is Channel.TELEMETRY:
        return RecordClass.TELEMETRY
    return RecordClass.EVENT


# The disk a budgeted record byte occupies in the file, under eviction churn: freed space is
# reused only in part, and pages are not full (1.74 measured with 5,000 records through a 1 MB
# budget; 1.06 without eviction).
_DISK_PER_BUDGETED_BYTE = 2.0
# What the outbox occupies with no record: the shared-memory file (32 KiB) and a new file's
# tables and indexes (measured in docs/outbox.md).
_FIXED_DISK_BYTES = 32 * 1024 + 160 * 1024
_MIN_WAL_BYTES = 64 * 1024

# The disk one save may need at worst: the WAL frames of its pages, and of an eviction's
# (78,312 bytes measured over 3,000 saves through a 1 MB budget, each after a checkpoint).
SAVE_NEEDS_BYTES = 128 * 1024

# What a record costs besides its body: its ids, topic, timestamps and index entries. An
# estimate, used for the disk budget, which is a budget of records, not of file pages.
RECORD_OVERHEAD_BYTES = 256


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    # The records' share of the disk budget, counted by RECORD_OVERHEAD_BYTES (for a budget of
    # the disk itself, see `OutboxLimits.for_disk`).
    budget_bytes: int = 256 * 1024 * 1024
    # The WAL is checkpointed at this size and cut back to it (edge_agent/store/database.py).
    wal_limit_bytes: int = DEFAULT_WAL_LIMIT_BYTES
    delivered_retention: timedelta = timedelta(days=7)
    # Undelivered records older than this are given up on; a health reading never is.
    max_age: Mapping[RecordClass, timedelta] = field(
        default_factory=lambda: MappingProxyType(
            {RecordClass.EVENT: timedelta(days=90), RecordClass.TELEMETRY: timedelta(days=2)}
        )
    )
    # A cuff replays its memory for about this long at most; older fingerprints are forgotten.
    fingerprint_retention: timedelta = timedelta(days=180)

    @classmethod
    def for_disk(cls, disk_bytes: int, **others: Any) -> OutboxLimits:
        """Limits under which the outbox's files (database, WAL, shared memory) stay within
        `disk_bytes`: the WAL gets a sixteenth (64 KiB to 4 MiB), the shared-memory file and a
        new file's tables their measured size, and the records the rest divided by what a
        record's budgeted byte occupies in the file, measured under eviction (see
        docs/outbox.md). Never less than a sixteenth for the records, so a tiny budget still
        keeps some."""
        wal = min(max(disk_bytes // 16, _MIN_WAL_BYTES), DEFAULT_WAL_LIMIT_BYTES)
        records = int((disk_bytes - wal - _FIXED_DISK_BYTES) / _DISK_PER_BUDGETED_BYTE)
        return cls(budget_bytes=max(records, disk_bytes // 16), wal_limit_bytes=wal, **others)


@dataclass(frozen=True, slots=True)
class Pruned:
    delivered: int
    expired: int
    fingerprints: int


class OutboxRecord(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        # The records still to send, in sending order (see `Outbox.due`).
        Index(UNSENT_INDEX, "record_class", "seq", sqlite_where=text(UNSENT_SQL)),
        # AUTOINCREMENT: a sequence number is never reused after its record is pruned, so the
        # bridge can read a gap as a lost message.
        {"sqlite_autoincrement": True},
    )

    seq: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True, max_length=36)
    topic: str
    qos: int = QOS_RELIABLE
    body: bytes
    state: RecordState = Field(default=RecordState.PENDING, index=True)
    record_class: int = Field(default=RecordClass.HEALTH, index=True)
    clock_trusted: bool = Field(default=True, description="was created_at from a synchronised clock")
    size: int = Field(default=0, description="body plus RECORD_OVERHEAD_BYTES: its share of the budget")
    created_at: datetime
    delivered_at: datetime | None = None
    # The outbox's running time (see the module's docstring) when saved and when delivered.
    saved_running_s: float = 0.0
    delivered_running_s: float | None = None
    refusal: str | None = Field(default=None, description="the bridge's reason, when it refused the record")


_OUTBOX = OutboxRecord.__table__  # type: ignore[attr-defined]
# A record's seq is taken before it is written, so that its body (whose envelope holds the seq)
# goes in with it, in one INSERT: the rule of AUTOINCREMENT (one more than the larger of the
# highest seq ever used and the highest seq left), in its own table, sqlite_sequence. The UPDATE
# is the save's first write, so it runs holding SQLite's write lock: no other connection can
# take the same seq, and a rollback gives it back (no gap).
_TAKE_SEQ = Prepared(text(
    "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(seq), 0) FROM outbox)) + 1 "
    "WHERE name = 'outbox' RETURNING seq"
))
# sqlite_sequence has no row for the outbox before its first record: the first save writes it.
_FIRST_SEQ = Prepared(text(
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', coalesce(max(seq), 0) + 1 FROM outbox RETURNING seq"
))
# A record not kept (no room) gives its seq back, so the bridge sees no gap for a message that never was.
_GIVE_BACK_SEQ = Prepared(text("UPDATE sqlite_sequence SET seq = :seq - 1 WHERE name = 'outbox'"))
_INSERT_RECORD = Prepared(insert(_OUTBOX).values({
    name: bindparam(name) for name in ("seq", "message_id", "topic", "qos", "body", "state", "record_class",
                                       "clock_trusted", "size", "created_at", "saved_running_s")
}))
# Eviction (see `_make_room`): delivered records first, then the lowest class, oldest first.
_VICTIMS = Prepared(
    select(_OUTBOX.c.seq, _OUTBOX.c.size, (_OUTBOX.c.state != RecordState.DELIVERED).label("undelivered"))
    .where((_OUTBOX.c.state == RecordState.DELIVERED)
           | ((_OUTBOX.c.record_class >= bindparam("record_class", type_=Integer))
              & (_OUTBOX.c.record_class != int(RecordClass.HEALTH))))
    .order_by(_OUTBOX.c.state != RecordState.DELIVERED, _OUTBOX.c.record_class.desc(), _OUTBOX.c.seq)
    .limit(EVICTION_BATCH)
)
_EVICT = Prepared(delete(_OUTBOX).where(_OUTBOX.c.seq == bindparam("victim")))


@dataclass(frozen=True, slots=True)
class SavedRecord:
    seq: int
    message_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class PendingRecord:
    seq: int
    message_id: uuid.UUID
    topic: str
    qos: int
    body: bytes


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        clock_trusted: Callable[[], bool] = lambda: True,
        limits: OutboxLimits = OutboxLimits(),
        monotonic: Callable[[], float] = time.monotonic,
        sealer: Sealer | None = None,
    ) -> None:
        """`clock` gives records their kiosk time; `clock_trusted` says whether it is
        synchronised now (edge_agent/clock.py): records saved while it is not say so on the wire.
        `monotonic` measures the running time that ages records (see the module's docstring).
        With a `sealer`, health readings are sealed for the bridge before they are written
        (contract/sealing.py): the file then holds no reading this kiosk could read back."""
        self._sealer = sealer
        self.database = KioskDatabase(path, wal_limit_bytes=limits.wal_limit_bytes)
        self._engine = self.database.engine
        self._writer = self.database.writer
        self.path = path
        self.limits = limits
        self._clock = clock
        self._clock_trusted = clock_trusted
        with Session(self._engine) as session:
            # A save writes its running time in its record, not in the clock's row (a page less
            # per save): the newest record (the highest seq, taken under the write lock, so the
            # latest running time too) carries the clock on. Whatever deletes records (pruning,
            # eviction) writes the clock's row in the same transaction.
            newest = session.execute(select(OutboxRecord.saved_running_s)
                                     .order_by(col(OutboxRecord.seq).desc()).limit(1)).scalar()
            self._running = RunningClock(session, carried=newest or 0.0, monotonic=monotonic)
        self._used_bytes = self._measure()
        # Over the budget, evictions and records not kept: logged once a condition, with a count
        # (once a save, they flooded the log of a kiosk at its limit).
        self._conditions = ConditionLog(log, level=logging.WARNING)
        # Whether the CRITICAL alarm has been logged for the current episode of health
        # readings over the budget (see `health_over_budget`).
        self._alarmed = False

    @property
    def set_aside(self) -> Path | None:
        """Where a corrupt file found at open was moved (edge_agent/store/integrity.py)."""
        return self.database.set_aside

    @property
    def used_bytes(self) -> int:
        return self._used_bytes

    def disk_bytes(self) -> int:
        """What the outbox's files occupy on disk: database, WAL and shared memory."""
        return self.database.disk_bytes()

    def running_s(self) -> float:
        """The kiosk's running time, as this outbox counts it: the clock records age by."""
        return self._running.running_s()

    def _tick(self, session: Session) -> float:
        """The running time now, written in `session`: it commits with the caller's change.
        Deliveries, pruning and closing write it; a save keeps it in its record instead."""
        return self._running.tick(session)

    @property
    def health_over_budget(self) -> bool:
        """True while undelivered health readings alone exceed the budget: they are kept, never
        evicted, and this is the alarm (log, telemetry, doctor). Cleared once they are delivered
        (evictable) or the budget is raised."""
        over = self.undelivered_bytes(RecordClass.HEALTH) > self.limits.budget_bytes
        if not over:
            self._alarmed = False
        return over

    def undelivered_bytes(self, record_class: RecordClass | None = None) -> int:
        """The budgeted bytes of the records (of `record_class`, or all) the bridge has not
        confirmed, refused ones too (kept until they age out): what deleting delivered records
        cannot free (edge_agent/runway.py)."""
        undelivered = [col(OutboxRecord.state) != RecordState.DELIVERED]
        if record_class is not None:
            undelivered.append(col(OutboxRecord.record_class) == int(record_class))
        with Session(self._engine) as session:
            return int(session.exec(select(func.coalesce(func.sum(OutboxRecord.size), 0)).where(*undelivered)).one())

    def _measure(self) -> int:
        with Session(self._engine) as session:
            return int(session.exec(select(func.coalesce(func.sum(OutboxRecord.size), 0))).one())

    def close(self) -> None:
        """Write the running clock and close. On a full disk the clock's row cannot be written:
        that loses nothing, as the newest record carries the running time on (see __init__), so
        the kiosk stops cleanly all the same; only the time since that record is not counted."""
        try:
            with self.database.writing() as session:
                self._tick(session)
                session.commit()
        except OperationalError as error:
            log.warning("outbox closed without writing its running clock (%s): the newest record carries it",
                        str(error.orig) if error.orig is not None else error)
        finally:
            self.database.close()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose records (see `add`) and other rows commit together, or not at all.
        The caller commits; leaving without a commit rolls everything back."""
        with self.database.writing() as session:
            try:
                yield session
            except BaseException:
                # A failed commit (a full disk) undoes evictions `add` already counted.
                self._used_bytes = self._measure()
                raise

    def save(
        self,
        topic: str,
        payload: BaseModel | dict[str, Any],
        *,
        device: DeviceIdentity | None = None,
        device_time: datetime | None = None,
        clock_trusted: bool | None = None,
        qos: int = QOS_RELIABLE,
        fingerprint: str | None = None,
    ) -> SavedRecord | None:
        """Commit one record durably and return its identity; raise on any storage failure.

        With a `fingerprint` (the device's own identity of the reading), a reading saved before
        is not saved again and None is returned: the check and the save are one transaction.
        """
        # On the DBAPI connection, with no Session: a save is its own transaction.
        with self._writer:
            connection = self._engine.raw_connection()
            try:
                saved = self._save(connection, topic, payload, device=device, device_time=device_time,
                                   clock_trusted=clock_trusted, qos=qos, fingerprint=fingerprint)
            except BaseException:
                connection.close()  # the pool rolls back what was not committed
                # A failed commit (a full disk) undoes evictions `_make_room` already counted.
                self._used_bytes = self._measure()
                raise
            connection.close()
        return saved

    def _save(
        self,
        connection: PoolProxiedConnection,
        topic: str,
        payload: BaseModel | dict[str, Any],
        *,
        device: DeviceIdentity | None,
        device_time: datetime | None,
        clock_trusted: bool | None,
        qos: int,
        fingerprint: str | None,
    ) -> SavedRecord | None:
        record_class = record_class_of(topic)  # a topic outside the tree fails before any write
        cursor = connection.cursor()
        seq = self._take_seq(cursor)
        running = self.running_s()
        now = self._clock()
        if fingerprint is not None and readings_seen.REMEMBER.run(cursor, {
            "fingerprint": fingerprint, "seq": seq, "seen_at": now, "seen_running_s": running,
        }).rowcount == 0:
            connection.rollback()  # seen before; the seq is given back
            return None
        saved = self._write(cursor, seq, running, now, topic, record_class, payload, device=device,
                            device_time=device_time, clock_trusted=clock_trusted, qos=qos)
        if saved is None and fingerprint is not None:
            readings_seen.FORGET.run(cursor, {"fingerprint": fingerprint})  # not kept, so not seen
        try:
            connection.commit()
        except sqlite3.Error as error:
            raise as_sqlalchemy_error(error, "COMMIT", ()) from error
        return saved

    def add(
        self,
        session: Session,
        topic: str,
        payload: BaseModel | dict[str, Any],
        *,
        device: DeviceIdentity | None = None,
        device_time: datetime | None = None,
        clock_trusted: bool | None = None,
        qos: int = QOS_RELIABLE,
    ) -> SavedRecord | None:
        """Add one record to `session` (from `unit_of_work`); durable only once it commits.

        Over the budget, older records of the same or a lower class make room (delivered ones
        first). None: a non-health record for which there is no room (only health readings, or
        higher classes, are left). A health reading is always added: if it cannot fit, the
        budget is exceeded and `health_over_budget` is raised, loudly."""
        record_class = record_class_of(topic)
        # The DBAPI cursor of the session's own connection: in its transaction, with its other rows.
        cursor = session.connection().connection.cursor()
        seq = self._take_seq(cursor)
        return self._write(cursor, seq, self.running_s(), self._clock(), topic, record_class, payload, device=device,
                           device_time=device_time, clock_trusted=clock_trusted, qos=qos)

    @staticmethod
    def _take_seq(cursor: DBAPICursor) -> int:
        """The next record's seq (see _TAKE_SEQ); from here the transaction holds the write lock,
        so records' seqs rise with their running times."""
        row = _TAKE_SEQ.run(cursor).fetchone() or _FIRST_SEQ.run(cursor).fetchone()
        assert row is not None  # an INSERT ... RETURNING returns its row
        return int(row[0])

    def _write(
        self,
        cursor: DBAPICursor,
        seq: int,
        running: float,
        now: datetime,
        topic: str,
        record_class: RecordClass,
        payload: BaseModel | dict[str, Any],
        *,
        device: DeviceIdentity | None,
        device_time: datetime | None,
        clock_trusted: bool | None,
        qos: int,
    ) -> SavedRecord | None:
        """Write record `seq` with its body, built once here; None if there is no room for it
        (see `add`), its seq given back."""
        message_id = uuid.uuid4()
        trusted = self._clock_trusted() if clock_trusted is None else clock_trusted
        payload_data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        sealed = self._sealer.seal(payload_data) if self._sealer is not None and is_reading(topic) else None
        envelope = Envelope(
            message_id=message_id,
            seq=seq,
            kiosk_time=now,
            kiosk_clock_trusted=trusted,
            device_time=device_time,
            device=device,
            payload=None if sealed is not None else payload_data,
            sealed=sealed,
        )
        body = envelope.model_dump_json().encode()
        size = len(body) + RECORD_OVERHEAD_BYTES
        if not self._make_room(cursor, record_class, size):
            _GIVE_BACK_SEQ.run(cursor, {"seq": seq})
            self._conditions.at_limit(_NOT_KEPT[record_class], "not kept, over the budget",
                                      f"{self.limits.budget_bytes}-byte budget; only higher classes are left")
            return None
        _INSERT_RECORD.run(cursor, {
            "seq": seq, "message_id": str(message_id), "topic": topic, "qos": qos, "body": body,
            "state": RecordState.PENDING, "record_class": int(record_class), "clock_trusted": trusted, "size": size,
            "created_at": now, "saved_running_s": running,
        })
        self._used_bytes += size
        return SavedRecord(seq=seq, message_id=message_id)

    def _make_room(self, cursor: DBAPICursor, record_class: RecordClass, size: int) -> bool:
        """Evict, delivered records first, then the lowest class and oldest first, never a class
        above `record_class` and never a health reading. False if the record should not be kept."""
        budget = self.limits.budget_bytes
        if self._used_bytes + size <= budget:
            return True
        evicted_undelivered = 0
        while self._used_bytes + size > budget:
            victims = _VICTIMS.run(cursor, {"record_class": int(record_class)}).fetchall()
            if not victims:
                break
            freed, chosen = 0, []
            for seq, victim_size, undelivered in victims:
                chosen.append({"victim": seq})
                freed += victim_size
                evicted_undelivered += undelivered
                if self._used_bytes - freed + size <= budget:
                    break
            _EVICT.run_many(cursor, chosen)
            self._used_bytes -= freed
            # The newest record may be among them, and it carries the running time (see __init__).
            self._running.tick_on(cursor)
        if evicted_undelivered:
            self._conditions.at_limit(_EVICTING[record_class], "over the budget",
                                      f"{evicted_undelivered} lower-class record(s) evicted this time")
        if self._used_bytes + size <= budget:
            return True
        if record_class is not RecordClass.HEALTH:
            return False
        if not self._alarmed:
            self._alarmed = True
            self._alarm(self._used_bytes + size)
        return True

    def _alarm(self, used: int) -> None:
        log.critical(
            "OUTBOX FULL OF HEALTH READINGS: %d bytes used of a %d-byte budget and nothing else left to evict. "
            "Health readings are kept, never dropped: get this kiosk online or give it more disk.",
            used, self.limits.budget_bytes,
        )

    def prune(self) -> Pruned:
        """Delete delivered records past their retention, undelivered ones past their class's
        maximum age (never health readings), and old replay fingerprints, all by running time
        (see the module's docstring). Really deletes."""
        limits = self.limits
        with self.database.writing() as session:
            now = self._tick(session)
            delivered = session.execute(
                delete(OutboxRecord).where(
                    col(OutboxRecord.state) == RecordState.DELIVERED,
                    col(OutboxRecord.delivered_running_s) < now - limits.delivered_retention.total_seconds(),
                )
            ).rowcount  # type: ignore[attr-defined]
            expired = 0
            for record_class, max_age in limits.max_age.items():
                if record_class is RecordClass.HEALTH:
                    continue
                expired += session.execute(
                    delete(OutboxRecord).where(
                        col(OutboxRecord.state) != RecordState.DELIVERED,
                        col(OutboxRecord.record_class) == int(record_class),
                        col(OutboxRecord.saved_running_s) < now - max_age.total_seconds(),
                    )
                ).rowcount  # type: ignore[attr-defined]
            fingerprints = readings_seen.forget_older_than(session, now - limits.fingerprint_retention.total_seconds())
            session.commit()
        if delivered or expired or fingerprints:
            self.database.checkpoint()  # the WAL held every page the deletes touched
        self._used_bytes = self._measure()
        if self._used_bytes <= _ROOM_AGAIN * limits.budget_bytes:
            for what in (*_EVICTING.values(), *_NOT_KEPT.values()):
                self._conditions.succeeded(what)
        if expired:
            log.warning("outbox: gave up on %d undelivered record(s) past their maximum age", expired)
        if self.health_over_budget:  # a reminder on every pruning pass, not only the first time
            self._alarm(self._used_bytes)
        return Pruned(int(delivered), int(expired), int(fingerprints))

    def due(self, limit: int, *, exclude: Collection[int] = (), exclude_topics: Collection[str] = ()) -> list[PendingRecord]:
        """Undelivered records, health readings first, each class in sequence order, skipping
        those in `exclude` (in flight) and those on `exclude_topics` (held)."""
        # Through the partial index of unsent records, in its order: found by the state index
        # instead, the unsent records were all sorted for every pump (10 ms with 15,000 unsent,
        # against 0.4 ms; EXPLAIN QUERY PLAN, benchmarks/drain.py). The condition is the index's
        # own text, as SQLite needs to see that the index applies; INDEXED BY makes sure it is
        # used (SQLAlchemy renders no index hint for SQLite, hence the text).
        conditions = [UNSENT_SQL]
        parameters: dict[str, Any] = {"limit": limit}
        if exclude:
            conditions.append("seq NOT IN :exclude")
            parameters["exclude"] = list(exclude)
        if exclude_topics:
            conditions.append("topic NOT IN :exclude_topics")
            parameters["exclude_topics"] = list(exclude_topics)
        statement = text(
            f"SELECT seq, message_id, topic, qos, body FROM outbox INDEXED BY {UNSENT_INDEX} "
            f"WHERE {' AND '.join(conditions)} ORDER BY record_class, seq LIMIT :limit"
        ).bindparams(*(bindparam(name, expanding=True) for name in ("exclude", "exclude_topics") if name in parameters))
        with Session(self._engine) as session:
            return [
                PendingRecord(int(seq), uuid.UUID(message_id), topic, int(qos), bytes(body))
                for seq, message_id, topic, qos, body in session.execute(statement, parameters)
            ]

    def mark_published(self, seqs: Collection[int]) -> None:
        with self.database.writing() as session:
            session.execute(
                update(OutboxRecord)
                .where(col(OutboxRecord.seq).in_(list(seqs)), col(OutboxRecord.state) == RecordState.PENDING)
                .values(state=RecordState.PUBLISHED)
            )
            session.commit()

    def mark_delivered(self, message_ids: Iterable[uuid.UUID]) -> int:
        """Record the bridge's confirmation; returns how many records it newly delivered."""
        ids = [str(m) for m in message_ids]
        with self.database.writing() as session:
            # Core on the session's connection, not the ORM's bulk UPDATE (which looks for the
            # records among the session's objects): a drain confirms thousands a second.
            result = session.connection().execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.message_id.in_(ids), _OUTBOX.c.state != RecordState.DELIVERED)
                .values(state=RecordState.DELIVERED, delivered_at=self._clock(),
                        delivered_running_s=self._tick(session))
            )
            session.commit()
            return int(result.rowcount)

    def mark_refused(self, refusals: Mapping[uuid.UUID, str]) -> int:
        """Record the bridge's refusal of records (each with its reason): they are not sent
        again. Returns how many were newly refused."""
        refused = 0
        with self.database.writing() as session:
            for message_id, reason in refusals.items():
                result = session.execute(
                    update(OutboxRecord)
                    .where(col(OutboxRecord.message_id) == str(message_id), col(OutboxRecord.state).in_(_UNSENT))
                    .values(state=RecordState.REFUSED, refusal=reason[:500])
                )
                refused += int(result.rowcount)  # type: ignore[attr-defined]
            session.commit()
        return refused

    def refusals(self, limit: int = 20) -> list[tuple[int, str, str | None]]:
        """The newest refused records: (seq, topic, the bridge's reason)."""
        with Session(self._engine) as session:
            rows = session.exec(
                select(OutboxRecord.seq, OutboxRecord.topic, OutboxRecord.refusal)
                .where(col(OutboxRecord.state) == RecordState.REFUSED)
                .order_by(col(OutboxRecord.seq).desc())
                .limit(limit)
            ).all()
        return [(int(seq or 0), topic, refusal) for seq, topic, refusal in rows]

    def counts(self) -> dict[RecordState, int]:
        with Session(self._engine) as session:
            rows = session.exec(select(OutboxRecord.state, func.count()).group_by(OutboxRecord.state)).all()
        counts = {state: 0 for state in RecordState}
        counts.update({RecordState(state): n for state, n in rows})
        return counts

    def depth(self) -> dict[RecordClass, tuple[int, datetime | None]]:
        """Records still to be sent, per class: how many, and when the oldest was saved."""
        statement = (
            select(OutboxRecord.record_class, func.count(), func.min(OutboxRecord.created_at))
            .where(col(OutboxRecord.state).in_(_UNSENT))
            .group_by(col(OutboxRecord.record_class))
        )
        found: dict[RecordClass, tuple[int, datetime | None]] = {c: (0, None) for c in RecordClass}
        with Session(self._engine) as session:
            for record_class, count, oldest in session.exec(statement):
                found[RecordClass(record_class)] = (count, oldest.replace(tzinfo=UTC) if oldest else None)
        return found

    def state_of(self, message_id: uuid.UUID) -> RecordState | None:
        with Session(self._engine) as session:
            record = session.exec(select(OutboxRecord).where(OutboxRecord.message_id == str(message_id))).first()
            return None if record is None else record.state
