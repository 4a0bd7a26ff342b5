#!/usr/bin/env python3
"""Kill -9 the agent, the broker and the bridge for as long as you like, then check that every
reading the agent reported as saved reached the bridge exactly once.

    .venv/bin/python scripts/chaos.py                    # 5 minutes, a fresh seed
    .venv/bin/python scripts/chaos.py --seconds 3600     # an hour
    .venv/bin/python scripts/chaos.py --seed 1234 --seconds 20   # replay a failed test's plan

The scenario is the one tests/test_chaos.py runs (tests/chaos.py). Exits 0 when the promise
held, 1 when it did not; the work directory is kept on failure (and with --keep).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The scenario lives with the tests, which are not installed: import them from this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos import fresh_seed, shortest_storm_s, run_chaos  # noqa: E402

DEFAULT_SECONDS = 300.0


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("DOORSTEP_CHAOS_SECONDS", DEFAULT_SECONDS)),
        help=f"how long to keep killing (at least {shortest_storm_s():g}; default: $DOORSTEP_CHAOS_SECONDS or "
        f"{DEFAULT_SECONDS:g})",
    )
    parser.add_argument("--seed", type=int, default=None, help="the kill plan's seed (default: a fresh one)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for the outbox to drain")
    parser.add_argument("--workdir", type=Path, default=None, help="where logs and databases go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory even when all went well")
    arguments = parser.parse_args(argv)
    if arguments.seconds < shortest_storm_s():
        parser.error(f"--seconds {arguments.seconds:g} is too short to kill every process: at least {shortest_storm_s():g}")
    return arguments


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="doorstep-chaos-"))
    report = run_chaos(
        workdir,
        seed=fresh_seed() if arguments.seed is None else arguments.seed,
        chaos_seconds=arguments.seconds,
        drain_timeout_s=arguments.drain_timeout,
    )
    print(report.verdict())
    if report.problems():
        return 1
    if not arguments.keep and arguments.workdir is None:
        shutil.rmtree(workdir)
        print(f"  (removed {workdir}; --keep keeps it)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
