"""The product promise under kill -9: a reading the agent reported as saved reaches the bridge's
database exactly once, whatever is killed when. Real processes: Mosquitto, `doorstep bridge`,
`doorstep agent` with simulated cuffs (the scenario is in tests/chaos.py).

A failure prints the seed; `DOORSTEP_CHAOS_SEED=<seed>` replays the same kill plan here, and
`.venv/bin/python scripts/chaos.py --seed <seed> --seconds 20` replays it (or a longer storm) by hand.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import pytest

from tests.chaos import (
    CADENCES,
    ChaosReport,
    StoredReading,
    Target,
    fresh_seed,
    kills_in,
    plan_kills,
    run_chaos,
    shortest_storm_s,
)
from tests.support import KIOSK, SITE

# Bounded for CI: with start-up, draining and shutdown the test takes about 25 s.
CI_CHAOS_SECONDS = 20.0
CI_DRAIN_TIMEOUT_S = 30.0


def seed_from_environment() -> int:
    seed = os.environ.get("DOORSTEP_CHAOS_SEED")
    return int(seed) if seed else fresh_seed()


@pytest.mark.broker
def test_kill_9_anywhere_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    report = run_chaos(
        tmp_path, seed=seed_from_environment(), chaos_seconds=CI_CHAOS_SECONDS, drain_timeout_s=CI_DRAIN_TIMEOUT_S
    )
    print(report.summary())
    assert not report.problems(), report.verdict()


# -- the harness itself: a chaos test that cannot fail proves nothing ---------------------------


def test_every_plan_kills_each_process_often_enough_and_restarts_it_before_the_next_kill() -> None:
    for seed in range(500):
        plan = plan_kills(random.Random(seed), shortest_storm_s())
        assert plan == plan_kills(random.Random(seed), shortest_storm_s()), "the seed must fix the plan"
        assert [a.at_s for a in plan] == sorted(a.at_s for a in plan)
        kills = kills_in(plan)
        for target, cadence in CADENCES.items():
            assert kills[target] >= cadence.minimum_kills, (seed, target)
            own = [a.kind for a in plan if a.target is target]
            assert own == ["kill", "restart"] * kills[target], (seed, target)


def test_a_storm_too_short_for_every_kill_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        plan_kills(random.Random(0), shortest_storm_s() - 1)


def report_of(logged: list[int], outbox: dict[int, uuid.UUID], stored: list[StoredReading]) -> ChaosReport:
    return ChaosReport(
        seed=1, chaos_seconds=20, elapsed_s=1.0, kills={Target.AGENT: 1}, crashes=[], logged_saved=logged, resends=0,
        outbox=outbox, undelivered=0, stored=stored, dead_letters=0, workdir=Path("."),
    )


def test_the_verdict_passes_a_faithful_run_and_names_every_lost_duplicated_or_invented_reading() -> None:
    ids = {seq: uuid.uuid4() for seq in range(1, 6)}
    faithful = [StoredReading(SITE, KIOSK, seq, ids[seq]) for seq in range(1, 6)]
    # Seq 5 was committed but the agent died before it logged "saved": delivered, not a problem.
    assert report_of([1, 2, 3, 4], ids, faithful).problems() == []

    broken = [
        StoredReading(SITE, KIOSK, 1, ids[1]),
        StoredReading(SITE, KIOSK, 2, ids[2]),
        StoredReading(SITE, KIOSK, 2, uuid.uuid4()),  # seq 2 stored twice, under a second id
        StoredReading(SITE, KIOSK, 4, ids[4]),
        StoredReading(SITE, KIOSK, 9, uuid.uuid4()),  # never committed by the agent
    ]
    problems = "\n".join(report_of([1, 2, 3, 4], ids, broken).problems())
    assert "LOST: reported saved, never stored by the bridge: 3" in problems
    assert "LOST: committed to the outbox, never stored by the bridge: 5" in problems
    assert "DUPLICATED: seqs stored more than once by the bridge: 2" in problems
    assert "never committed by the agent under that id: 2, 9" in problems
