"""Only the kiosk's own page acts on the kiosk's local API (issue 16, finding 5), on a real agent
over its real socket: each request below is what a browser sends for a page of another origin
(or a rebound host name), byte for byte where it matters (Host, Origin, Sec-Fetch-Site,
Content-Type), and each is refused with its reason while a resident's measurement stays hers.
The browser itself sending them is in tests/browser/test_kiosk_same_origin.py."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_agent.settings import ScreenSettings
from edge_agent.store.local_audit import LocalAudit
from tests.kiosk_support import PIN, acall, kiosk_settings, origin_of, page_headers
from tests.support import running_agent, wait_until

CARD = "310101194501011234"


@dataclass
class Raw:
    status: int
    body: Any
    headers: dict[str, str]


def send(base_url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Raw:
    """Exactly these headers (Host included: http.client adds none of its own when one is
    given), to the screen's real socket."""
    parts = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if headers.get("content-type", "").startswith("text/event-stream"):
            return Raw(response.status, "(an event stream, served)", headers)  # it would never end
        data = response.read()
        is_json = headers.get("content-type", "").startswith("application/json")
        return Raw(response.status, json.loads(data) if is_json else data.decode(errors="replace"), headers)
    finally:
        connection.close()


async def asend(base_url: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Raw:
    return await asyncio.to_thread(send, base_url, method, path, headers, body)


@pytest.mark.asyncio
async def test_requests_from_another_origin_or_host_are_refused_and_the_residents_record_stays(
    tmp_path: Path, broker
) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url, port = agent.screen.url, agent.screen.port
        host = f"127.0.0.1:{port}"
        began = await acall(url, "POST", "/api/bp/begin", {"card_number": CARD})  # as the kiosk's page
        assert began.body == {"state": "waiting", "record": True}
        # Empty if the kiosk hands out no token (as before the fix): the cases still run and
        # each says what it was answered.
        token = (await asyncio.to_thread(page_headers, url)).get("x-page-token", "")
        # What a page at http://127.0.0.1:<another port> sends for the finding's
        # fetch(..., {method: 'POST', mode: 'no-cors'}): another port on loopback is the same
        # *site*, so Sec-Fetch-Site says same-site, not cross-site.
        other = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}"
        no_cors = {"Host": host, "Origin": other, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}
        json_type = {"Content-Type": "application/json"}
        begin_anonymous = json.dumps({"anonymous": True}).encode()
        cases: list[tuple[str, str, str, dict[str, str], bytes | None, int, str]] = [
            ("the finding's no-cors POST", "POST", "/api/bp/cancel", no_cors, None, 403, "not_same_origin"),
            ("a cross-site page", "POST", "/api/bp/cancel",
             {"Host": host, "Origin": "https://ads.example", "Sec-Fetch-Site": "cross-site", "X-Page-Token": token},
             None, 403, "not_same_origin"),
            # A browser without Sec-Fetch-* still names the page's origin on a POST.
            ("another site's Origin", "POST", "/api/bp/cancel",
             {"Host": host, "Origin": "https://ads.example", "X-Page-Token": token}, None, 403, "foreign_origin"),
            ("another port's Origin", "POST", "/api/bp/cancel",
             {"Host": host, "Origin": other, "X-Page-Token": token}, None, 403, "foreign_origin"),
            ("an opaque origin (data: or sandboxed page)", "POST", "/api/bp/cancel",
             {"Host": host, "Origin": "null", "X-Page-Token": token}, None, 403, "foreign_origin"),
            ("no page token", "POST", "/api/bp/cancel",
             {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}, None, 403, "no_page_token"),
            ("a wrong page token", "POST", "/api/bp/cancel",
             {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin", "X-Page-Token": token[:-2] + "xx"},
             None, 403, "wrong_page_token"),
            # A no-cors fetch with a body sends it as text/plain (a "simple" request: no preflight).
            ("a text/plain body", "POST", "/api/bp/begin",
             {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin", "X-Page-Token": token,
              "Content-Type": "text/plain;charset=UTF-8"}, begin_anonymous, 415, "json_only"),
            ("a form body", "POST", "/api/bp/begin",
             {"Host": host, "Origin": f"http://{host}", "X-Page-Token": token,
              "Content-Type": "application/x-www-form-urlencoded"}, b"anonymous=true", 415, "json_only"),
            ("a body with no type", "POST", "/api/bp/begin",
             {"Host": host, "Origin": f"http://{host}", "X-Page-Token": token}, begin_anonymous, 415, "json_only"),
            # DNS rebinding: the attacker's name now resolves to 127.0.0.1, so the browser calls
            # the page "same-origin" and sends its own Host: every request is refused, the page too.
            ("a rebound host name: the page", "GET", "/", {"Host": f"rebound.example:{port}"}, None, 421, "foreign_host"),
            ("a rebound host name: the API", "GET", "/api/screen",
             {"Host": f"rebound.example:{port}", "Sec-Fetch-Site": "same-origin"}, None, 421, "foreign_host"),
            ("a rebound host name: the events", "GET", "/api/bp/events", {"Host": f"rebound.example:{port}"}, None,
             421, "foreign_host"),
            ("a rebound host name: a POST", "POST", "/api/bp/cancel",
             {"Host": f"rebound.example:{port}", "Origin": f"http://rebound.example:{port}",
              "Sec-Fetch-Site": "same-origin", "X-Page-Token": token, **json_type}, None, 421, "foreign_host"),
            ("our name on another port", "GET", "/api/screen", {"Host": "127.0.0.1:1"}, None, 421, "foreign_host"),
            ("no Host at all", "GET", "/api/screen", {"Host": ""}, None, 400, "no_host"),
            # Reading, too: a subscription to who is measuring, from another origin's page.
            ("another origin subscribing to the desk", "GET", "/api/bp/events",
             {"Host": host, "Origin": other, "Sec-Fetch-Site": "same-site"}, None, 403, "not_same_origin"),
            ("another origin fetching the token", "GET", "/api/page-token",
             {"Host": host, "Origin": other, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}, None,
             403, "not_same_origin"),
            # GET /api/admin/status counts a wrong PIN: an <img> of another origin would lock admin.
            ("admin read with no page token", "GET", "/api/admin/status",
             {"Host": host, "X-Technician-Pin": PIN}, None, 403, "no_page_token"),
        ]
        wrong = []
        for what, method, path, headers, body, status, reason in cases:
            answer = await asend(url, method, path, headers, body)
            error = answer.body.get("error") if isinstance(answer.body, dict) else answer.body[:40]
            if (answer.status, error) != (status, reason):
                wrong.append(f"{what}: {method} {path} answered {answer.status} {error!r}, not {status} {reason!r}")
            elif not (isinstance(answer.body.get("reason"), str) and answer.body["reason"]):
                wrong.append(f"{what}: no reason in words: {answer.body}")
        assert not wrong, "\n".join(wrong)

        # She is still the one measuring, on her record; nobody tried the technician's PIN.
        assert agent.desk.snapshot() == {"state": "waiting", "record": True}
        assert agent.outbox is not None
        assert [e.action for e in LocalAudit(agent.outbox.database).entries()] == []
        # And the page's own requests still go through.
        cancelled = await acall(url, "POST", "/api/bp/cancel")
        assert cancelled.status == 200 and cancelled.body == {"state": "idle", "record": False}


@pytest.mark.asyncio
async def test_the_page_token_is_handed_only_to_the_kiosks_own_page(tmp_path: Path, broker) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url, host = agent.screen.url, f"127.0.0.1:{agent.screen.port}"
        # As Chromium fetches it for the kiosk's page, and as a technician's curl on the Pi does.
        for headers in ({"Host": host, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}, {"Host": host}):
            answer = await asend(url, "GET", "/api/page-token", headers)
            assert answer.status == 200 and len(answer.body["token"]) >= 40, answer.body
            # Never readable by another origin: no CORS header, and not kept by any cache.
            assert not any(name.startswith("access-control-") for name in answer.headers)
            assert answer.headers["cache-control"] == "no-store"
        # What another origin's page would get: nothing.
        for site in ("same-site", "cross-site"):
            refused = await asend(url, "GET", "/api/page-token", {"Host": host, "Sec-Fetch-Site": site})
            assert (refused.status, refused.body["error"]) == (403, "not_same_origin")
            assert "token" not in refused.body


@pytest.mark.asyncio
async def test_the_page_works_under_each_of_the_screens_own_host_names(tmp_path: Path, broker) -> None:
    settings = kiosk_settings(tmp_path, broker, screen={"allowed_hosts": ["Kiosk-1.local"]})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url, port = agent.screen.url, agent.screen.port
        token = (await asyncio.to_thread(page_headers, url)).get("x-page-token", "")
        for name in ("127.0.0.1", "localhost", "[::1]", "kiosk-1.local", "KIOSK-1.LOCAL"):
            host = f"{name}:{port}"
            page = await asend(url, "GET", "/", {"Host": host})
            assert page.status == 200, (host, page.status)
            # No other origin may frame it either (it would act for whoever draws over it).
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            began = await asend(url, "POST", "/api/bp/begin",
                                {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin",
                                 "X-Page-Token": token, "Content-Type": "application/json; charset=utf-8"},
                                json.dumps({"anonymous": True}).encode())
            assert (began.status, began.body) == (200, {"state": "waiting", "record": False}), (host, began.body)
        assert origin_of(url) == f"http://127.0.0.1:{port}"
        # A name that is not configured is not ours.
        other = await asend(url, "GET", "/", {"Host": f"kiosk-2.local:{port}"})
        assert other.status == 421 and other.body["error"] == "foreign_host", other


def test_a_configured_host_name_is_a_bare_name() -> None:
    assert ScreenSettings(allowed_hosts=["Kiosk-1.Local", "192.168.1.20", "[fe80::1]"]).allowed_hosts == [
        "kiosk-1.local", "192.168.1.20", "[fe80::1]"
    ]
    for bad in ("http://kiosk-1.local", "kiosk-1.local:8088", "kiosk 1", "", "*"):
        with pytest.raises(ValueError, match="a host name"):
            ScreenSettings(allowed_hosts=[bad])
