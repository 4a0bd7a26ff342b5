"""The kiosk's wall clock jumps back a day, forward ten years and back again while readings
flow: nothing is reordered, duplicated or lost, and the agent keeps working through each jump.

Real processes: Mosquitto, `doorstep bridge`, and `doorstep agent` with simulated cuffs, the
agent under libfaketime (the Debian package), whose offset this test changes while it runs.
Only the agent's wall clock is faked; its monotonic clock, like a Pi's, is not.
"""

from __future__ import annotations

import glob
import sqlite3
import time
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path

import yaml

from broker_admin.mosquitto import MosquittoProcess
from edge_agent.store.outbox import RecordState
from tests.chaos import CUFF_ADDRESSES, Cluster, DoorstepProcess, Target, logged_saved_seqs, wait_until_drained, write_configs

# libfaketime's multi-threaded build (paho and asyncio.to_thread run threads).
LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
# Offsets, in libfaketime's syntax, relative to the real time: back a day, forward ten years,
# then back to the real time (ten years back at once).
JUMPS = ("-1d", "+3650d", "+0")
# Three rounds of the three cuffs: more than the sessions already due when a jump lands.
READINGS_PER_PHASE = 9
PHASE_TIMEOUT_S = 20.0
# More than the agent's check of its clock (edge_agent/scheduling.py, every second).
PHASE_AT_LEAST_S = 2.5
BRIDGE_DOWN_BEFORE_JUMP_S = 1.5


def faked_clock(offset_file: Path) -> dict[str, str]:
    assert LIBFAKETIME, "libfaketime is not installed: apt-get install libfaketime (./dev test does)"
    return {
        "LD_PRELOAD": LIBFAKETIME[0],
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",  # re-read the offset at once when the test changes it
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def wait_for_readings(agent: DoorstepProcess, count: int, what: str) -> list[int]:
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while time.monotonic() < deadline:
        seqs = logged_saved_seqs(agent.logs)
        if len(seqs) >= count:
            return seqs
        time.sleep(0.1)
    raise AssertionError(f"the agent saved no {what} within {PHASE_TIMEOUT_S:g} s: see {agent.logs[-1]}")


def kiosk_years(outbox: Path) -> dict[int, int]:
    """seq -> the year of the kiosk time each record was saved with."""
    with closing(sqlite3.connect(outbox)) as db:
        return {seq: int(created[:4]) for seq, created in db.execute("SELECT seq, created_at FROM outbox")}


def stored_by_the_bridge(database: Path) -> list[tuple[int, uuid.UUID]]:
    with closing(sqlite3.connect(database)) as db:
        return [
            (seq, uuid.UUID(message_id))
            for table in ("readings", "telemetry")
            for seq, message_id in db.execute(f"SELECT seq, message_id FROM {table}")  # noqa: S608 - our names
        ]


def test_clock_jumps_forward_and_back_do_not_reorder_duplicate_or_lose_records(tmp_path: Path) -> None:
    offset_file = tmp_path / "faketime"
    offset_file.write_text("+0\n")
    broker = MosquittoProcess.on_free_port(tmp_path / "broker")
    configs = write_configs(tmp_path, broker)
    for config in (configs.agent, configs.draining_agent):
        # Telemetry every second, so events of the lowest class cross each jump too; the clock
        # trusted, so that nothing but the jumps decides what the records' ages are.
        settings = yaml.safe_load(config.read_text()) | {"telemetry_every_s": 1, "trust_clock": "always"}
        config.write_text(yaml.safe_dump(settings))
    agent = DoorstepProcess(Target.AGENT, tmp_path, environment=faked_clock(offset_file))
    cluster = Cluster(broker, agent, DoorstepProcess(Target.BRIDGE, tmp_path), configs)
    real_year = time.gmtime().tm_year
    phases: list[tuple[str, list[int]]] = []
    try:
        cluster.start()
        before = wait_for_readings(agent, READINGS_PER_PHASE, "readings before any jump")
        phases.append(("+0", before))
        for offset in JUMPS:
            if offset == "+3650d":
                # The bridge is down across the ten-year jump: records saved before it (telemetry
                # too) wait in the outbox, ten years "old" after it, when the jump brings the
                # pruning job forward.
                cluster.kill(Target.BRIDGE)
                time.sleep(BRIDGE_DOWN_BEFORE_JUMP_S)
            offset_file.write_text(offset + "\n")
            jumped_at = time.monotonic()
            seen = len(logged_saved_seqs(agent.logs))
            seqs = wait_for_readings(agent, seen + READINGS_PER_PHASE, f"readings after the jump to {offset}")
            # Long enough for the agent to see each jump on its own, not two as one.
            time.sleep(max(0.0, jumped_at + PHASE_AT_LEAST_S - time.monotonic()))
            if offset == "+3650d":
                cluster.restart(Target.BRIDGE)
            phases.append((offset, seqs[seen:]))
        cluster.agent.stop()
        cluster.agent.start(configs.draining_agent)
        assert wait_until_drained(cluster, 60) == 0, "the outbox did not drain"
    finally:
        cluster.stop_all()

    log = "\n".join(path.read_text(errors="replace") for path in agent.logs)
    assert "clock stepped back by 1 day" in log and "clock stepped forward by 3651 days" in log
    assert "clock stepped back by 3650 days" in log
    assert "Traceback" not in log, log[-3000:]
    # Each phase's readings carry the time the agent's clock said then: the jumps were real.
    years = kiosk_years(configs.outbox)
    expected_years = {"+0": {real_year, real_year - 1}, "-1d": {real_year, real_year - 1},
                      "+3650d": {real_year + 9, real_year + 10, real_year + 11}}
    for offset, seqs in phases:
        # Past the first round: a reading saved just before a jump may be logged just after it.
        settled = seqs[len(CUFF_ADDRESSES):]
        assert settled and {years[seq] for seq in settled} <= expected_years[offset], (offset, seqs)
    # Not reordered: sequence numbers rise in the order the agent saved the records, as its
    # running (monotonic) clock measured it, whatever its wall clock said.
    with closing(sqlite3.connect(configs.outbox)) as db:
        in_saving_order = [seq for (seq,) in db.execute("SELECT seq FROM outbox ORDER BY saved_running_s, seq")]
    assert in_saving_order == sorted(in_saving_order)
    logged = logged_saved_seqs(agent.logs)
    assert len(set(logged)) == len(logged)
    # Not lost, not duplicated: every seq ever minted is in the bridge exactly once, under the
    # message id the outbox gave it (readings and telemetry), and all of them are delivered.
    stored = stored_by_the_bridge(configs.bridge_database)
    stored_seqs = Counter(seq for seq, _ in stored)
    assert [seq for seq, n in stored_seqs.items() if n > 1] == []
    with closing(sqlite3.connect(configs.outbox)) as db:
        outbox = {seq: (uuid.UUID(m), state) for seq, m, state in db.execute("SELECT seq, message_id, state FROM outbox")}
        (highest,) = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    assert set(range(1, highest + 1)) - set(outbox) - set(stored_seqs) == set(), "seqs minted, then lost"
    assert set(stored_seqs) == set(range(1, highest + 1)), "seqs minted and never stored by the bridge"
    assert all(outbox[seq][0] == message_id for seq, message_id in stored if seq in outbox)
    assert {state for _, state in outbox.values()} == {RecordState.DELIVERED.name}
    assert set(logged) <= set(stored_seqs)
