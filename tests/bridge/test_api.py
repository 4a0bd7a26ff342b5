"""The bridge's API answers every bad request with JSON that names the problem, pages every
list, and documents itself in OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import create_app
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import DEVELOPMENT_SECRET
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure
from tests.support import ServedApp, api_token


def test_bad_requests_are_clear_json(bridge_engine: Engine) -> None:
    with ServedApp(create_app(bridge_engine), token=api_token(bridge_engine, DEVELOPMENT_SECRET, "doctor", "test-site")) as api:
        too_many = api.get("/api/v1/readings", limit=10_000)
        assert too_many.status == 422
        assert too_many.body["error"] == "invalid_request"
        assert too_many.body["reason"].startswith("query.limit: Input should be less than or equal to 500")
        assert api.get("/api/v1/readings", since="yesterday").body["problems"][0]["field"] == "query.since"
        assert api.get("/api/v1/nothing-here").body == {"error": "not_found", "reason": "Not Found"}
        assert api.get("/api/v1/alerts/abc").status == 422
        not_json = api.request("POST", "/api/v1/alerts/1/resolve", b"{nope")
        assert not_json.status == 422 and not_json.body["error"] == "invalid_request"
        assert api.post("/api/v1/alerts/1/resolve").body == {"error": "not_found", "reason": "no alert 1"}


def test_lists_are_pages_newest_first(bridge_engine: Engine) -> None:
    kiosk = WireKiosk()
    commit_gulp(bridge_engine, [kiosk.reading(blood_pressure(100 + n, 70)) for n in range(7)], rules=AlertRules(),
                 notify=False, received_at=datetime.now(UTC))
    with ServedApp(create_app(bridge_engine), token=api_token(bridge_engine, DEVELOPMENT_SECRET, "doctor", "test-site")) as api:
        first = api.get("/api/v1/readings", limit=3).body
        second = api.get("/api/v1/readings", limit=3, offset=3).body
        assert (first["total"], len(first["items"]), len(second["items"])) == (7, 3, 3)
        seqs = [r["seq"] for r in first["items"] + second["items"]]
        assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 6


def test_the_openapi_document_covers_every_resource(bridge_engine: Engine) -> None:
    paths = set(create_app(bridge_engine).openapi()["paths"])
    assert {
        "/healthz", "/metrics", "/api/v1/readings", "/api/v1/events", "/api/v1/telemetry", "/api/v1/command_results",
        "/api/v1/dead_letters", "/api/v1/kiosks", "/api/v1/kiosks/{site}/{kiosk}", "/api/v1/devices",
        "/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/alerts/{alert_id}/resolve", "/api/v1/kiosks/{site}/{kiosk}/commands", "/api/v1/commands",
        "/api/v1/commands/{request_id}",
    } <= paths


def test_every_command_has_its_argument_rules() -> None:
    from contract.commands import COMMAND_ARGS, CommandName

    assert set(COMMAND_ARGS) == set(CommandName)
