"""Every endpoint of the bridge's API against every role, through a real server: who may see
and do what, at which site. A route missing from the matrix fails the test, so a new endpoint
cannot arrive without its policy."""

from __future__ import annotations

import base64
import itertools
import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud_bridge import commands, rollouts
from cloud_bridge.support_bundles import SupportBundle
from cloud_bridge.access import Role
from cloud_bridge.accounts import AuditEntry, add_user
from cloud_bridge.alert_rules import AlertKind, AlertRules, Raise, Severity
from cloud_bridge.alerts import Alert, apply_signals
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.decode import Inbound
from cloud_bridge.releases import Release, bundle_path
from cloud_bridge.rollouts import TargetKind
from cloud_bridge.enrolment import create_code
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import DEVELOPMENT_SECRET
from contract.commands import CommandName
from contract.payloads import LaundryMachineEvent
from contract.status import KioskState
from tests.bridge.release_files import bundle_bytes
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure
from tests.support import ServedApp, api_token

HOME, AWAY = "test-site", "other-site"
NOW = datetime.now(UTC)
ROLES = ("technician", "station_staff", "doctor", "read_only", "anonymous")
PASSWORD = "a long enough password"
FOUND_RESIDENT = "ab" * 32  # a pseudonym with readings at each site


@dataclass
class World:
    engine: Engine
    api: ServedApp
    tokens: dict[str, str | None]
    health_alert: int
    home_alert: int
    away_alert: int
    home_command: str
    away_command: str
    bundle: str
    counter: Iterator[int]
    releases_dir: Path

    def fresh_release(self) -> str:
        """A stored release of a version of its own, with its file."""
        version = f"9.0.{next(self.counter)}"
        bundle_path(self.releases_dir, version).write_bytes(b"a bundle")
        with Session(self.engine) as session:
            session.add(Release(version=version, sha256="0" * 64, size_bytes=8, uploaded_by="someone", uploaded_at=NOW))
            session.commit()
        return version

    def fresh_rollout(self, *, paused: bool = False) -> int:
        """An active rollout (or a paused one) to kiosk-1 of the home site."""
        version = self.fresh_release()
        with Session(self.engine) as session:
            for other in session.exec(select(rollouts.Rollout).where(col(rollouts.Rollout.status).in_(["active", "paused"]))):
                rollouts.abort(session, other, by="someone", now=NOW)  # one unfinished rollout per kiosk
            rollout = rollouts.start(session, version=version, kind=TargetKind.KIOSKS, target={"kiosks": [f"{HOME}/kiosk-1"]},
                                     canaries=None, canary_percent=None, max_failure_share=0.1, by="someone", now=NOW)
            if paused:
                rollouts.pause(session, rollout, by="someone", now=NOW)
            session.commit()
            assert rollout.id is not None
            return rollout.id

    def fresh_alert(self, site: str) -> int:
        with Session(self.engine) as session:
            [change] = apply_signals(session, [Raise(AlertKind.DEVICE_FAULT, Severity.WARNING, site, "kiosk-1",
                                                     f"unit-{next(self.counter)}", "a fault", "故障", NOW)])
            session.commit()
        return change.alert.id

    def fresh_code(self) -> int:
        with Session(self.engine) as session:
            _code, row = create_code(session, DEVELOPMENT_SECRET, site=HOME, kiosk="kiosk-9", created_by="someone",
                                     now=NOW, lifetime=timedelta(hours=1))
            session.commit()
            assert row.id is not None
            return row.id

    def call(self, role: str, method: str, path: str, body: Any = None) -> int:
        self.api.token = self.tokens[role]
        if isinstance(body, bytes):  # a file: a release bundle
            return self.api.request(method, path, body, headers={"content-type": "application/x-tar"}).status
        data = None if body is None else json.dumps(body).encode()
        return self.api.request(method, path, data).status


@pytest.fixture
def world(bridge_engine: Engine, tmp_path: Path) -> Iterator[World]:
    for site in (HOME, AWAY):
        kiosk = WireKiosk(site=site)
        commit_gulp(bridge_engine, [kiosk.status(KioskState.ONLINE, NOW), kiosk.reading(blood_pressure(190, 100)),
                                    kiosk.reading(blood_pressure(130, 85, subject=FOUND_RESIDENT))],
                     rules=AlertRules(), notify=False, received_at=NOW)
    with Session(bridge_engine) as session:
        health = session.exec(select(Alert).where(Alert.site == HOME, Alert.kind == "dangerous_reading")).one().id
        ids = {}
        for site in (HOME, AWAY):
            row = commands.create(session, site=site, kiosk="kiosk-1", command=CommandName.PING, args={},
                                  issued_by="someone", now=NOW, ttl=timedelta(minutes=5))
            ids[site] = row.request_id
        asked = commands.create(session, site=HOME, kiosk="kiosk-1", command=CommandName.UPLOAD_SUPPORT_BUNDLE,
                                args={}, issued_by="someone", now=NOW, ttl=timedelta(minutes=5))
        session.add(SupportBundle(request_id=asked.request_id, site=HOME, kiosk="kiosk-1", requested_by="someone",
                                  requested_at=NOW, received_at=NOW, size_bytes=4, sha256="0" * 64,
                                  logs_truncated=False, manifest={}, content=b"\x1f\x8b.."))
        ids["bundle"] = asked.request_id
        add_user(session, username="login-user", role=Role.READ_ONLY, site=None, password=PASSWORD, now=NOW)
        session.commit()
    tokens: dict[str, str | None] = {
        "technician": api_token(bridge_engine, DEVELOPMENT_SECRET, "technician"),
        "station_staff": api_token(bridge_engine, DEVELOPMENT_SECRET, "station_staff", HOME),
        "doctor": api_token(bridge_engine, DEVELOPMENT_SECRET, "doctor", HOME),
        "read_only": api_token(bridge_engine, DEVELOPMENT_SECRET, "read_only"),
        "anonymous": None,
    }
    releases_dir = tmp_path / "releases"
    releases_dir.mkdir()
    context = BridgeContext(bridge_engine, secret_key=DEVELOPMENT_SECRET, releases_dir=releases_dir)
    with ServedApp(create_app(bridge_engine, context)) as api:
        counter = itertools.count()
        made = World(bridge_engine, api, tokens, health, 0, 0, ids[HOME], ids[AWAY], ids["bundle"], counter, releases_dir)
        made.home_alert, made.away_alert = made.fresh_alert(HOME), made.fresh_alert(AWAY)
        yield made


Call = Callable[[World], tuple[str, str, Any]]


def get(path: str) -> Call:
    return lambda w: ("GET", path.format(w=w), None)


def post(path: str, body: Any = None, fresh_alert: str | None = None) -> Call:
    def call(w: World) -> tuple[str, str, Any]:
        alert = w.fresh_alert(fresh_alert) if fresh_alert else None
        return "POST", path.format(w=w, alert=alert), body

    return call


def delete(path: str) -> Call:
    return lambda w: ("DELETE", path.format(w=w), None)


def put(path: str, body: Any) -> Call:
    return lambda w: ("PUT", path.format(w=w), body)


def upload_release(w: World) -> tuple[str, str, Any]:
    version = f"8.0.{next(w.counter)}"
    return "PUT", f"/api/v1/releases/{version}", bundle_bytes(version, wheel_bytes=100)


def on_rollout(action: str, *, paused: bool = False) -> Call:
    return lambda w: ("POST", f"/api/v1/rollouts/{w.fresh_rollout(paused=paused)}/{action}", None)


# (route, call, expected status for technician, station_staff@HOME, doctor@HOME, read_only, anonymous)
MATRIX: list[tuple[str, Call, tuple[int, int, int, int, int]]] = [
    ("GET /healthz", get("/healthz"), (200, 200, 200, 200, 200)),
    ("GET /metrics", get("/metrics"), (200, 403, 403, 200, 401)),
    ("POST /api/v1/login", post("/api/v1/login", {"username": "login-user", "password": PASSWORD}), (200,) * 5),
    ("POST /api/v1/logout", post("/api/v1/logout"), (204, 204, 204, 204, 401)),
    ("GET /api/v1/me", get("/api/v1/me"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/audit", get("/api/v1/audit"), (200, 403, 403, 403, 401)),
    ("GET /api/v1/readings", get("/api/v1/readings"), (403, 403, 200, 403, 401)),
    ("GET /api/v1/readings", get(f"/api/v1/readings?site={AWAY}"), (403, 403, 403, 403, 401)),
    ("GET /api/v1/events", get("/api/v1/events"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/events", get(f"/api/v1/events?site={AWAY}"), (200, 403, 403, 200, 401)),
    ("GET /api/v1/telemetry", get(f"/api/v1/telemetry?site={AWAY}"), (200, 403, 403, 200, 401)),
    ("GET /api/v1/command_results", get(f"/api/v1/command_results?site={HOME}"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/dead_letters", get("/api/v1/dead_letters"), (200, 403, 403, 403, 401)),
    ("GET /api/v1/kiosks", get("/api/v1/kiosks"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/kiosks", get(f"/api/v1/kiosks?site={AWAY}"), (200, 403, 403, 200, 401)),
    ("GET /api/v1/kiosks/{site}/{kiosk}", get(f"/api/v1/kiosks/{HOME}/kiosk-1"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/kiosks/{site}/{kiosk}", get(f"/api/v1/kiosks/{AWAY}/kiosk-1"), (200, 403, 403, 200, 401)),
    ("GET /api/v1/devices", get(f"/api/v1/devices?site={AWAY}"), (200, 403, 403, 200, 401)),
    ("GET /api/v1/bridge", get("/api/v1/bridge"), (200, 200, 200, 200, 401)),
    ("DELETE /api/v1/kiosks/{site}/{kiosk}", delete(f"/api/v1/kiosks/{HOME}/kiosk-1"), (204, 403, 403, 403, 401)),
    # Fleet configuration: read as the fleet is read, changed by technicians alone.
    ("GET /api/v1/sites/{site}/config", get(f"/api/v1/sites/{HOME}/config"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/sites/{site}/config", get(f"/api/v1/sites/{AWAY}/config"), (200, 403, 403, 200, 401)),
    ("PUT /api/v1/sites/{site}/config", put(f"/api/v1/sites/{HOME}/config", {"screen": {"language": "en"}}),
     (200, 403, 403, 403, 401)),
    ("GET /api/v1/kiosks/{site}/{kiosk}/config", get(f"/api/v1/kiosks/{HOME}/kiosk-1/config"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/kiosks/{site}/{kiosk}/config", get(f"/api/v1/kiosks/{AWAY}/kiosk-1/config"), (200, 403, 403, 200, 401)),
    ("PUT /api/v1/kiosks/{site}/{kiosk}/config",
     put(f"/api/v1/kiosks/{HOME}/kiosk-1/config", {"screen": {"language": "en"}}), (200, 403, 403, 403, 401)),
    ("GET /api/v1/alerts", get("/api/v1/alerts"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/alerts/{alert_id}", get("/api/v1/alerts/{w.health_alert}"), (404, 404, 200, 404, 401)),
    ("GET /api/v1/alerts/{alert_id}", get("/api/v1/alerts/{w.away_alert}"), (200, 404, 404, 200, 401)),
    ("POST /api/v1/alerts/{alert_id}/acknowledge", post("/api/v1/alerts/{alert}/acknowledge", fresh_alert=HOME),
     (200, 200, 200, 403, 401)),
    ("POST /api/v1/alerts/{alert_id}/acknowledge", post("/api/v1/alerts/{alert}/acknowledge", fresh_alert=AWAY),
     (200, 404, 404, 403, 401)),
    ("POST /api/v1/alerts/{alert_id}/resolve", post("/api/v1/alerts/{alert}/resolve", fresh_alert=HOME),
     (200, 200, 200, 403, 401)),
    ("POST /api/v1/alerts/{alert_id}/resolve", post("/api/v1/alerts/{w.health_alert}/resolve"), (404, 404, 200, 403, 401)),
    ("POST /api/v1/kiosks/{site}/{kiosk}/commands", post(f"/api/v1/kiosks/{HOME}/kiosk-1/commands", {"command": "ping"}),
     (201, 201, 403, 403, 401)),
    ("POST /api/v1/kiosks/{site}/{kiosk}/commands", post(f"/api/v1/kiosks/{AWAY}/kiosk-1/commands", {"command": "ping"}),
     (201, 403, 403, 403, 401)),
    ("GET /api/v1/commands", get("/api/v1/commands"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/commands/{request_id}", get("/api/v1/commands/{w.home_command}"), (200, 200, 200, 200, 401)),
    ("GET /api/v1/commands/{request_id}", get("/api/v1/commands/{w.away_command}"), (200, 404, 404, 200, 401)),
    # Enrolment and revocation: technicians'; the kiosk's own call needs no token (the code is its credential).
    ("POST /api/v1/enrolment-codes", post("/api/v1/enrolment-codes", {"site": HOME, "kiosk": "kiosk-9"}),
     (201, 403, 403, 403, 401)),
    ("GET /api/v1/enrolment-codes", get("/api/v1/enrolment-codes"), (200, 403, 403, 403, 401)),
    ("DELETE /api/v1/enrolment-codes/{code_id}", lambda w: ("DELETE", f"/api/v1/enrolment-codes/{w.fresh_code()}", None),
     (204, 403, 403, 403, 401)),
    ("POST /api/v1/enrol", post("/api/v1/enrol", {"code": "NOT-A-CODE", "kiosk_public_key": "A" * 43 + "="}),
     (403, 403, 403, 403, 403)),
    # 409: this test's bridge holds no broker admin (enrolment.admin).
    ("DELETE /api/v1/kiosks/{site}/{kiosk}/broker-account", delete(f"/api/v1/kiosks/{HOME}/kiosk-1/broker-account"),
     (409, 403, 403, 403, 401)),
    # A kiosk's logs and configuration: technicians only, not station staff who may command it.
    ("GET /api/v1/kiosks/{site}/{kiosk}/support-bundles", get(f"/api/v1/kiosks/{HOME}/kiosk-1/support-bundles"),
     (200, 403, 403, 403, 401)),
    ("GET /api/v1/support-bundles/{request_id}/download", get("/api/v1/support-bundles/{w.bundle}/download"),
     (200, 403, 403, 403, 401)),
    # Residents (issue 21): found by card or QR code by doctors and station staff of their site;
    # their averages and report by doctors only. Another site's code is "not found", not forbidden.
    ("POST /api/v1/residents/lookup", post("/api/v1/residents/lookup", {"card_or_code": f"DOORSTEP-R1:{HOME}:{FOUND_RESIDENT}"}),
     (403, 200, 200, 403, 401)),
    ("POST /api/v1/residents/lookup", post("/api/v1/residents/lookup", {"card_or_code": f"DOORSTEP-R1:{AWAY}:{FOUND_RESIDENT}"}),
     (403, 404, 404, 403, 401)),
    ("GET /api/v1/residents", get("/api/v1/residents"), (403, 403, 200, 403, 401)),
    ("GET /api/v1/residents", get(f"/api/v1/residents?site={AWAY}"), (403, 403, 403, 403, 401)),
    ("GET /api/v1/residents/{site}/{pseudonym}", get(f"/api/v1/residents/{HOME}/{FOUND_RESIDENT}"), (403, 403, 200, 403, 401)),
    ("GET /api/v1/residents/{site}/{pseudonym}", get(f"/api/v1/residents/{AWAY}/{FOUND_RESIDENT}"), (403, 403, 403, 403, 401)),
    ("GET /api/v1/residents/{site}/{pseudonym}/report.pdf", get(f"/api/v1/residents/{HOME}/{FOUND_RESIDENT}/report.pdf"),
     (403, 403, 200, 403, 401)),
    ("GET /api/v1/residents/{site}/{pseudonym}/report.pdf", get(f"/api/v1/residents/{AWAY}/{FOUND_RESIDENT}/report.pdf"),
     (403, 403, 403, 403, 401)),
    # Configuration only (refresh period, blood-pressure bands): anyone logged in.
    ("GET /api/v1/dashboard/settings", get("/api/v1/dashboard/settings"), (200, 200, 200, 200, 401)),
    # FHIR for doctors' systems: health data, so a doctor's and their own site's only (404: none here by that id).
    ("GET /fhir/Observation", get("/fhir/Observation"), (403, 403, 200, 403, 401)),
    ("GET /fhir/Patient/{patient_id}", get("/fhir/Patient/" + "a" * 64), (403, 403, 404, 403, 401)),
    ("GET /fhir/Device/{device_id}", get(f"/fhir/Device/{HOME}.phd-0"), (403, 403, 404, 403, 401)),
    ("GET /fhir/$export", get("/fhir/$export"), (403, 403, 200, 403, 401)),
    ("GET /fhir/$export", get(f"/fhir/$export?site={AWAY}"), (403, 403, 403, 403, 401)),
    # Software updates: releases and rollouts span sites, so they are changed by technicians and
    # read by those who read every site. A bundle is for any kiosk, with no token
    # (cloud_bridge/api/releases.py says why that is safe).
    ("PUT /api/v1/releases/{version}", upload_release, (201, 403, 403, 403, 401)),
    ("GET /api/v1/releases", get("/api/v1/releases"), (200, 403, 403, 200, 401)),
    ("DELETE /api/v1/releases/{version}", lambda w: ("DELETE", f"/api/v1/releases/{w.fresh_release()}", None),
     (204, 403, 403, 403, 401)),
    ("GET /api/v1/releases/{version}/bundle", lambda w: ("GET", f"/api/v1/releases/{w.fresh_release()}/bundle", None),
     (200, 200, 200, 200, 200)),
    ("POST /api/v1/rollouts", lambda w: ("POST", "/api/v1/rollouts", {"version": w.fresh_release(), "site": AWAY}),
     (201, 403, 403, 403, 401)),
    ("GET /api/v1/rollouts", get("/api/v1/rollouts"), (200, 403, 403, 200, 401)),
    ("GET /api/v1/rollouts/{rollout_id}", lambda w: ("GET", f"/api/v1/rollouts/{w.fresh_rollout()}", None),
     (200, 403, 403, 200, 401)),
    ("GET /api/v1/rollouts/{rollout_id}/kiosks", lambda w: ("GET", f"/api/v1/rollouts/{w.fresh_rollout()}/kiosks", None),
     (200, 403, 403, 200, 401)),
    ("POST /api/v1/rollouts/{rollout_id}/pause", on_rollout("pause"), (200, 403, 403, 403, 401)),
    ("POST /api/v1/rollouts/{rollout_id}/resume", on_rollout("resume", paused=True), (200, 403, 403, 403, 401)),
    ("POST /api/v1/rollouts/{rollout_id}/abort", on_rollout("abort"), (200, 403, 403, 403, 401)),
]


def test_the_matrix_covers_every_route(bridge_engine: Engine) -> None:
    # Every operation the API documents (the documentation itself: test_the_api_description_needs_a_token).
    paths = create_app(bridge_engine).openapi()["paths"]
    routes = {f"{method.upper()} {path}" for path, operations in paths.items() for method in operations}
    assert routes == {route for route, _, _ in MATRIX}


@pytest.mark.parametrize(("route", "call", "expected"), MATRIX, ids=[f"{r}#{i}" for i, (r, _, _) in enumerate(MATRIX)])
def test_every_route_for_every_role(world: World, route: str, call: Call, expected: tuple[int, ...]) -> None:
    if route == "POST /api/v1/logout":  # it ends the token: each role logs out with one of its own
        for role in ROLES[:-1]:
            world.tokens[role] = api_token(world.engine, DEVELOPMENT_SECRET, role, HOME if role in ("station_staff", "doctor") else None)
    got = {}
    for role in ROLES:
        method, path, body = call(world)
        got[role] = world.call(role, method, path, body)
    assert got == dict(zip(ROLES, expected, strict=True))


def visible_alert_kinds(world: World, role: str) -> set[tuple[str, str]]:
    world.api.token = world.tokens[role]
    return {(a["site"], a["kind"]) for a in world.api.get("/api/v1/alerts").body["items"]}


def test_what_each_role_sees_in_the_lists(world: World) -> None:
    assert visible_alert_kinds(world, "technician") == {(HOME, "device_fault"), (AWAY, "device_fault")}
    assert visible_alert_kinds(world, "station_staff") == {(HOME, "device_fault")}
    assert visible_alert_kinds(world, "doctor") == {(HOME, "device_fault"), (HOME, "dangerous_reading")}
    # Open alerts are counted per kiosk as each role sees them: a dangerous reading is not
    # in a technician's count, or the count would tell what the list does not.
    def home_open_alerts(role: str) -> int:
        world.api.token = world.tokens[role]
        [home] = [k for k in world.api.get("/api/v1/kiosks").body["items"] if k["site"] == HOME]
        assert world.api.get(f"/api/v1/kiosks/{HOME}/kiosk-1").body["open_alerts"] == home["open_alerts"]
        return int(home["open_alerts"])

    assert {role: home_open_alerts(role) for role in ROLES[:-1]} == {
        "technician": 1, "station_staff": 1, "doctor": 2, "read_only": 1}
    world.api.token = world.tokens["station_staff"]
    assert {k["site"] for k in world.api.get("/api/v1/kiosks").body["items"]} == {HOME}
    world.api.token = world.tokens["doctor"]
    assert {r["site"] for r in world.api.get("/api/v1/readings").body["items"]} == {HOME}


def test_a_logged_out_or_unknown_token_is_refused_as_json(world: World) -> None:
    world.api.token = "not-a-token"
    refused = world.api.get("/api/v1/kiosks")
    assert refused.status == 401 and refused.body["error"] == "unauthenticated"
    world.api.token = world.tokens["technician"]
    assert world.api.post("/api/v1/logout").status == 204
    assert world.api.get("/api/v1/kiosks").status == 401


def test_logins_are_audited_and_five_wrong_passwords_lock_the_username_out(world: World) -> None:
    world.api.token = None
    for _ in range(5):
        assert world.api.post("/api/v1/login", {"username": "login-user", "password": "wrong"}).status == 401
    assert world.api.post("/api/v1/login", {"username": "login-user", "password": PASSWORD}).status == 401
    assert world.api.post("/api/v1/login", {"username": "nobody", "password": PASSWORD}).status == 401
    with Session(world.engine) as session:
        entries = [(e.actor, e.action, e.result) for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert entries.count(("login-user", "login", "refused")) == 6 and ("nobody", "login", "refused") in entries


def test_commands_are_audited_with_who_what_and_the_result(world: World) -> None:
    world.api.token = world.tokens["station_staff"]
    assert world.api.post(f"/api/v1/kiosks/{HOME}/kiosk-1/commands", {"command": "laundry_stop", "args": {"unit": 3}}).status == 201
    assert world.api.post(f"/api/v1/kiosks/{AWAY}/kiosk-1/commands", {"command": "ping"}).status == 403
    assert world.api.post(f"/api/v1/kiosks/{HOME}/kiosk-1/commands", {"command": "laundry_stop", "args": {}}).status == 422
    world.api.token = world.tokens["technician"]
    audit = world.api.get("/api/v1/audit", action="command").body["items"]
    assert [(a["actor"], a["target"], a["result"], a["detail"]["command"]) for a in reversed(audit)] == [
        ("station-staff-test-site", f"{HOME}/kiosk-1", "ok", "laundry_stop"),
        ("station-staff-test-site", f"{AWAY}/kiosk-1", "refused", "ping"),
        ("station-staff-test-site", f"{HOME}/kiosk-1", "refused", "laundry_stop"),
    ]
    assert audit[-1]["client"] == "127.0.0.1"


def test_the_dashboards_pages_need_no_token_and_hold_no_data(world: World) -> None:
    """The pages load before anyone logs in (the login page is one of them); what they show
    comes from the API, which wants the token. They are told to the browser as private and
    closed to other origins (cloud_bridge/dashboard/headers.py)."""
    base = f"http://127.0.0.1:{world.api.port}"
    with urllib.request.urlopen(f"{base}/", timeout=10) as index:  # "/" sends a person to the dashboard
        assert index.url == f"{base}/dashboard/" and index.status == 200
        html = index.read().decode()
        policy = index.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert index.headers["referrer-policy"] == "no-referrer"
    assert HOME not in html and "kiosk-1" not in html
    for asset in ("/dashboard/js/app.js", "/dashboard/dashboard.css"):
        with urllib.request.urlopen(base + asset, timeout=10) as response:
            assert response.status == 200 and response.headers["x-content-type-options"] == "nosniff"
    world.api.token = None
    assert world.api.get("/api/v1/kiosks").status == 401
    world.api.token = world.tokens["doctor"]
    with urllib.request.urlopen(urllib.request.Request(
            f"{base}/api/v1/readings", headers={"authorization": f"Bearer {world.tokens['doctor']}"}), timeout=10) as data:
        assert data.headers["cache-control"] == "no-store"  # no resident's reading left in a browser's cache


RESIDENT = "5d41402abc4b2a76b9719d911017c5925d41402abc4b2a76b9719d911017c592"


def with_unknown_field(message: Inbound) -> Inbound:
    """The message with one field the contract does not know in its payload: refused, kept."""
    envelope = json.loads(message.body)
    envelope["payload"]["colour"] = "blue"
    return Inbound(message.topic, json.dumps(envelope).encode())


def test_a_technician_sees_why_health_messages_were_refused_but_not_their_bytes(world: World) -> None:
    """Issue 16, finding 4: a kiosk without payload_public_key sends readings in clear; one that
    breaks the contract was shown to technicians whole, pseudonym and pressures included. A
    dead letter whose bytes may hold a resident's data — a reading, a batch, a topic outside the
    contract — keeps its bytes from anyone who may not read that site's readings."""
    kiosk = WireKiosk(site=HOME, kiosk="kiosk-7")
    reading = with_unknown_field(kiosk.reading(blood_pressure(203, 121, subject=RESIDENT)))
    in_a_batch = kiosk.batch(with_unknown_field(kiosk.reading(blood_pressure(203, 121, subject=RESIDENT))))
    misfiled = Inbound(f"doorstep/v1/{HOME}/kiosk-7/readingz/blood_pressure", reading.body)
    event = with_unknown_field(kiosk.machine(LaundryMachineEvent(unit=3, state="fault", link="online", error_code=7)))
    commit_gulp(world.engine, [reading, in_a_batch, misfiled, event], rules=AlertRules(), notify=False, received_at=NOW)

    world.api.token = world.tokens["technician"]
    answer = world.api.get("/api/v1/dead_letters")
    assert answer.status == 200
    letters = {letter["topic"]: letter for letter in answer.body["items"]}
    assert set(letters) == {f"doorstep/v1/{HOME}/kiosk-7/readings/blood_pressure", misfiled.topic,
                            f"doorstep/v1/{HOME}/kiosk-7/events/laundry_machine"}
    assert len(answer.body["items"]) == 4  # the reading alone and the one in the batch share a topic
    text = json.dumps(answer.body)
    assert RESIDENT not in text
    shown = [base64.b64decode(letter["raw_base64"]) for letter in answer.body["items"] if letter["raw_base64"]]
    assert shown and not any(RESIDENT.encode() in raw or b"203" in raw for raw in shown)
    for letter in answer.body["items"]:
        # What a technician needs to fix the kiosk: why, where, which kiosk, when, how big.
        assert (letter["site"], letter["kiosk"]) == (HOME, "kiosk-7")
        assert letter["reason"] and letter["received_at"] and letter["raw_size"] > 0
        if "/events/" in letter["topic"]:
            assert base64.b64decode(letter["raw_base64"]) == event.body  # not health data: shown
        else:
            assert letter["raw_base64"] is None, letter
    schema = create_app(world.engine).openapi()["components"]["schemas"]["DeadLetterPublic"]
    assert "null" in json.dumps(schema["properties"]["raw_base64"]) and "readings" in schema["properties"]["raw_base64"]["description"]


def test_the_api_description_needs_a_token(world: World) -> None:
    """Issue 16, finding 7: /openapi.json and /docs answered anyone, against this page's rule
    that every path but /healthz needs a token. Any role may read them; FastAPI's /redoc is gone."""
    for path in ("/openapi.json", "/docs", "/redoc"):
        world.api.token = None
        refused = world.api.get(path)
        assert refused.status in (401, 404), (path, refused)
        assert refused.body["error"] in ("unauthenticated", "not_found"), (path, refused.body)
        for role in ROLES[:-1]:
            world.api.token = world.tokens[role]
            assert world.api.get(path).status == (404 if path == "/redoc" else 200), (path, role)
    world.api.token = None
    assert world.api.get("/openapi.json").status == 401 and world.api.get("/docs").status == 401
    world.api.token = world.tokens["read_only"]
    document = world.api.get("/openapi.json").body
    assert "/api/v1/readings" in document["paths"] and "/openapi.json" not in document["paths"]
    assert "swagger-ui" in world.api.get("/docs").body
