"""Kill -9 anywhere: the scenario behind tests/test_chaos.py and scripts/chaos.py.

A real Mosquitto, a bridge process and an agent process with a simulated cuff run while a
seeded plan SIGKILLs each of them at random moments and brings it back. Then the killing stops,
the agent drains its outbox, and the agent's logs, its outbox and the bridge's database are
compared: every reading the agent reported as saved must be in the bridge exactly once, and
nothing may be there that the agent did not commit.

The seed fixes the plan (what is killed when, and for how long), not the interleaving of the
processes, so a re-run with the same seed is the same storm, not the same race.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml

from broker_admin.mosquitto import MosquittoProcess, free_port
from edge_agent.store.outbox import RecordState
from tests.support import KIOSK, SITE

# Simulated cuffs measure once per session (about half a second each); three of them, with a
# short pause between sessions, make several readings a second, so every kill lands among
# readings being saved, sent and confirmed.
CUFF_ADDRESSES = ("SIM:CU:FF:00:00:01", "SIM:CU:FF:00:00:02", "SIM:CU:FF:00:00:03")
CUFF_SESSION_INTERVAL_S = 0.2
# Short, so records lost by a killed broker or bridge are sent again within the run.
ACK_TIMEOUT_S = 1.0
# paho doubles its reconnect delay up to the maximum: a broker back after a few seconds must
# not leave the agent or the bridge waiting a minute.
RECONNECT_S = 1
# The agent logs this only after the outbox commit (edge_agent/agent.py, save_reading).
SAVED_LINE = re.compile(r"\bsaved (?P<kind>\w+) from (?P<address>\S+) \(seq (?P<seq>\d+)\)")
# The uplink's re-send after the ack timeout (edge_agent/uplink.py): the recovery path at work.
RESEND_LINE = re.compile(r"\bno confirmation for seq \d+ within")
# SQLAlchemy's Enum column stores a member's name ('DELIVERED'), not its value ('delivered').
DELIVERED_IN_OUTBOX = RecordState.DELIVERED.name
SHOWN_AT_MOST = 20  # seqs listed per problem; the rest is counted


class Target(StrEnum):
    AGENT = "agent"
    BROKER = "broker"
    BRIDGE = "bridge"


@dataclass(frozen=True, slots=True)
class Cadence:
    """How long a target lives between kills and stays dead after one (seconds, drawn uniformly)."""

    life_s: tuple[float, float]
    down_s: tuple[float, float]
    minimum_kills: int


# The agent dies most often, sometimes before its first reading (it takes about a second to
# start); the broker and the bridge die less often but stay down long enough for a backlog.
CADENCES: Mapping[Target, Cadence] = {
    Target.AGENT: Cadence(life_s=(1.5, 4.5), down_s=(0.0, 1.0), minimum_kills=3),
    Target.BROKER: Cadence(life_s=(4.0, 8.0), down_s=(0.2, 2.0), minimum_kills=1),
    Target.BRIDGE: Cadence(life_s=(4.0, 8.0), down_s=(0.2, 3.0), minimum_kills=1),
}


def shortest_storm_s() -> float:
    """Long enough that every target is killed `minimum_kills` times whatever the seed."""
    return max(
        (c.minimum_kills - 1) * (c.life_s[1] + c.down_s[1]) + c.life_s[1] for c in CADENCES.values()
    )


@dataclass(frozen=True, slots=True)
class Action:
    at_s: float  # after the start of the storm
    target: Target
    kind: Literal["kill", "restart"]


def plan_kills(rng: random.Random, seconds: float) -> list[Action]:
    """Every kill and restart of the storm, in time order. Targets overlap freely (the agent
    may die while the broker is down); a target is only killed again after its restart."""
    if seconds < shortest_storm_s():
        raise ValueError(f"a storm of {seconds:g} s is too short for every kill: at least {shortest_storm_s():g} s")
    actions: list[Action] = []
    for target, cadence in CADENCES.items():  # a fixed order: the same seed, the same plan
        at = 0.0
        while (at := at + rng.uniform(*cadence.life_s)) <= seconds:
            actions.append(Action(at, target, "kill"))
            at += rng.uniform(*cadence.down_s)
            actions.append(Action(at, target, "restart"))
    return sorted(actions, key=lambda action: action.at_s)


def describe_kills(kills: Mapping[Target, int]) -> str:
    return ", ".join(f"{target} {kills.get(target, 0)}" for target in Target)


def kills_in(plan: Iterable[Action]) -> Counter[Target]:
    return Counter(action.target for action in plan if action.kind == "kill")


@dataclass
class DoorstepProcess:
    """`python -m doorstep ROLE --config FILE` in its own process group, one log file per life."""

    role: Target
    workdir: Path
    logs: list[Path] = field(default_factory=list)
    config: Path | None = None  # of its latest life
    # Added to the environment of every life (tests/test_clock_jumps.py: a faked clock).
    environment: Mapping[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _meant_to_run: bool = False

    def start(self, config: Path) -> None:
        self.config = config
        log_path = self.workdir / f"{self.role}-{len(self.logs) + 1}.log"
        with open(log_path, "wb") as log:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                [sys.executable, "-m", "doorstep", str(self.role), "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group: a kill reaches anything it started, and a failing test can
                # still find and stop all of it.
                start_new_session=True,
                env={**os.environ, **self.environment},
            )
        self.logs.append(log_path)
        self._meant_to_run = True

    def exit_code_if_it_died_by_itself(self) -> int | None:
        """The exit code of a process that ended without being killed or stopped (a crash)."""
        if not self._meant_to_run or self._process is None or self._process.poll() is None:
            return None
        self._meant_to_run = False
        return self._process.returncode

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would: no handler, no flush, no goodbye."""
        self._meant_to_run = False
        self._signal_group(signal.SIGKILL)
        if self._process is not None:
            self._process.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._meant_to_run = False
        if self._process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._process is None or self._process.returncode is not None:
            return  # reaped: its pid (and group id) may belong to someone else by now
        try:
            os.killpg(self._process.pid, sig)
        except ProcessLookupError:
            pass


@dataclass(frozen=True, slots=True)
class Configs:
    agent: Path
    # The agent's last life: the same kiosk and outbox, without the cuff, so the set of saved
    # readings is final and the outbox can drain completely.
    draining_agent: Path
    bridge: Path
    outbox: Path
    bridge_database: Path


def write_configs(workdir: Path, broker: MosquittoProcess) -> Configs:
    broker_settings = {
        "host": broker.host,
        "port": broker.port,
        "reconnect_min_s": RECONNECT_S,
        "reconnect_max_s": RECONNECT_S,
    }
    outbox = workdir / "outbox.sqlite3"
    bridge_database = workdir / "bridge.sqlite3"
    agent: dict[str, Any] = {
        "site": SITE,
        "kiosk": KIOSK,
        "outbox_path": str(outbox),
        "broker": broker_settings,
        "ack_timeout_s": ACK_TIMEOUT_S,
        "devices": [
            {
                "address": address,
                "model": "simulated",
                "simulated": True,
                "reconnect_interval_s": CUFF_SESSION_INTERVAL_S,
                "idle_timeout_s": 1.0,
            }
            for address in CUFF_ADDRESSES
        ],
    }
    bridge = {
        "database_url": f"sqlite:///{bridge_database}",
        "broker": broker_settings,
        "client_id": "chaos-bridge-1",  # stable across its lives: the broker keeps its session
        "environment": "development",
        "http_port": free_port(),
    }
    configs = Configs(workdir / "agent.yaml", workdir / "agent-draining.yaml", workdir / "bridge.yaml", outbox,
                      bridge_database)
    configs.agent.write_text(yaml.safe_dump(agent))
    configs.draining_agent.write_text(yaml.safe_dump(agent | {"devices": []}))
    configs.bridge.write_text(yaml.safe_dump(bridge))
    return configs


@dataclass
class Cluster:
    """The three processes of the scenario and what happened to them."""

    broker: MosquittoProcess
    agent: DoorstepProcess
    bridge: DoorstepProcess
    configs: Configs
    kills: Counter[Target] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.broker.start()
        self.bridge.start(self.configs.bridge)
        self.agent.start(self.configs.agent)

    def kill(self, target: Target) -> None:
        self.note_crashes()
        match target:
            case Target.BROKER:
                self.broker.kill()
            case Target.AGENT:
                self.agent.kill()
            case Target.BRIDGE:
                self.bridge.kill()
        self.kills[target] += 1

    def restart(self, target: Target) -> None:
        match target:
            case Target.BROKER:
                self.broker.start()  # same port, same data directory
            case Target.AGENT:
                self.agent.start(self.configs.agent)
            case Target.BRIDGE:
                self.bridge.start(self.configs.bridge)

    def note_crashes(self) -> None:
        """Record an agent or bridge that died without being killed (a bug) and start it again,
        as it was, so the run goes on and the verdict shows everything."""
        for process in (self.agent, self.bridge):
            code = process.exit_code_if_it_died_by_itself()
            if code is not None and process.config is not None:
                self.crashes.append(f"the {process.role} exited by itself with code {code}: see {process.logs[-1]}")
                process.start(process.config)

    def stop_all(self) -> None:
        """Agent first, so it says goodbye to a broker that is still there. Safe to call twice."""
        try:
            self.agent.stop()
        finally:
            try:
                self.bridge.stop()
            finally:
                self.broker.stop()


def carry_out(plan: Sequence[Action], cluster: Cluster, seconds: float) -> None:
    """Act out the plan, then let readings flow until the storm's full length has passed."""
    started = time.monotonic()
    for action in plan:
        time.sleep(max(0.0, started + action.at_s - time.monotonic()))
        if action.kind == "kill":
            cluster.kill(action.target)
        else:
            cluster.restart(action.target)
    time.sleep(max(0.0, started + seconds - time.monotonic()))


def undelivered_in_outbox(outbox: Path) -> int | None:
    """Records not yet confirmed by the bridge; None while there is no outbox or no record yet."""
    if not outbox.exists():
        return None
    with closing(sqlite3.connect(outbox, timeout=10)) as db:
        try:
            total, undelivered = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE state != ?) FROM outbox", (DELIVERED_IN_OUTBOX,)
            ).fetchone()
        except sqlite3.OperationalError:
            return None  # the agent has not created its tables yet
    return None if total == 0 else int(undelivered)


def wait_until_drained(cluster: Cluster, timeout_s: float) -> int | None:
    """Wait for the outbox to have nothing undelivered; returns what is left at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = undelivered_in_outbox(cluster.configs.outbox)
        if left == 0 or time.monotonic() > deadline:
            return left
        cluster.note_crashes()
        time.sleep(0.2)


def logged_saved_seqs(logs: Iterable[Path]) -> list[int]:
    """Every seq the agent reported as saved, over all its lives, in the order logged."""
    return [int(match["seq"]) for log in logs for match in SAVED_LINE.finditer(log.read_text(errors="replace"))]


def resends_logged(logs: Iterable[Path]) -> int:
    return sum(len(RESEND_LINE.findall(log.read_text(errors="replace"))) for log in logs)


def outbox_records(outbox: Path) -> dict[int, uuid.UUID]:
    with closing(sqlite3.connect(outbox, timeout=10)) as db:
        return {seq: uuid.UUID(message_id) for seq, message_id in db.execute("SELECT seq, message_id FROM outbox")}


@dataclass(frozen=True, slots=True)
class StoredReading:
    site: str
    kiosk: str
    seq: int
    message_id: uuid.UUID


def bridge_readings(database: Path) -> tuple[list[StoredReading], int]:
    """Every reading row in the bridge's database, and how many messages it refused."""
    with closing(sqlite3.connect(database, timeout=10)) as db:
        rows = [
            StoredReading(site, kiosk, seq, uuid.UUID(message_id))
            for site, kiosk, seq, message_id in db.execute("SELECT site, kiosk, seq, message_id FROM readings")
        ]
        (dead_letters,) = db.execute("SELECT count(*) FROM dead_letters").fetchone()
    return rows, int(dead_letters)


def _listed(seqs: Iterable[int]) -> str:
    ordered = sorted(seqs)
    shown = ", ".join(map(str, ordered[:SHOWN_AT_MOST]))
    return shown + (f" and {len(ordered) - SHOWN_AT_MOST} more" if len(ordered) > SHOWN_AT_MOST else "")


def _repeated(values: Iterable[Any]) -> list[Any]:
    return [value for value, count in Counter(values).items() if count > 1]


@dataclass(frozen=True)
class ChaosReport:
    seed: int
    chaos_seconds: float
    elapsed_s: float
    kills: Mapping[Target, int]
    crashes: Sequence[str]
    logged_saved: Sequence[int]  # seqs, in log order over all the agent's lives
    resends: int  # records the agent sent again for want of a confirmation
    outbox: Mapping[int, uuid.UUID]  # every record the agent committed, delivered or not
    undelivered: int | None  # at the drain deadline
    stored: Sequence[StoredReading]  # every reading row in the bridge
    dead_letters: int
    workdir: Path

    def problems(self) -> list[str]:
        """Every broken promise, each with the seqs concerned; empty when the run proved it."""
        problems = list(self.crashes)
        if not self.logged_saved:
            problems.append("the agent reported no reading as saved: the run proved nothing")
        if self.undelivered != 0:
            problems.append(f"the outbox still had {self.undelivered} undelivered record(s) at the drain deadline")
        if repeated := _repeated(self.logged_saved):
            problems.append(f"seqs reported saved more than once: {_listed(repeated)}")
        if not_committed := set(self.logged_saved) - set(self.outbox):
            problems.append(f"reported saved but not in the outbox: {_listed(not_committed)}")
        ours = [r for r in self.stored if (r.site, r.kiosk) == (SITE, KIOSK)]
        if strangers := len(self.stored) - len(ours):
            problems.append(f"{strangers} reading(s) in the bridge from a kiosk other than {SITE}/{KIOSK}")
        stored_seqs = [r.seq for r in ours]
        if lost := set(self.logged_saved) - set(stored_seqs):
            problems.append(f"LOST: reported saved, never stored by the bridge: {_listed(lost)}")
        if lost_unreported := set(self.outbox) - set(stored_seqs) - set(self.logged_saved):
            problems.append(f"LOST: committed to the outbox, never stored by the bridge: {_listed(lost_unreported)}")
        if duplicated := _repeated(stored_seqs):
            problems.append(f"DUPLICATED: seqs stored more than once by the bridge: {_listed(duplicated)}")
        if repeated_ids := _repeated(r.message_id for r in ours):
            problems.append(f"DUPLICATED: message ids stored more than once: {', '.join(map(str, repeated_ids))}")
        if invented := sorted({r.seq for r in ours if self.outbox.get(r.seq) != r.message_id}):
            problems.append(f"stored by the bridge, never committed by the agent under that id: {_listed(invented)}")
        if self.dead_letters:
            problems.append(f"the bridge refused {self.dead_letters} message(s) (dead_letters)")
        return problems

    def summary(self) -> str:
        kills = describe_kills(self.kills)
        return (
            f"chaos seed {self.seed}: {len(self.logged_saved)} readings reported saved "
            f"({len(self.outbox)} committed), {len(self.stored)} in the bridge; {self.resends} re-sends; "
            f"kill -9: {kills}; {self.elapsed_s:.1f} s"
        )

    def reproduce(self) -> str:
        return f".venv/bin/python scripts/chaos.py --seed {self.seed} --seconds {self.chaos_seconds:g}"

    def verdict(self) -> str:
        """The summary, then every problem, and where to look."""
        lines = [self.summary(), *(f"  - {p}" for p in self.problems())]
        lines.append(f"  logs and databases: {self.workdir}; reproduce the plan: {self.reproduce()}")
        return "\n".join(lines)


def fresh_seed() -> int:
    return random.SystemRandom().randrange(2**32)


def run_chaos(
    workdir: Path,
    *,
    seed: int,
    chaos_seconds: float,
    drain_timeout_s: float = 30.0,
    say: Callable[[str], None] = print,
) -> ChaosReport:
    """Run the storm of `chaos_seconds` planned by `seed`, drain, stop everything, compare.
    Every process it started is gone when it returns or raises."""
    plan = plan_kills(random.Random(seed), chaos_seconds)
    say(f"chaos seed {seed}: {chaos_seconds:g} s of kill -9 ({describe_kills(kills_in(plan))} planned, "
        f"then the agent once more); work dir {workdir}")
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    broker = MosquittoProcess.on_free_port(workdir / "broker")
    configs = write_configs(workdir, broker)
    cluster = Cluster(broker, DoorstepProcess(Target.AGENT, workdir), DoorstepProcess(Target.BRIDGE, workdir), configs)
    try:
        cluster.start()
        carry_out(plan, cluster, chaos_seconds)
        # The storm ends with the agent killed once more; its last life only drains.
        cluster.kill(Target.AGENT)
        cluster.agent.start(configs.draining_agent)
        undelivered = wait_until_drained(cluster, drain_timeout_s)
    finally:
        cluster.stop_all()
    stored, dead_letters = bridge_readings(configs.bridge_database)
    return ChaosReport(
        seed=seed,
        chaos_seconds=chaos_seconds,
        elapsed_s=time.monotonic() - started,
        kills=dict(cluster.kills),
        crashes=list(cluster.crashes),
        logged_saved=logged_saved_seqs(cluster.agent.logs),
        resends=resends_logged(cluster.agent.logs),
        outbox=outbox_records(configs.outbox),
        undelivered=undelivered,
        stored=stored,
        dead_letters=dead_letters,
        workdir=workdir,
    )
