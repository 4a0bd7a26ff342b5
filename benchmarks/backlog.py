"""A kiosk's backlog: an outbox file holding N undelivered health readings, written by the real
Outbox. Building 100,000 records takes a while, so a built file is kept in a cache (keyed by N
and by the code that decides its bytes) and copied for each run."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from contract.payloads import BloodPressurePayload, DeviceIdentity
from contract.sealing import Sealer
from contract.topics import KioskTopics, ReadingKind
from edge_agent.store.outbox import Outbox

from benchmarks.report import REPO
from benchmarks.stack import CACHE, payload_keys

SITE = "bench-site"
CUFF = DeviceIdentity(model="omron-hem-7361t", address="A4:C1:38:12:34:56", firmware="1.2.0")
# A resident's pseudonym: a reading with a subject is the common, and the larger, case.
SUBJECT = "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592"
# Records per commit while building (a backlog builds up one reading at a time; building it
# that way would take the benchmark longer than the drain it measures).
BUILD_CHUNK = 1000


def reading(n: int) -> BloodPressurePayload:
    """A plausible reading, varied so that bodies are not all the same."""
    return BloodPressurePayload(
        unit="mmHg", systolic=110.0 + n % 50, diastolic=70.0 + n % 20, mean_arterial_pressure=90.0 + n % 25,
        pulse_rate=60.0 + n % 30, user_id=1, subject=SUBJECT,
    )


def _code_key() -> str:
    digest = hashlib.sha256(payload_keys()[1].encode())
    code = [REPO / "edge_agent/store/outbox.py", *sorted((REPO / "contract/").glob("*.py")), REPO / "benchmarks/backlog.py"]
    for path in code:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build(path: Path, kiosk: str, records: int, progress: Callable[[int], object] = lambda n: None) -> None:
    # Sealed, as in production: in session boxes, as a kiosk seals once every bridge worker says
    # it opens them (contract/sealing.py).
    outbox = Outbox(path, sealer=Sealer.from_text(payload_keys()[1], session_boxes=lambda: True))
    topic = KioskTopics(SITE, kiosk).reading(ReadingKind.BLOOD_PRESSURE)
    done = 0
    while done < records:
        chunk = min(BUILD_CHUNK, records - done)
        with outbox.unit_of_work() as session:
            for n in range(done, done + chunk):
                outbox.add(session, topic, reading(n), device=CUFF)
            session.commit()
        done += chunk
        progress(chunk)
    outbox.close()


def backlog(target: Path, kiosk: str, records: int, progress: Callable[[int], object] = lambda n: None) -> Path:
    """An outbox file at `target` with `records` undelivered readings for `kiosk`."""
    cached = CACHE / f"{kiosk}-{records}-{_code_key()}.sqlite3"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        building = cached.with_suffix(".building")
        for leftover in CACHE.glob(building.name + "*"):
            leftover.unlink()
        build(building, kiosk, records, progress)
        building.rename(cached)
    else:
        progress(records)
    shutil.copyfile(cached, target)  # closed cleanly: no -wal file to copy
    return target
