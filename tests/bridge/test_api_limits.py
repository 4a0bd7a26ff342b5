"""The bridge's API refuses an oversized or deeply nested body before anything parses it, with
its usual JSON error, through a real uvicorn: declared too long, sent too long without a length
(chunked), or JSON nested past the limit."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud_bridge.accounts import AuditEntry
from cloud_bridge.alert_rules import AlertKind, Raise, Severity
from cloud_bridge.alerts import Alert, apply_signals
from cloud_bridge.api import create_app
from cloud_bridge.settings import DEVELOPMENT_SECRET
from runtime.http_limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth
from tests.support import ServedApp, api_token

RESOLVE = "/api/v1/alerts/1/resolve"


@pytest.fixture
def api(bridge_engine: Engine) -> Iterator[ServedApp]:
    token = api_token(bridge_engine, DEVELOPMENT_SECRET, "technician")
    with ServedApp(create_app(bridge_engine), token=token) as served:
        yield served


def nested(depth: int) -> bytes:
    return json.dumps({"note": "x"})[:-1].encode() + b', "deep": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_a_body_declared_over_the_limit_is_refused_unread(api: ServedApp) -> None:
    refused = api.request("POST", RESOLVE, b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert refused.status == 413
    assert refused.body == {"error": "payload_too_large", "reason": f"the body of {MAX_BODY_BYTES + 2} bytes exceeds {MAX_BODY_BYTES} bytes"}
    # At the limit it reaches the route (which says there is no such alert).
    fits = api.request("POST", RESOLVE, b'{"note": "' + b"n" * (MAX_BODY_BYTES - 12) + b'"}')
    assert fits.status in (404, 422) and fits.body["error"] != "payload_too_large"


def test_a_chunked_body_is_stopped_at_the_limit(api: ServedApp) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    chunks = (b"[" + b"0," * 4096 for _ in range(40))  # no Content-Length: 320 KiB in chunks
    connection.request("POST", RESOLVE, body=chunks, encode_chunked=True,
                       headers={"content-type": "application/json", "authorization": f"Bearer {api.token}"})
    response = connection.getresponse()
    body: dict[str, Any] = json.loads(response.read())
    connection.close()
    assert response.status == 413 and body == {"error": "payload_too_large", "reason": f"the body exceeds {MAX_BODY_BYTES} bytes"}


def test_json_nested_past_the_limit_is_refused_with_its_depth(api: ServedApp) -> None:
    for depth in (MAX_JSON_DEPTH + 1, 20_000):
        refused = api.request("POST", RESOLVE, nested(depth))
        assert refused.status == 422
        assert refused.body == {"error": "invalid_request",
                                "reason": f"the JSON body is nested {depth} levels deep, more than {MAX_JSON_DEPTH}"}
    # At the limit the body reaches the route, which answers for itself.
    at_limit = api.request("POST", RESOLVE, nested(MAX_JSON_DEPTH))
    assert at_limit.status in (404, 422) and "nested" not in at_limit.body["reason"], at_limit.body


def test_a_malformed_length_never_reaches_the_app(api: ServedApp) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    connection.putrequest("POST", RESOLVE)
    connection.putheader("content-length", "lots")
    connection.putheader("authorization", f"Bearer {api.token}")
    connection.endheaders()
    response = connection.getresponse()
    status = response.status
    response.read()
    connection.close()
    # uvicorn (h11) already refuses a Content-Length that is not a number, before the app.
    assert status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(codec="utf-8")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@given(json_values)
def test_the_depth_scan_agrees_with_a_parser(value: Any) -> None:
    """Brackets inside strings, escaped quotes and non-ASCII text do not fool the byte scan."""
    assert json_depth(json.dumps(value, ensure_ascii=False).encode()) == depth_of(value)


def test_a_nul_anywhere_in_a_request_is_refused_before_the_database_sees_it(api: ServedApp) -> None:
    """PostgreSQL's text cannot hold U+0000: a query comparing with one, or a login audited
    with one as the username, would end in a 500 (found by tests/bridge/test_api_fuzz.py)."""
    reason = "a NUL character (U+0000) in the request: no field may contain one"
    for response in (
        api.get("/api/v1/readings", site="a\x00b"),
        api.request("GET", "/api/v1/kiosks/a%00/b"),
        api.request("POST", "/api/v1/login", b'{"username": "\\u0000@", "password": "x"}'),
    ):
        assert response.status == 422 and response.body == {"error": "invalid_request", "reason": reason}
    # An escaped backslash before "u0000" is text, not NUL.
    assert api.request("POST", "/api/v1/login", b'{"username": "\\\\u0000", "password": "x"}').status == 401


NOT_UTF8 = ["utf-16-le", "utf-16-be", "utf-16", "utf-32-le", "utf-32-be", "utf-32", "utf-8-sig"]


@pytest.mark.parametrize("encoding", NOT_UTF8)
def test_a_json_body_not_in_utf8_is_refused_whatever_it_holds(bridge_engine: Engine, api: ServedApp, encoding: str) -> None:
    """Issue 16, finding 6: Python's JSON parser also reads UTF-16 and UTF-32 (and a UTF-8 BOM),
    where the NUL scan, reading UTF-8 bytes, saw no NUL: a login or an alert's note holding one
    was a 500 on PostgreSQL and stored on SQLite. JSON between systems is UTF-8 (RFC 8259,
    8.1): anything else is refused (400) before the app, so the one NUL scan sees every body."""
    with Session(bridge_engine) as session:
        [change] = apply_signals(session, [Raise(AlertKind.DEVICE_FAULT, Severity.WARNING, "test-site", "kiosk-1",
                                                 "unit-1", "a fault", "故障", datetime.now(UTC))])
        session.commit()
    alert_id = change.alert.id
    token, api.token = api.token, None  # a login needs no token
    login = api.request("POST", "/api/v1/login", '{"username": "\\u0000@", "password": "x"}'.encode(encoding))
    api.token = token
    note = api.request("POST", f"/api/v1/alerts/{alert_id}/acknowledge", '{"note": "fixed\\u0000"}'.encode(encoding))
    for answer in (login, note):
        assert answer.status == 400, answer
        assert answer.body["error"] == "invalid_request" and "UTF-8" in answer.body["reason"], answer.body
    with Session(bridge_engine) as session:
        assert session.exec(select(AuditEntry).where(col(AuditEntry.action) == "login")).all() == []
        alert = session.get(Alert, alert_id)
        assert alert is not None and (alert.state, alert.acknowledged_by) == ("open", None)
    # The same in UTF-8 is what the API takes.
    assert api.request("POST", f"/api/v1/alerts/{alert_id}/acknowledge", b'{"note": "fixed"}').status == 200


def test_a_json_body_is_scanned_whatever_its_json_content_type(api: ServedApp) -> None:
    """FastAPI parses as JSON a body whose media type is application/json in any case, or any
    application/…+json (and, without strict_content_type, one with none): the limits read each
    as JSON too. (http.client, since urllib adds a form Content-Type of its own.)"""
    for content_type in (None, "application/vnd.doorstep+json", "Application/JSON; charset=utf-8"):
        connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        connection.putrequest("POST", "/api/v1/login")
        body = b'{"username": "\\u0000@", "password": "x"}'
        connection.putheader("content-length", str(len(body)))
        if content_type is not None:
            connection.putheader("content-type", content_type)
        connection.endheaders(body)
        response = connection.getresponse()
        answer = json.loads(response.read())
        connection.close()
        assert response.status == 422 and "NUL" in answer["reason"], (content_type, response.status, answer)
