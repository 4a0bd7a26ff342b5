"""Every benchmark runs end to end at a tiny size, so none can rot; and `doorstep simulate`
drives a tiny fleet against a real broker and bridge. The figures are not checked: these are
not timed tests (docs/performance.md has the measurements), only that each benchmark works
and writes its section and plots.

The benchmarks need matplotlib and tqdm, which the `test` extra installs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from broker_admin.mosquitto import MosquittoProcess
from tests.postgres import postgres_available

REPO = Path(__file__).resolve().parent.parent


def _bench() -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")


def _run(main: Callable[[list[str]], object], tmp_path: Path, *args: str) -> str:
    docs = tmp_path / "performance.md"
    main([*args, "--repeat", "1", "--no-progress", "--docs", str(docs), "--plots", str(tmp_path / "plots")])
    return docs.read_text()


@pytest.mark.timeout(120)
def test_drain_save_and_footprint_run_tiny(tmp_path: Path) -> None:
    _bench()
    from benchmarks import drain, footprint, save

    text = _run(drain.main, tmp_path, "--records", "200", "--windows", "20")
    text = _run(save.main, tmp_path, "--readings", "50")
    text = _run(footprint.main, tmp_path, "--seconds", "2", "--warm-up", "2")
    for section in ("drain", "save", "footprint"):
        assert f"<!-- benchmark:{section}:start -->" in text
    assert (tmp_path / "plots" / "drain.png").stat().st_size > 0
    assert "| drain rate, window 20 (records/s) |" in text


@pytest.mark.timeout(120)
def test_latency_and_ingest_run_tiny(tmp_path: Path) -> None:
    _bench()
    from benchmarks import ingest, latency

    _run(latency.main, tmp_path, "--seconds", "3")
    text = _run(ingest.main, tmp_path, "--messages", "200", "--databases", "sqlite")
    assert "<!-- benchmark:latency:start -->" in text and "| one worker stores, sqlite (msgs/s) |" in text


@pytest.mark.timeout(240)
@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed")
def test_fleet_and_scale_out_run_tiny(tmp_path: Path) -> None:
    _bench()
    from benchmarks import fleet, floors, ingest, scale_out

    _run(fleet.main, tmp_path, "--kiosks", "5", "--minutes", "0.05", "--database", "sqlite")
    text = _run(scale_out.main, tmp_path, "--messages", "100", "--workers", "2", "--kiosks", "5", "--seconds", "4")
    assert "| 2 workers store (msgs/s) |" in text
    text = _run(ingest.main, tmp_path, "--messages", "100", "--databases", "postgresql")
    assert "| one worker stores, postgresql, against PostgreSQL alone (psycopg COPY) (msgs/s) |" in text
    text = _run(floors.main, tmp_path, "--records", "100")
    assert "| **the time the goal leaves** |" in text
    assert "| messages lost (messages) | 0" in text
    assert "| killed worker: messages lost (messages) | 0" in text


@pytest.mark.timeout(120)
@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL is not installed")
def test_the_split_worker_experiment_runs_tiny(tmp_path: Path) -> None:
    _bench()
    from benchmarks import split_worker

    text = _run(split_worker.main, tmp_path, "--messages", "200")
    assert "| split worker stores, postgresql, against PostgreSQL alone (psycopg COPY) (msgs/s) |" in text


@pytest.mark.timeout(120)
def test_doorstep_simulate_drives_a_tiny_fleet(tmp_path: Path, running_broker: MosquittoProcess) -> None:
    """The CLI against a real broker and a real bridge: every message confirmed, exit 0."""
    from tests.bridge.workers import worker_processes

    database = f"sqlite:///{tmp_path / 'bridge.sqlite3'}"
    (worker,) = worker_processes(tmp_path, running_broker, database, 1)
    worker.start()
    try:
        worker.wait_serving()
        result = subprocess.run(
            [sys.executable, "-m", "doorstep", "simulate", "--kiosks", "3", "--minutes", "0.1",
             "--broker", f"{running_broker.host}:{running_broker.port}", "--seed", "1"],
            capture_output=True, text=True, timeout=90, cwd=REPO,
        )
    finally:
        worker.stop()
    assert result.returncode == 0, result.stderr
    assert "3 kiosks" in result.stdout and "unconfirmed 0" in result.stdout
