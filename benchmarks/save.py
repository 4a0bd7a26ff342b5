"""Benchmark 2, save: a health reading's durable commit through the real Outbox.save (with its
replay fingerprint, as the agent saves a cuff's reading), one reading per commit, against a raw
sqlite3 INSERT + COMMIT of the same bytes into a table of the outbox's own schema with the same
pragmas (WAL, synchronous=FULL). Latency p50/p99, throughput, and bytes written to the disk per
reading (/proc/self/io write_bytes, and the growth of the database and its WAL): SD cards wear.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tqdm import tqdm

from contract.sealing import Sealer
from contract.topics import KioskTopics, ReadingKind
from edge_agent.store.outbox import Outbox

from benchmarks import plots, stack
from benchmarks.backlog import CUFF, SITE, reading
from benchmarks.common import percentile, stop_cleanly_on_sigterm
from benchmarks.procstat import write_bytes
from benchmarks.report import Figure, common_arguments, publish
from benchmarks.stack import payload_keys

TOPIC = KioskTopics(SITE, "kiosk-save").reading(ReadingKind.BLOOD_PRESSURE)


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


# Saves per turn: Doorstep and raw take turns, so that both meet the same moments of a noisy
# machine (run one after the other, a busy spell during one side's run decided the p99 ratio).
BLOCK = 100


class DoorstepSide:
    """The real Outbox.save, sealed and fingerprinted, as the agent saves a cuff's reading."""

    def __init__(self, path: Path, n: int) -> None:
        # Sealed, as in production: in session boxes, as a kiosk seals once every bridge worker
        # says it opens them (contract/sealing.py).
        self.outbox = Outbox(path, sealer=Sealer.from_text(payload_keys()[1], session_boxes=lambda: True))
        self._payloads = [reading(i) for i in range(n)]
        self._start = datetime(2026, 11, 25, 9, 0, 0)
        self._fingerprints = [hashlib.sha256(f"{CUFF.address}:{i}".encode()).hexdigest() for i in range(n)]

    def save(self, i: int) -> float:
        began = time.perf_counter()
        self.outbox.save(TOPIC, self._payloads[i], device=CUFF, device_time=self._start + timedelta(minutes=i),
                         fingerprint=self._fingerprints[i])
        return time.perf_counter() - began


class RawSide:
    """The same bodies, by sqlite3 itself, into the outbox's own tables and indexes."""

    def __init__(self, path: Path, schema_from: Path) -> None:
        with sqlite3.connect(schema_from) as source:
            schema = [sql for (sql,) in source.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name = 'outbox' "
                "OR (type = 'index' AND tbl_name = 'outbox' AND sql IS NOT NULL)")]
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        for sql in schema:
            self.db.execute(sql)
        self._now = datetime.now().isoformat()

    def save(self, message_id: str, topic: str, body: bytes) -> float:
        began = time.perf_counter()
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO outbox (message_id, topic, qos, body, state, record_class, clock_trusted, size, "
                        "created_at, saved_running_s) VALUES (?, ?, 1, ?, 'PENDING', 0, 1, ?, ?, 0)",
                        (message_id, topic, body, len(body) + 256, self._now))
        self.db.execute("COMMIT")
        return time.perf_counter() - began


@dataclass
class Measured:
    latencies: list[float] = field(default_factory=list)
    written: int = 0  # write_bytes while saving
    grown: int = 0  # the database and its WAL


def save_both(ours: Path, raw: Path, n: int, progress: bool) -> tuple[Measured, Measured]:
    """Doorstep and raw in turns of BLOCK saves; raw saves the bodies Doorstep has just saved."""
    doorstep_side = DoorstepSide(ours, n)
    raw_side = RawSide(raw, ours)
    reader = sqlite3.connect(ours)
    d, r = Measured(), Measured()
    d_disk, r_disk = _disk_bytes(ours), _disk_bytes(raw)
    for first in tqdm(range(0, n, BLOCK), desc="Outbox.save and raw sqlite3, in turns", disable=not progress, leave=False):
        block = range(first, min(n, first + BLOCK))
        before = write_bytes()
        d.latencies += [doorstep_side.save(i) for i in block]
        d.written += write_bytes() - before
        rows = reader.execute("SELECT message_id, topic, body FROM outbox ORDER BY seq LIMIT ? OFFSET ?",
                              (len(block), first)).fetchall()
        before = write_bytes()
        r.latencies += [raw_side.save(*row) for row in rows]
        r.written += write_bytes() - before
    d.grown, r.grown = _disk_bytes(ours) - d_disk, _disk_bytes(raw) - r_disk
    reader.close()
    doorstep_side.outbox.close()
    raw_side.db.close()
    return d, r


def main(argv: list[str] | None = None) -> list[Figure]:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=3000, help="commits per run, one reading each")
    parser.add_argument("--where", type=Path, default=None, help="directory for the files (default: a temp dir; "
                        "point it at the SD card to measure that)")
    common_arguments(parser)
    args = parser.parse_args(argv)
    throughput = Figure("durable saves, one reading per commit", "readings/s", goal="ratio ≥ 0.8",
                        judge=lambda _v, r: r is not None and r >= 0.8)
    p50 = Figure("commit latency p50", "ms", higher_is_better=False)
    p99 = Figure("commit latency p99", "ms", goal="≤ 2x raw", judge=lambda _v, r: r is not None and r <= 2.0,
                 higher_is_better=False)
    io = Figure("written to disk per reading (write_bytes)", "bytes", higher_is_better=False)
    disk = Figure("database + WAL growth per reading", "bytes", higher_is_better=False)
    series = []
    with stack.workdir("save") as tmp:
        base = args.where or tmp
        base.mkdir(parents=True, exist_ok=True)
        for run in range(args.repeat):
            ours = base / f"outbox-{run}-{os.getpid()}.sqlite3"
            raw = base / f"raw-{run}-{os.getpid()}.sqlite3"
            d, r = save_both(ours, raw, args.readings, not args.no_progress)
            d_lat, r_lat = d.latencies, r.latencies
            for figure, (dv, rv) in ((throughput, (len(d_lat) / sum(d_lat), len(r_lat) / sum(r_lat))),
                                     (p50, (percentile(d_lat, 50) * 1e3, percentile(r_lat, 50) * 1e3)),
                                     (p99, (percentile(d_lat, 99) * 1e3, percentile(r_lat, 99) * 1e3)),
                                     (io, (d.written / args.readings, r.written / args.readings)),
                                     (disk, (d.grown / args.readings, r.grown / args.readings))):
                figure.doorstep.append(dv)
                figure.raw.append(rv)
            series.append((d_lat, r_lat))
            print(f"run {run + 1}: Outbox.save {throughput.doorstep[-1]:,.0f}/s p99 {p99.doorstep[-1]:.2f} ms; "
                  f"raw {throughput.raw[-1]:,.0f}/s p99 {p99.raw[-1]:.2f} ms")
            for path in (ours, raw):
                for leftover in path.parent.glob(path.name + "*"):
                    leftover.unlink()
    d_lat, r_lat = series[-1]
    plot = plots.lines(args.plots / "save.png", "Durable commit latency, one reading per commit (last run)",
                       "reading", "ms (log)", [("Outbox.save", range(len(d_lat)), [x * 1e3 for x in d_lat]),
                                               ("raw sqlite3", range(len(r_lat)), [x * 1e3 for x in r_lat])], logy=True)
    notes = f"""
{args.readings:,} blood-pressure readings per run, each committed alone (as a kiosk saves a resident's
reading before it says "saved"), on the machine's disk{'' if args.where is None else f' under {args.where}'}.
Doorstep: `Outbox.save` with its replay fingerprint, the payload sealed for the bridge (a session box): three statements
on the DBAPI connection in one transaction (the record's seq taken from `sqlite_sequence`, the fingerprint's
row, which is the replay check too, and the record with its body, its running time in it), so one page
more than raw's for the fingerprint. Raw: sqlite3 `BEGIN; INSERT; COMMIT` of the same bodies
into a table with the outbox's own schema and indexes, WAL and `synchronous=FULL`. The two take turns,
{BLOCK} saves each, in one process, so that both meet the same moments of the machine. Bytes written are
the process's `write_bytes` (/proc/self/io: what reached the block layer, WAL frames and checkpoints
included) per reading, and the growth of the database file plus its WAL.
"""
    publish("save", "2. Save: a reading's durable commit", "python -m benchmarks.save",
            [throughput, p50, p99, io, disk], notes, [plot], args.docs)
    return [throughput, p50, p99, io, disk]


if __name__ == "__main__":
    main()
