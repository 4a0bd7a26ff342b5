"""Helpers the tests share: settings for real parts, running agents, waiting for conditions."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
import urllib.error
import urllib.parse
import urllib.request
from typing import Any
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from bleak.backends.client import BaseBleakClient
from fastapi import FastAPI
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from cloud_bridge.access import Role
from cloud_bridge.accounts import User, add_user, issue_token
from cloud_bridge.api import create_app
from cloud_bridge.ingest import Ingest
from cloud_bridge.service import BridgeWorker
from cloud_bridge.store import DeadLetter, Event, Reading
from broker_admin.mosquitto import MosquittoProcess, free_port
from broker_admin.pki import Issued
from runtime.mqtt import BrokerSettings
from edge_agent.agent import Agent
from edge_agent.settings import AgentSettings, DeviceSettings, ScreenSettings

SITE = "test-site"
KIOSK = "kiosk-1"
CUFF_ADDRESS = "SIM:CU:FF:00:00:01"


def broker_settings(broker: MosquittoProcess) -> BrokerSettings:
    return BrokerSettings(host=broker.host, port=broker.port, reconnect_min_s=1, reconnect_max_s=1)


@dataclass
class Bridge:
    engine: Engine
    ingest: Ingest
    worker: BridgeWorker

    def api(self, role: str = "technician", site: str | None = None) -> ServedApp:
        """This worker's HTTP API, served by a real uvicorn (use as a context manager), called
        with the token of a person of `role` (of `site`, for the site-bound roles)."""
        token = api_token(self.engine, self.worker.context.secret_key, role, site)
        return ServedApp(create_app(self.engine, self.worker.context), token=token)

    def readings(self) -> list[Reading]:
        with Session(self.engine) as session:
            return list(session.exec(select(Reading)))

    def reading_count(self) -> int:
        with Session(self.engine) as session:
            return session.exec(select(func.count()).select_from(Reading)).one()

    def events(self) -> list[Event]:
        with Session(self.engine) as session:
            return list(session.exec(select(Event)))

    def dead_letters(self) -> list[DeadLetter]:
        with Session(self.engine) as session:
            return list(session.exec(select(DeadLetter)))


def api_token(engine: Engine, secret_key: str, role: str, site: str | None = None) -> str:
    """A token for a person of `role` at `site`, added to the bridge's database if needed."""
    username = f"{role.replace('_', '-')}-{site or 'all'}"
    now = datetime.now(UTC)
    with Session(engine) as session:
        if session.get(User, username) is None:
            add_user(session, username=username, role=Role(role), site=site, password=None, now=now)
        token, _ = issue_token(session, secret_key, username=username, purpose="api", now=now, lifetime=None)
        session.commit()
    return token



def agent_settings(tmp_path: Path, broker: MosquittoProcess, *, with_cuff: bool = True) -> AgentSettings:
    return AgentSettings(
        site=SITE,
        kiosk=KIOSK,
        outbox_path=tmp_path / "outbox.sqlite3",
        broker=broker_settings(broker),
        ack_timeout_s=1.0,
        # Any free port: tests run side by side on one machine.
        screen=ScreenSettings(port=0),
        # One session per test: the simulated cuff measures once per connection.
        devices=[DeviceSettings(address=CUFF_ADDRESS, model="simulated", reconnect_interval_s=3600, idle_timeout_s=0.5)]
        if with_cuff
        else [],
    )


@asynccontextmanager
async def running_agent(
    settings: AgentSettings, backends: Mapping[str, type[BaseBleakClient]] | None = None, **hooks: Any
) -> AsyncIterator[Agent]:
    agent = Agent(settings, backends=backends, **hooks)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        while agent.outbox is None:
            if task.done():
                task.result()  # the agent failed to start: raise its error here
            await asyncio.sleep(0.01)
        yield agent
    finally:
        stop.set()
        await task


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """wait_until, for tests that are not async."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def settled(value: Callable[[], int], quiet_s: float = 2.0, timeout: float = 60.0) -> int:
    """`value` once it has stopped changing for `quiet_s`."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"still changing after {timeout} s (last {last})")


@dataclass
class HttpResponse:
    status: int
    body: Any


class ServedApp:
    """A FastAPI app served by a real uvicorn on a free loopback port, in a thread; requests
    carry `token` as a bearer token when given."""

    def __init__(self, app: FastAPI, token: str | None = None, port: int | None = None, *,
                 access_log: bool = False, tls: Issued | None = None) -> None:
        """`port`: one chosen before (free_port), when something must know the address first.
        `access_log`: uvicorn's access log at INFO, left to propagate to the root logger (no
        logging config of its own), where caplog reads it. `tls`: served over HTTPS with this
        certificate (tests/tls_material.py); `request` speaks plain HTTP, so it is for others to call."""
        self.token = token
        self.port = port or free_port()
        self._server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="info" if access_log else "warning",
            log_config=None if access_log else uvicorn.config.LOGGING_CONFIG,
            ssl_certfile=None if tls is None else str(tls.cert), ssl_keyfile=None if tls is None else str(tls.key),
        ))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def get(self, path: str, **params: Any) -> HttpResponse:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self.request("GET", path + (f"?{query}" if query else ""))

    def post(self, path: str, body: Any = None) -> HttpResponse:
        return self.request("POST", path, None if body is None else json.dumps(body).encode())

    def request(self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] | None = None) -> HttpResponse:
        auth = {"authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"content-type": "application/json", **auth, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return HttpResponse(response.status, _body(response.read(), response.headers.get("content-type")))
        except urllib.error.HTTPError as error:
            with error:
                return HttpResponse(error.code, _body(error.read(), error.headers.get("content-type")))


def _body(raw: bytes, content_type: str | None) -> Any:
    """JSON as data; an archive or a PDF as its bytes; anything else (metrics, an empty 204) as text."""
    if raw and content_type and content_type.startswith("application/json"):
        return json.loads(raw)
    if content_type and content_type.startswith(("application/gzip", "application/pdf")):
        return raw
    return raw.decode()
