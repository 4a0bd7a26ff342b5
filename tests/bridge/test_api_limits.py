"""The bridge's API refuses an oversized or deeply nested body before anything parses it, with
its usual JSON error, through a real uvicorn: declared too long, sent too long without a length
(chunked), or JSON nested past the limit."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from cloud_bridge.api import create_app
from doorstep.http_limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth
from cloud_bridge.settings import DEVELOPMENT_SECRET
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
