"""Enrolment codes through the bridge's API, on SQLite and PostgreSQL, with no broker behind it:
who may make them, what a list shows, cancelling, a bridge not set up or a broker away (the code
survives both), and the limit on guesses. The way through a real broker: tests/test_enrolment.py."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from nacl.public import PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session

from broker_admin.mosquitto import free_port
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.enrolment import BrokerAccounts, EnrolmentSettings, KioskBrokerSettings, create_code, spend_code
from contract.sealing import encode_key
from runtime.mqtt import BrokerSettings
from tests.support import ServedApp, api_token

SITE, KIOSK = "pudong-lujiazui", "kiosk-07"
KEY = encode_key(PrivateKey.generate().public_key)


def served(engine: Engine, role: str = "technician", site: str | None = None, **context: Any) -> ServedApp:
    bridge = BridgeContext(engine, **context)
    return ServedApp(create_app(engine, bridge), token=api_token(engine, bridge.secret_key, role, site))


def enrol(api: ServedApp, code: str) -> tuple[int, Any]:
    answer = api.post("/api/v1/enrol", {"code": code, "kiosk_public_key": KEY})
    return answer.status, answer.body


def test_technicians_make_codes_shown_once_and_may_cancel_them(bridge_engine: Engine) -> None:
    with served(bridge_engine, enrolment=EnrolmentSettings(code_hours=2)) as api:
        created = api.post("/api/v1/enrolment-codes", {"site": SITE, "kiosk": KIOSK})
        assert created.status == 201 and created.body["state"] == "open"
        assert created.body["expires_at"] != created.body["created_at"] and len(created.body["code"]) == 14  # XXXX-XXXX-XXXX
        listed = api.get("/api/v1/enrolment-codes").body
        assert listed["total"] == 1 and "code" not in listed["items"][0] and "code_hash" not in listed["items"][0]
        assert api.post("/api/v1/enrolment-codes", {"site": "Not A Slug", "kiosk": KIOSK}).status == 422
        code_id = created.body["id"]
        assert api.request("DELETE", f"/api/v1/enrolment-codes/{code_id}").status == 204
        assert api.get("/api/v1/enrolment-codes").body["items"][0]["state"] == "cancelled"
        assert enrol(api, created.body["code"]) == (403, {"error": "code_cancelled", "reason": (
            "this enrolment code was cancelled: ask the technician for a new one")})
        assert api.request("DELETE", "/api/v1/enrolment-codes/999").status == 404
        actions = [e["action"] for e in api.get("/api/v1/audit").body["items"]]
        assert actions == ["enrol", "enrolment_code_cancel", "enrolment_code_create"]
    for role, site in (("station_staff", SITE), ("doctor", SITE), ("read_only", None)):
        with served(bridge_engine, role, site) as other:
            assert other.post("/api/v1/enrolment-codes", {"site": SITE, "kiosk": KIOSK}).status == 403, role
            assert other.get("/api/v1/enrolment-codes").status == 403, role
            assert other.request("DELETE", f"/api/v1/kiosks/{SITE}/{KIOSK}/broker-account").status == 403, role


def test_a_bridge_that_cannot_enrol_says_so_and_the_code_survives(bridge_engine: Engine) -> None:
    with served(bridge_engine) as api:  # no enrolment.admin, no kiosk_broker
        code = api.post("/api/v1/enrolment-codes", {"site": SITE, "kiosk": KIOSK}).body["code"]
        status, body = enrol(api, code.lower().replace("-", " "))  # as a person might type it
        assert status == 503 and body["error"] == "enrolment_unavailable" and "enrolment.admin" in body["reason"]
        assert api.request("DELETE", f"/api/v1/kiosks/{SITE}/{KIOSK}/broker-account").status == 409
    away = BrokerSettings(port=free_port(), username="doorstep-admin", password="x" * 32)  # type: ignore[arg-type]
    with served(bridge_engine, broker_accounts=BrokerAccounts(away),
                enrolment=EnrolmentSettings(admin=away, kiosk_broker=KioskBrokerSettings(host="127.0.0.1"))) as api:
        status, body = enrol(api, code)
        assert status == 503 and body["error"] == "broker_unavailable" and "cannot reach the broker" in body["reason"]
        assert api.get("/api/v1/enrolment-codes").body["items"][0]["state"] == "open"  # given back
        assert api.request("DELETE", f"/api/v1/kiosks/{SITE}/{KIOSK}/broker-account").status == 503
        results = [(e["result"], e["detail"]["reason"]) for e in api.get("/api/v1/audit", action="enrol").body["items"]]
        assert results == [("failed", "broker_unavailable"), ("failed", "enrolment_unavailable")]


def test_guessing_is_limited_per_address_like_logins(bridge_engine: Engine) -> None:
    with served(bridge_engine) as api:
        code = api.post("/api/v1/enrolment-codes", {"site": SITE, "kiosk": KIOSK}).body["code"]
        answers = [enrol(api, f"WRONG-CODE-{n:04d}")[0] for n in range(5)]
        assert answers == [403] * 5
        status, body = enrol(api, code)  # the right code, but this address has had its five tries
        assert status == 429 and body["error"] == "too_many_attempts"
        assert enrol(api, "ANYTHING")[0] == 429


def test_an_expired_code_is_refused_by_the_bridges_clock(bridge_engine: Engine) -> None:
    now = [datetime.now(UTC)]
    with served(bridge_engine, clock=lambda: now[0]) as api:
        code = api.post("/api/v1/enrolment-codes", {"site": SITE, "kiosk": KIOSK, "hours": 24}).body["code"]
        now[0] += timedelta(hours=24)
        assert enrol(api, code)[1]["error"] == "code_expired"
        assert api.get("/api/v1/enrolment-codes").body["items"][0]["state"] == "expired"


def test_a_code_is_spent_once_however_many_kiosks_race_for_it(bridge_engine: Engine) -> None:
    """Two Pis typing the same code in the same second: the conditional UPDATE lets one win."""
    with Session(bridge_engine) as session:
        _code, row = create_code(session, "secret", site=SITE, kiosk=KIOSK, created_by="tech", now=datetime.now(UTC),
                                 lifetime=timedelta(hours=1))
        session.commit()
        code_id = row.id
    assert code_id is not None
    start = threading.Barrier(8)

    def spend(_: int) -> bool:
        with Session(bridge_engine) as session:
            start.wait()
            return spend_code(session, code_id, datetime.now(UTC), "127.0.0.1")

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(spend, range(8))) == [False] * 7 + [True]
