"""Every kiosk table is created and upgraded here, by one numbered list of steps.

The file's version is SQLite's `PRAGMA user_version` (0 in a new file): step n brings a file at
version n-1 to version n, in one transaction with the version's own update, so a power cut
leaves the file at one version or the next, never between. A kiosk updated from any release
runs the steps it has not had, in order, when it opens the file (`migrate`).

Steps are frozen: each is written as the schema was when it was added, in SQL, never from the
models (a model changed later would change what an old step does). The models must describe
the result; tests/test_store_migrations.py compares the two, and enumerates the steps.

Steps 1-8 adopt files made before there were versions (user_version 0, 0.1.0 and its
pre-releases): their shape depends on the release and on which parts of the agent ever ran
(a kiosk with no laundry room has no laundry tables), so each of them checks what is there.
Steps after them know the shape from the version and check nothing.

Plain sqlite3, no Alembic: the agent's memory is a measured goal (benchmarks/footprint.py),
and this list is all the kiosk's one SQLite file needs.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from sqlalchemy import Engine

log = logging.getLogger(__name__)

Step = Callable[[sqlite3.Connection], None]


def _columns(db: sqlite3.Connection, table: str) -> set[str] | None:
    """The table's columns; None if there is no such table."""
    found = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    return found or None


def _missing(db: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether `table` exists without `column`: an unversioned file that needs the step."""
    columns = _columns(db, table)
    return columns is not None and column not in columns


def record_classes(db: sqlite3.Connection) -> None:
    """Records get a class (health, event, telemetry: what is sent first and evicted last),
    read from each record's topic."""
    if _missing(db, "outbox", "record_class"):
        db.execute("ALTER TABLE outbox ADD COLUMN record_class INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE outbox SET record_class = CASE WHEN topic LIKE '%/readings/%' THEN 0 "
                   "WHEN topic LIKE '%/telemetry' THEN 2 ELSE 1 END")
        db.execute("CREATE INDEX IF NOT EXISTS ix_outbox_record_class ON outbox (record_class)")


def clock_trust(db: sqlite3.Connection) -> None:
    """Records say whether the kiosk's clock was synchronised when they were saved."""
    if _missing(db, "outbox", "clock_trusted"):
        db.execute("ALTER TABLE outbox ADD COLUMN clock_trusted BOOLEAN NOT NULL DEFAULT 1")


def record_sizes(db: sqlite3.Connection) -> None:
    """Records get their share of the disk budget: the body plus 256 bytes of overhead (the
    outbox's RECORD_OVERHEAD_BYTES when this step was written)."""
    if _missing(db, "outbox", "size"):
        db.execute("ALTER TABLE outbox ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE outbox SET size = length(body) + 256")


def running_time(db: sqlite3.Connection) -> None:
    """Records age by the kiosk's running time, not its wall clock; existing ones start aging now."""
    if _missing(db, "outbox", "saved_running_s"):
        db.execute("ALTER TABLE outbox ADD COLUMN saved_running_s FLOAT NOT NULL DEFAULT 0")
        db.execute("ALTER TABLE outbox ADD COLUMN delivered_running_s FLOAT")


def refusals(db: sqlite3.Connection) -> None:
    """A record the bridge refused keeps its reason."""
    if _missing(db, "outbox", "refusal"):
        db.execute("ALTER TABLE outbox ADD COLUMN refusal VARCHAR")


def fingerprint_running_time(db: sqlite3.Connection) -> None:
    """Replay fingerprints age by running time too."""
    if _missing(db, "device_readings_seen", "seen_running_s"):
        db.execute("ALTER TABLE device_readings_seen ADD COLUMN seen_running_s FLOAT NOT NULL DEFAULT 0")


_SEEN = (
    "CREATE TABLE device_readings_seen (fingerprint VARCHAR(64) NOT NULL, seq INTEGER NOT NULL, "
    "seen_at DATETIME NOT NULL, seen_running_s FLOAT NOT NULL, PRIMARY KEY (fingerprint)) WITHOUT ROWID"
)


def fingerprints_without_rowid(db: sqlite3.Connection) -> None:
    """Fingerprints are kept WITHOUT ROWID: a save writes one b-tree page for its fingerprint,
    not a table's and its key's index's. Copied over, in the step's one transaction."""
    found = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'device_readings_seen'").fetchone()
    if found is None or "WITHOUT ROWID" in found[0].upper():
        return
    db.execute("ALTER TABLE device_readings_seen RENAME TO device_readings_seen_rowid")
    db.execute(_SEEN)
    db.execute("INSERT INTO device_readings_seen (fingerprint, seq, seen_at, seen_running_s) "
               "SELECT fingerprint, seq, seen_at, seen_running_s FROM device_readings_seen_rowid")
    db.execute("DROP TABLE device_readings_seen_rowid")


# The kiosk's tables as 0.1.0 (3c157b7) made them, each where it is missing.
_TABLES_0_1_0 = (
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
    "message_id VARCHAR(36) NOT NULL, topic VARCHAR NOT NULL, qos INTEGER NOT NULL, body BLOB NOT NULL, "
    "state VARCHAR(9) NOT NULL, record_class INTEGER NOT NULL, clock_trusted BOOLEAN NOT NULL, size INTEGER NOT NULL, "
    "created_at DATETIME NOT NULL, delivered_at DATETIME, saved_running_s FLOAT NOT NULL, delivered_running_s FLOAT, "
    "refusal VARCHAR, UNIQUE (message_id))",
    "CREATE INDEX IF NOT EXISTS ix_outbox_record_class ON outbox (record_class)",
    "CREATE INDEX IF NOT EXISTS ix_outbox_state ON outbox (state)",
    # The records still to send, in sending order (the outbox's `due`).
    "CREATE INDEX IF NOT EXISTS ix_outbox_unsent ON outbox (record_class, seq) WHERE state IN ('PENDING', 'PUBLISHED')",
    _SEEN.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"),
    "CREATE TABLE IF NOT EXISTS device_cursors (address VARCHAR(64) NOT NULL, position INTEGER NOT NULL, "
    "PRIMARY KEY (address))",
    "CREATE TABLE IF NOT EXISTS outbox_clock (id INTEGER NOT NULL, running_s FLOAT NOT NULL, PRIMARY KEY (id))",
    "INSERT OR IGNORE INTO outbox_clock (id, running_s) VALUES (1, 0.0)",
    "CREATE TABLE IF NOT EXISTS laundry_transactions (id VARCHAR(36) NOT NULL, unit INTEGER NOT NULL, "
    "model VARCHAR NOT NULL, program INTEGER NOT NULL, price_points INTEGER NOT NULL, free_reason VARCHAR, "
    "subject VARCHAR(64), state VARCHAR(15) NOT NULL, command_sequence INTEGER NOT NULL, reason VARCHAR, "
    "created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (id))",
    "CREATE INDEX IF NOT EXISTS ix_laundry_transactions_unit ON laundry_transactions (unit)",
    "CREATE INDEX IF NOT EXISTS ix_laundry_transactions_state ON laundry_transactions (state)",
    "CREATE TABLE IF NOT EXISTS points_accounts (subject VARCHAR(64) NOT NULL, balance INTEGER NOT NULL, "
    "birth_year INTEGER, PRIMARY KEY (subject))",
    "CREATE TABLE IF NOT EXISTS points_charges (transaction_id VARCHAR(36) NOT NULL, subject VARCHAR(64) NOT NULL, "
    "points INTEGER NOT NULL, charged_at DATETIME NOT NULL, PRIMARY KEY (transaction_id))",
    "CREATE TABLE IF NOT EXISTS laundry_command_sequences (unit INTEGER NOT NULL, last INTEGER NOT NULL, "
    "PRIMARY KEY (unit))",
    "CREATE TABLE IF NOT EXISTS laundry_commands (id VARCHAR(36) NOT NULL, unit INTEGER NOT NULL, "
    "command VARCHAR NOT NULL, argument INTEGER NOT NULL, command_sequence INTEGER NOT NULL, "
    "state VARCHAR(12) NOT NULL, result_code INTEGER, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, "
    "PRIMARY KEY (id))",
    "CREATE INDEX IF NOT EXISTS ix_laundry_commands_unit ON laundry_commands (unit)",
    "CREATE INDEX IF NOT EXISTS ix_laundry_commands_state ON laundry_commands (state)",
    "CREATE TABLE IF NOT EXISTS local_audit (id INTEGER NOT NULL, at DATETIME NOT NULL, action VARCHAR(32) NOT NULL, "
    "result VARCHAR(16) NOT NULL, detail JSON NOT NULL, PRIMARY KEY (id))",
    "CREATE TABLE IF NOT EXISTS relay_visits (id VARCHAR(36) NOT NULL, subject VARCHAR(64) NOT NULL, "
    "method VARCHAR(16) NOT NULL, checked_in_at DATETIME NOT NULL, checked_out_at DATETIME, reason VARCHAR(16), "
    "PRIMARY KEY (id))",
    "CREATE INDEX IF NOT EXISTS ix_relay_visits_checked_in_at ON relay_visits (checked_in_at)",
    "CREATE INDEX IF NOT EXISTS ix_relay_visits_checked_out_at ON relay_visits (checked_out_at)",
    "CREATE INDEX IF NOT EXISTS ix_relay_visits_subject ON relay_visits (subject)",
    # One open visit per pseudonym, kept by the database: two taps racing cannot both check in.
    "CREATE UNIQUE INDEX IF NOT EXISTS uq_relay_one_open_visit ON relay_visits (subject) WHERE checked_out_at IS NULL",
    "CREATE TABLE IF NOT EXISTS command_audit (request_id VARCHAR(64) NOT NULL, command VARCHAR(64) NOT NULL, "
    "issued_by VARCHAR(64), issued_at DATETIME, received_at DATETIME NOT NULL, outcome VARCHAR(16), detail VARCHAR, "
    "finished_at DATETIME, PRIMARY KEY (request_id))",
)
# At most one laundry transaction per machine not back to AVAILABLE, kept by the database (a
# partial unique index), not only by the ledger's check. The state is stored by its name.
_ONE_OPEN_PER_UNIT = (
    "CREATE UNIQUE INDEX IF NOT EXISTS uq_laundry_one_open_per_unit ON laundry_transactions (unit) "
    "WHERE state != 'AVAILABLE'"
)


def kiosk_tables(db: sqlite3.Connection) -> None:
    """Every table of 0.1.0 where missing, with its indexes and the running clock's one row:
    a new file starts here, and a file of 0.1.0 gets the tables of the parts that never ran on it."""
    for statement in _TABLES_0_1_0:
        db.execute(statement)
    try:
        db.execute(_ONE_OPEN_PER_UNIT)
    except sqlite3.IntegrityError:
        # A book written before the index, already holding two open transactions for one machine:
        # kept as it is (never deleted), loudly; the ledger's `reserve` still checks.
        log.error("laundry ledger: a machine has two open transactions; the one-per-machine index is not in force")


def laundry_refunds(db: sqlite3.Connection) -> None:
    """A start keeps why it failed as a code beside its detail, and a paid wash that faulted
    before it had really run has its one refund row (issue 18)."""
    db.execute("ALTER TABLE laundry_transactions ADD COLUMN reason_code VARCHAR")
    db.execute("CREATE TABLE points_refunds (transaction_id VARCHAR(36) NOT NULL, subject VARCHAR(64) NOT NULL, "
               "points INTEGER NOT NULL, refunded_at DATETIME NOT NULL, PRIMARY KEY (transaction_id))")


# Step n takes a file from version n-1 to n. Append only: a step that has shipped never changes.
STEPS: tuple[Step, ...] = (
    record_classes,
    clock_trust,
    record_sizes,
    running_time,
    refusals,
    fingerprint_running_time,
    fingerprints_without_rowid,
    kiosk_tables,
    laundry_refunds,
)
SCHEMA_VERSION = len(STEPS)


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(engine: Engine, *, steps: tuple[Step, ...] = STEPS) -> int:
    """Run the steps the file has not had, each in its own transaction; returns the version the
    file was at. A file from newer software (a rollback after an update) is opened as it is:
    its steps only ever added, and a kiosk that cannot save is worse."""
    connection = engine.raw_connection()
    try:
        db = connection.driver_connection
        assert isinstance(db, sqlite3.Connection)
        found = version_of(db)
        if found > len(steps):
            log.warning("the kiosk's database is at schema version %d, newer than this software's %d "
                        "(software rolled back?): opened as it is", found, len(steps))
        for number in range(found + 1, len(steps) + 1):
            # IMMEDIATE: the write lock before the version is read again, so that of two processes
            # opening the file at once, one runs the step and the other then finds it done.
            db.execute("BEGIN IMMEDIATE")
            try:
                applied = version_of(db) < number
                if applied:
                    steps[number - 1](db)
                    db.execute(f"PRAGMA user_version = {number}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if applied:
                log.info("kiosk database: schema step %d (%s) done", number, steps[number - 1].__name__)
        return found
    finally:
        connection.close()
