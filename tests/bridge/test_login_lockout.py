"""The login lockout holds under concurrency (issue 16, finding 3): a burst of simultaneous
guesses at one username, through real uvicorn servers sharing one database (SQLite or
PostgreSQL), costs at most the allowed number of password checks, and once those are spent the
right password among the wrong ones does not log in.

Two servers with an engine each stand for two bridge workers: the lockout's state must be in
the database, not in a worker. Password checks are counted at the crypto edge: hashlib.scrypt
is wrapped to record the password it was asked to hash (the servers run in this process).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud_bridge.access import Role
from cloud_bridge.accounts import (
    LOGIN_FAILURE_WINDOW,
    LOGIN_FAILURES_ALLOWED,
    AuditEntry,
    LoginAttempts,
    add_user,
    prune_login_attempts,
)
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.settings import DEVELOPMENT_SECRET
from runtime.db import create_durable_engine
from tests.support import HttpResponse, ServedApp

USERNAME = "nurse-li"
PASSWORD = "the right password, long enough"
BURST = 20


@dataclass
class Clock:
    """The bridge's clock, moved by the test to end a lockout window without waiting."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class ScryptCalls:
    """The passwords hashlib.scrypt was asked to hash, as the servers called it."""

    passwords: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, real: Callable[..., bytes]) -> Callable[..., bytes]:
        def counted(password: bytes, *args: Any, **kwargs: Any) -> bytes:
            with self.lock:
                self.passwords.append(bytes(password))
            return real(password, *args, **kwargs)

        return counted

    def take(self) -> list[bytes]:
        with self.lock:
            taken, self.passwords = self.passwords, []
        return taken


@dataclass
class Workers:
    engine: Engine
    servers: list[ServedApp]
    clock: Clock
    scrypt: ScryptCalls

    def burst(self, guesses: list[tuple[str, str]]) -> list[HttpResponse]:
        """Every guess at once (a barrier lets them go together), spread over the servers."""
        start = threading.Barrier(len(guesses))

        def send(index: int) -> HttpResponse:
            username, password = guesses[index]
            server = self.servers[index % len(self.servers)]
            start.wait()
            return server.request("POST", "/api/v1/login", json.dumps({"username": username, "password": password}).encode())

        with ThreadPoolExecutor(max_workers=len(guesses)) as pool:
            return list(pool.map(send, range(len(guesses))))


@pytest.fixture
def workers(bridge_engine: Engine, bridge_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workers]:
    clock = Clock()
    with Session(bridge_engine) as session:
        add_user(session, username=USERNAME, role=Role.TECHNICIAN, site=None, password=PASSWORD, now=clock.now)
        session.commit()
    second_engine = create_durable_engine(bridge_database)
    scrypt = ScryptCalls()
    monkeypatch.setattr(hashlib, "scrypt", scrypt.wrap(hashlib.scrypt))
    apps = [create_app(engine, BridgeContext(engine, secret_key=DEVELOPMENT_SECRET, clock=clock))
            for engine in (bridge_engine, second_engine)]
    try:
        with ServedApp(apps[0]) as first, ServedApp(apps[1]) as second:
            yield Workers(bridge_engine, [first, second], clock, scrypt)
    finally:
        second_engine.dispose()


def wrong(n: int) -> list[tuple[str, str]]:
    return [(USERNAME, f"wrong guess {i}") for i in range(n)]


@pytest.mark.timeout(300)
def test_a_burst_of_guesses_costs_at_most_the_allowed_checks_and_then_the_right_one_fails(workers: Workers) -> None:
    # A burst of wrong guesses: only the allowed number is checked, the rest refused unchecked.
    answers = workers.burst(wrong(BURST))
    assert [a.status for a in answers] == [401] * BURST
    checked = workers.scrypt.take()
    assert len(checked) <= LOGIN_FAILURES_ALLOWED, f"{len(checked)} password checks for one username in one burst"

    # The allowance is spent: the right password at a random place in a second burst never logs in.
    guesses = wrong(BURST - 1)
    guesses.insert(random.Random(16).randrange(BURST), (USERNAME, PASSWORD))
    answers = workers.burst(guesses)
    assert [a.status for a in answers] == [401] * BURST
    assert {json.dumps(a.body, sort_keys=True) for a in answers} == {
        json.dumps({"error": "unauthenticated", "reason": "wrong username or password"}, sort_keys=True)}
    assert workers.scrypt.take() == []  # refused before any check: a locked username costs no scrypt
    with Session(workers.engine) as session:  # the audit log tells the lockout apart
        refused = session.exec(select(AuditEntry).where(col(AuditEntry.actor) == USERNAME)).all()
    assert len(refused) == 2 * BURST and all(e.result == "refused" for e in refused)
    assert sum(bool(e.detail.get("locked_out")) for e in refused) == 2 * BURST - len(checked)

    # The window over, the right password logs in again, and a success is not a failure:
    # the user can log in more often than the failures allowed.
    workers.clock.now += LOGIN_FAILURE_WINDOW + timedelta(seconds=1)
    for _ in range(LOGIN_FAILURES_ALLOWED + 2):
        logged_in = workers.servers[0].request("POST", "/api/v1/login",
                                               json.dumps({"username": USERNAME, "password": PASSWORD}).encode())
        assert logged_in.status == 200, logged_in.body


@pytest.mark.timeout(300)
def test_a_burst_with_the_right_password_somewhere_checks_at_most_the_allowed_wrong_ones(workers: Workers) -> None:
    """The attacker's case of the finding: 19 wrong and the right one at a random place, all at
    once. Whether the right one lands within the allowance is luck; how many wrong ones are
    checked is not."""
    for seed in range(3):
        workers.clock.now += LOGIN_FAILURE_WINDOW + timedelta(seconds=1)  # a fresh window each round
        guesses = wrong(BURST - 1)
        guesses.insert(random.Random(seed).randrange(BURST), (USERNAME, PASSWORD))
        workers.burst(guesses)
        wrong_checked = [p for p in workers.scrypt.take() if p != PASSWORD.encode()]
        assert len(wrong_checked) <= LOGIN_FAILURES_ALLOWED, f"round {seed}: {len(wrong_checked)} wrong passwords checked"


@pytest.mark.timeout(300)
def test_an_unknown_username_is_answered_alike_and_costs_one_check(workers: Workers) -> None:
    """No answer tells whether a username exists: the same status and body, and a dummy scrypt
    check for one that does not, so it takes as long."""
    [known] = workers.burst([(USERNAME, "wrong guess")])
    assert len(workers.scrypt.take()) == 1
    [unknown] = workers.burst([("nobody-here", "wrong guess")])
    assert len(workers.scrypt.take()) == 1
    assert (unknown.status, unknown.body) == (known.status, known.body) == (
        401, {"error": "unauthenticated", "reason": "wrong username or password"})
    # Unknown usernames are locked out alike: a lockout does not tell either.
    answers = workers.burst([("nobody-here", f"guess {i}") for i in range(BURST)])
    assert [a.status for a in answers] == [401] * BURST
    assert len(workers.scrypt.take()) <= LOGIN_FAILURES_ALLOWED
    # The rows a guesser leaves (one per username tried) go when their window has ended.
    with Session(workers.engine) as session:
        assert prune_login_attempts(session, workers.clock.now) == 0
        assert prune_login_attempts(session, workers.clock.now + LOGIN_FAILURE_WINDOW) == 2
        session.commit()
        assert session.exec(select(LoginAttempts)).all() == []
