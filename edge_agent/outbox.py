"""The kiosk's durable outbox: every record is committed here before anyone is told "saved".

A record leaves only after the bridge confirms it stored it (wire contract, …/acks). Its
message body is built once, at save time, so a re-send is byte-for-byte the same message with
the same id and sequence number, and the cloud can dedupe it.

States: pending (not yet accepted by the broker) -> published (the broker PUBACKed it; not
storage: Mosquitto can still lose it) -> delivered (the bridge committed it).

Ages (retention, expiry, replay fingerprints) are counted in the kiosk's *running time*: a
monotonic clock whose total is kept in the file, so it goes on across restarts. Never by the
wall clock, which on a Pi jumps by days or decades (no RTC; NTP steps it): a jump forward
would expire every undelivered event and forget every fingerprint (so a cuff's replayed
memory would be saved again, a duplicate), a jump back would keep records for ever.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
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
from sqlalchemy import Integer, bindparam, delete, func, insert, text, update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Field, Session, SQLModel, col, select

from doorstep.contract.envelope import Envelope
from doorstep.contract.payloads import DeviceIdentity
from doorstep.contract.sealing import Sealer
from doorstep.contract.topics import QOS_RELIABLE, Channel, parse_topic
from doorstep.runtime.db import create_durable_engine
from edge_agent.outbox_integrity import set_aside_if_corrupt

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
_UNSENT_SQL = "state IN ({})".format(", ".join(f"'{state.name}'" for state in _UNSENT))
_UNSENT_INDEX = "ix_outbox_unsent"


class RecordClass(IntEnum):
    """Priority, highest first: sent first, evicted last. A health reading is never evicted."""

    HEALTH = 0  # readings
    EVENT = 1  # check-ins, laundry, faults, command results
    TELEMETRY = 2  # heartbeats and health of the kiosk: the next one replaces a lost one


# Cached: parsing the topic was a tenth of a save's Python (cProfile); a kiosk has few topics
# (a command result's has its request id in it, hence the bound).
@functools.lru_cache(maxsize=256)
def record_class_of(topic: str) -> RecordClass:
    channel = parse_topic(topic).channel
    if channel is Channel.READINGS:
        return RecordClass.HEALTH
    if channel is Channel.TELEMETRY:
        return RecordClass.TELEMETRY
    return RecordClass.EVENT


# What a record costs besides its body: its ids, topic, timestamps and index entries. An
# estimate, used for the disk budget, which is a budget of records, not of file pages.
RECORD_OVERHEAD_BYTES = 256


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    budget_bytes: int = 256 * 1024 * 1024
    delivered_retention: timedelta = timedelta(days=7)
    # Undelivered records older than this are given up on; a health reading never is.
    max_age: Mapping[RecordClass, timedelta] = field(
        default_factory=lambda: MappingProxyType(
            {RecordClass.EVENT: timedelta(days=90), RecordClass.TELEMETRY: timedelta(days=2)}
        )
    )
    # A cuff replays its memory for about this long at most; older fingerprints are forgotten.
    fingerprint_retention: timedelta = timedelta(days=180)


@dataclass(frozen=True, slots=True)
class Pruned:
    delivered: int
    expired: int
    fingerprints: int


class OutboxRecord(SQLModel, table=True):
    __tablename__ = "outbox"
    # AUTOINCREMENT: a sequence number is never reused after its record is pruned, so the
    # bridge can read a gap as a lost message.
    __table_args__ = {"sqlite_autoincrement": True}

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


class OutboxClock(SQLModel, table=True):
    """The kiosk's running time so far, in seconds: one row, written by deliveries, pruning and
    closing. A save writes its running time in its record instead (see `Outbox.__init__`)."""

    __tablename__ = "outbox_clock"

    id: int = Field(default=1, primary_key=True)
    running_s: float = 0.0


class DeviceReadingSeen(SQLModel, table=True):
    """Readings already saved, by fingerprint: cuffs that replay their memory on every
    connection must not become new records each time."""

    __tablename__ = "device_readings_seen"
    # Keyed by the fingerprint alone: a save writes one b-tree page for it, not a table's and its
    # primary key index's (write_bytes 46.7 -> 43.2 KB a reading, benchmarks/save.py).
    __table_args__ = {"sqlite_with_rowid": False}

    fingerprint: str = Field(primary_key=True, max_length=64)
    seq: int
    seen_at: datetime
    seen_running_s: float = 0.0


class DeviceCursor(SQLModel, table=True):
    """How far a device's stored records have been read (a glucose meter's last sequence number)."""

    __tablename__ = "device_cursors"

    address: str = Field(primary_key=True, max_length=64)
    position: int


_OUTBOX = OutboxRecord.__table__  # type: ignore[attr-defined]
_SEEN = DeviceReadingSeen.__table__  # type: ignore[attr-defined]
_CLOCK = OutboxClock.__table__  # type: ignore[attr-defined]
_DIALECT = sqlite_dialect()


class _Prepared:
    """A statement of the models' own tables compiled once for SQLite, run on the DBAPI cursor
    with the columns' own bind processing (enums stored by name, aware datetimes in UTC).

    A save through the Session, a Core statement at a time, cost more than SQLite itself: 0.6 of
    its 1.0 ms of CPU went to the Session's transaction bookkeeping, the compiled cache's lookup
    and result objects (benchmarks/save.py, cProfile)."""

    __slots__ = ("sql", "_binds")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)  # a statement, not DDL
        self.sql = str(compiled)
        # (name, processor, whether it must be given, else the value bound in the statement).
        # The type's SQLite form does the processing (a datetime stored as SQLAlchemy's text).
        self._binds = tuple(
            (name, bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT), bind.required, bind.value)
            for name, bind in ((name, compiled.binds[name]) for name in compiled.positiontup or ())
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        found = []
        for name, process, required, default in self._binds:
            value = values[name] if required else values.get(name, default)  # KeyError: a value not given
            found.append(value if process is None else process(value))
        return tuple(found)

    def run(self, cursor: DBAPICursor, values: Mapping[str, Any] = MappingProxyType({})) -> DBAPICursor:
        parameters = self.parameters(values)
        try:
            cursor.execute(self.sql, parameters)
        except sqlite3.Error as error:
            raise _wrapped(error, self.sql, parameters) from error
        return cursor

    def run_many(self, cursor: DBAPICursor, rows: Iterable[Mapping[str, Any]]) -> None:
        parameters = [self.parameters(values) for values in rows]
        try:
            cursor.executemany(self.sql, parameters)
        except sqlite3.Error as error:
            raise _wrapped(error, self.sql, parameters) from error


def _wrapped(error: sqlite3.Error, sql: str, parameters: Any) -> StatementError:
    """SQLite's error as SQLAlchemy raises it (OperationalError for a full disk, IntegrityError,
    ...): what callers of the outbox, and of `unit_of_work`, catch."""
    return DBAPIError.instance(sql, parameters, error, sqlite3.Error, dialect=_DIALECT)


# A record's seq is taken before it is written, so that its body (whose envelope holds the seq)
# goes in with it, in one INSERT: the rule of AUTOINCREMENT (one more than the larger of the
# highest seq ever used and the highest seq left), in its own table, sqlite_sequence. The UPDATE
# is the save's first write, so it runs holding SQLite's write lock: no other connection can
# take the same seq, and a rollback gives it back (no gap).
_TAKE_SEQ = _Prepared(text(
    "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(seq), 0) FROM outbox)) + 1 "
    "WHERE name = 'outbox' RETURNING seq"
))
# sqlite_sequence has no row for the outbox before its first record: the first save writes it.
_FIRST_SEQ = _Prepared(text(
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', coalesce(max(seq), 0) + 1 FROM outbox RETURNING seq"
))
# A record not kept (no room) gives its seq back, so the bridge sees no gap for a message that never was.
_GIVE_BACK_SEQ = _Prepared(text("UPDATE sqlite_sequence SET seq = :seq - 1 WHERE name = 'outbox'"))
_INSERT_RECORD = _Prepared(insert(_OUTBOX).values({
    name: bindparam(name) for name in ("seq", "message_id", "topic", "qos", "body", "state", "record_class",
                                       "clock_trusted", "size", "created_at", "saved_running_s")
}))
# The replay check and the fingerprint's row in one statement: no row written, a reading seen before.
_INSERT_SEEN = _Prepared(sqlite_insert(_SEEN).values({
    name: bindparam(name) for name in ("fingerprint", "seq", "seen_at", "seen_running_s")
}).on_conflict_do_nothing(index_elements=[_SEEN.c.fingerprint]))
_FORGET_SEEN = _Prepared(delete(_SEEN).where(_SEEN.c.fingerprint == bindparam("fingerprint")))
_TICK = (update(_CLOCK).where(_CLOCK.c.id == 1)
         .values(running_s=func.max(_CLOCK.c.running_s, bindparam("running"))))
_TICK_PREPARED = _Prepared(_TICK)
# Eviction (see `_make_room`): delivered records first, then the lowest class, oldest first.
_VICTIMS = _Prepared(
    select(_OUTBOX.c.seq, _OUTBOX.c.size, (_OUTBOX.c.state != RecordState.DELIVERED).label("undelivered"))
    .where((_OUTBOX.c.state == RecordState.DELIVERED)
           | ((_OUTBOX.c.record_class >= bindparam("record_class", type_=Integer))
              & (_OUTBOX.c.record_class != int(RecordClass.HEALTH))))
    .order_by(_OUTBOX.c.state != RecordState.DELIVERED, _OUTBOX.c.record_class.desc(), _OUTBOX.c.seq)
    .limit(EVICTION_BATCH)
)
_EVICT = _Prepared(delete(_OUTBOX).where(_OUTBOX.c.seq == bindparam("victim")))


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
        (doorstep/contract/sealing.py): the file then holds no reading this kiosk could read back."""
        self._sealer = sealer
        # One writer at a time, queued here rather than at SQLite's lock: a writer that finds
        # SQLite's lock taken sleeps in growing steps (1, 2, 5, 10 ... ms, sqlite3_busy_timeout),
        # so with four cuffs saving at once a reading took 12 ms at the median from its
        # kiosk_time to its commit, 6 ms from asking to commit with this lock, which hands over
        # as soon as a commit is done (benchmarks/latency.py, traced). Reentrant: a unit of work
        # may call back into the outbox in the same thread.
        self._writer = threading.RLock()
        # Checked before anything opens it: a corrupt file is set aside, never written to.
        self.set_aside: Path | None = set_aside_if_corrupt(path)
        self._engine = create_durable_engine(f"sqlite:///{path}")
        SQLModel.metadata.create_all(
            self._engine,
            tables=[OutboxRecord.__table__, DeviceReadingSeen.__table__, DeviceCursor.__table__,  # type: ignore[attr-defined]
                    OutboxClock.__table__],  # type: ignore[attr-defined]
        )
        self._upgrade_schema()
        self.path = path
        self.limits = limits
        self._clock = clock
        self._clock_trusted = clock_trusted
        self._monotonic = monotonic
        with Session(self._engine) as session:
            stored = session.get(OutboxClock, 1)
            if stored is None:
                stored = OutboxClock(id=1, running_s=0.0)
                session.add(stored)
                session.commit()
            # A save writes its running time in its record, not in the clock's row (a page less
            # per save): the newest record (the highest seq, taken under the write lock, so the
            # latest running time too) carries the clock on. Whatever deletes records (pruning,
            # eviction) writes the clock's row in the same transaction.
            newest = session.execute(select(OutboxRecord.saved_running_s)
                                     .order_by(col(OutboxRecord.seq).desc()).limit(1)).scalar()
            self._running_at_open = max(stored.running_s, newest or 0.0)
        self._monotonic_at_open = monotonic()
        self._used_bytes = self._measure()
        # Whether the CRITICAL alarm has been logged for the current episode of health
        # readings over the budget (see `health_over_budget`).
        self._alarmed = False

    def _upgrade_schema(self) -> None:
        """Outboxes written before records had a class and a size (0.1.0 pre-releases): add
        both, filled in from what each record already holds. Idempotent."""
        with self._engine.begin() as connection:
            columns = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(outbox)")}
            if "record_class" not in columns:
                connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN record_class INTEGER NOT NULL DEFAULT 0")
                connection.exec_driver_sql(
                    "UPDATE outbox SET record_class = CASE WHEN topic LIKE '%/readings/%' THEN 0 "
                    "WHEN topic LIKE '%/telemetry' THEN 2 ELSE 1 END"
                )
                connection.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_outbox_record_class ON outbox (record_class)")
            if "clock_trusted" not in columns:
                connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN clock_trusted BOOLEAN NOT NULL DEFAULT 1")
            if "size" not in columns:
                connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
                connection.exec_driver_sql(f"UPDATE outbox SET size = length(body) + {RECORD_OVERHEAD_BYTES}")
            # Before running time (0.1.0 pre-releases): existing records start aging now.
            if "saved_running_s" not in columns:
                connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN saved_running_s FLOAT NOT NULL DEFAULT 0")
                connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN delivered_running_s FLOAT")
            if "refusal" not in columns:
                connection.exec_driver_sql("ALTER TABLE outbox ADD COLUMN refusal VARCHAR")
            # The records still to send, in sending order (see `due`).
            connection.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {_UNSENT_INDEX} ON outbox (record_class, seq) WHERE {_UNSENT_SQL}"
            )
            seen = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(device_readings_seen)")}
            if "seen_running_s" not in seen:
                connection.exec_driver_sql(
                    "ALTER TABLE device_readings_seen ADD COLUMN seen_running_s FLOAT NOT NULL DEFAULT 0"
                )
        self._rebuild_seen_without_rowid()

    def _rebuild_seen_without_rowid(self) -> None:
        """Fingerprints written before they were kept WITHOUT ROWID (0.1.0): copied into the
        table as the model makes it, in one transaction, so that a power cut keeps one or the other."""
        with self._engine.begin() as connection:
            (sql,) = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'device_readings_seen'"
            ).one()
            if "WITHOUT ROWID" in sql.upper():
                return
            # pysqlite begins a transaction before DML only: this one holds the DDL too.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            connection.exec_driver_sql("ALTER TABLE device_readings_seen RENAME TO device_readings_seen_rowid")
            _SEEN.create(connection)
            connection.exec_driver_sql(
                "INSERT INTO device_readings_seen (fingerprint, seq, seen_at, seen_running_s) "
                "SELECT fingerprint, seq, seen_at, seen_running_s FROM device_readings_seen_rowid"
            )
            connection.exec_driver_sql("DROP TABLE device_readings_seen_rowid")

    @property
    def used_bytes(self) -> int:
        return self._used_bytes

    def running_s(self) -> float:
        """The kiosk's running time, as this outbox counts it: the clock records age by."""
        return self._running_at_open + max(0.0, self._monotonic() - self._monotonic_at_open)

    def _tick(self, session: Session) -> float:
        """The running time now, written in `session`: it commits with the caller's change.
        Deliveries, pruning and closing write it; a save keeps it in its record instead."""
        running = self.running_s()
        # An UPDATE of the one row made at open (a merge's SELECT-then-INSERT races between
        # threads); max(): writers in two threads may commit out of order.
        session.execute(_TICK, {"running": running})
        return running

    @property
    def health_over_budget(self) -> bool:
        """True while undelivered health readings alone exceed the budget: they are kept, never
        evicted, and this is the alarm (log, telemetry, doctor). Cleared once they are delivered
        (evictable) or the budget is raised."""
        with Session(self._engine) as session:
            health = session.exec(
                select(func.coalesce(func.sum(OutboxRecord.size), 0)).where(
                    col(OutboxRecord.record_class) == int(RecordClass.HEALTH),
                    col(OutboxRecord.state) != RecordState.DELIVERED,
                )
            ).one()
        over = int(health) > self.limits.budget_bytes
        if not over:
            self._alarmed = False
        return over

    def _measure(self) -> int:
        with Session(self._engine) as session:
            return int(session.exec(select(func.coalesce(func.sum(OutboxRecord.size), 0))).one())

    def create_tables(self, models: Iterable[type[SQLModel]]) -> None:
        """Tables of other parts of the agent that must commit together with outbox records."""
        SQLModel.metadata.create_all(self._engine, tables=[m.__table__ for m in models])  # type: ignore[attr-defined]

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A session for a write transaction, holding the writer lock until it ends."""
        with self._writer, Session(self._engine) as session:
            yield session

    def close(self) -> None:
        with self._writing() as session:
            self._tick(session)
            session.commit()
        self._engine.dispose()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session whose records (see `add`) and other rows commit together, or not at all.
        The caller commits; leaving without a commit rolls everything back."""
        with self._writing() as session:
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
        if fingerprint is not None and _INSERT_SEEN.run(cursor, {
            "fingerprint": fingerprint, "seq": seq, "seen_at": now, "seen_running_s": running,
        }).rowcount == 0:
            connection.rollback()  # seen before; the seq is given back
            return None
        saved = self._write(cursor, seq, running, now, topic, record_class, payload, device=device,
                            device_time=device_time, clock_trusted=clock_trusted, qos=qos)
        if saved is None and fingerprint is not None:
            _FORGET_SEEN.run(cursor, {"fingerprint": fingerprint})  # not kept, so not seen
        try:
            connection.commit()
        except sqlite3.Error as error:
            raise _wrapped(error, "COMMIT", ()) from error
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
        sealed = self._sealer.seal(payload_data) if self._sealer is not None and record_class is RecordClass.HEALTH else None
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
            log.warning("outbox over its budget of %d bytes: a %s record was not kept (only higher classes are left)",
                        self.limits.budget_bytes, record_class.name.lower())
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
            _TICK_PREPARED.run(cursor, {"running": self.running_s()})
        if evicted_undelivered:
            log.warning("outbox over its budget: evicted %d undelivered lower-class record(s)", evicted_undelivered)
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
        with self._writing() as session:
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
            fingerprints = session.execute(
                delete(DeviceReadingSeen).where(
                    col(DeviceReadingSeen.seen_running_s) < now - limits.fingerprint_retention.total_seconds()
                )
            ).rowcount  # type: ignore[attr-defined]
            session.commit()
        self._used_bytes = self._measure()
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
        conditions = [_UNSENT_SQL]
        parameters: dict[str, Any] = {"limit": limit}
        if exclude:
            conditions.append("seq NOT IN :exclude")
            parameters["exclude"] = list(exclude)
        if exclude_topics:
            conditions.append("topic NOT IN :exclude_topics")
            parameters["exclude_topics"] = list(exclude_topics)
        statement = text(
            f"SELECT seq, message_id, topic, qos, body FROM outbox INDEXED BY {_UNSENT_INDEX} "
            f"WHERE {' AND '.join(conditions)} ORDER BY record_class, seq LIMIT :limit"
        ).bindparams(*(bindparam(name, expanding=True) for name in ("exclude", "exclude_topics") if name in parameters))
        with Session(self._engine) as session:
            return [
                PendingRecord(int(seq), uuid.UUID(message_id), topic, int(qos), bytes(body))
                for seq, message_id, topic, qos, body in session.execute(statement, parameters)
            ]

    def mark_published(self, seqs: Collection[int]) -> None:
        with self._writing() as session:
            session.execute(
                update(OutboxRecord)
                .where(col(OutboxRecord.seq).in_(list(seqs)), col(OutboxRecord.state) == RecordState.PENDING)
                .values(state=RecordState.PUBLISHED)
            )
            session.commit()

    def mark_delivered(self, message_ids: Iterable[uuid.UUID]) -> int:
        """Record the bridge's confirmation; returns how many records it newly delivered."""
        ids = [str(m) for m in message_ids]
        with self._writing() as session:
            result = session.execute(
                update(OutboxRecord)
                .where(col(OutboxRecord.message_id).in_(ids), col(OutboxRecord.state) != RecordState.DELIVERED)
                .values(state=RecordState.DELIVERED, delivered_at=self._clock(),
                        delivered_running_s=self._tick(session))
            )
            session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]

    def mark_refused(self, refusals: Mapping[uuid.UUID, str]) -> int:
        """Record the bridge's refusal of records (each with its reason): they are not sent
        again. Returns how many were newly refused."""
        refused = 0
        with self._writing() as session:
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

    def cursor(self, address: str) -> int | None:
        with Session(self._engine) as session:
            found = session.get(DeviceCursor, address)
            return None if found is None else found.position

    def set_cursor(self, address: str, position: int) -> None:
        with self._writing() as session:
            session.merge(DeviceCursor(address=address, position=position))
            session.commit()
