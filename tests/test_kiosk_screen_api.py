"""The kiosk screen's local API, on a real agent with no network: it starts offline, listens on
loopback, puts a reading on the record of the resident who identified (and on nobody else's),
keeps admin behind the PIN, limits identity look-ups, and answers bad input with a reason."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker_admin.mosquitto import MosquittoProcess
from contract.envelope import Envelope
from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.simulated import simulated_backend
from edge_agent.agent import Agent
from edge_agent.screen.speech import spoken
from edge_agent.settings import AgentSettings
from edge_agent.store.local_audit import LocalAudit
from edge_agent.store.outbox import RecordState
from tests.kiosk_support import PIN, PSEUDONYMS, ButtonCuff, acall, button_cuff, kiosk_settings, page_headers
from tests.support import CUFF_ADDRESS, running_agent, wait_until

CARD = "310101194501011234"
NORMAL = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG, systolic=118.0, diastolic=76.0, mean_arterial_pressure=90.0
)


def saved_readings(agent) -> list[dict]:  # type: ignore[no-untyped-def]
    records = [r for r in agent.outbox.due(1000) if "/readings/" in r.topic]
    return [Envelope.model_validate_json(r.body).payload for r in records]


def bodies(agent) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [r.body for r in agent.outbox.due(1000)]


@pytest.mark.asyncio
async def test_with_the_network_down_the_screen_serves_on_loopback_and_a_reading_goes_on_the_identified_record(
    tmp_path: Path, broker
) -> None:
    cuff = button_cuff()
    settings = kiosk_settings(tmp_path, broker)  # the broker is never started: no network
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        assert url.startswith("http://127.0.0.1:")
        screen = await acall(url, "GET", "/api/screen")
        assert screen.status == 200 and screen.body["language"] == "zh-CN" and screen.body["health"] is True
        page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        assert "量血压" in page

        began = await acall(url, "POST", "/api/bp/begin", {"card_number": "3101-0119 4501011234"})
        assert began.status == 200 and began.body == {"state": "waiting", "record": True}
        cuff.press_start()
        await wait_until(lambda: len(saved_readings(agent)) == 1, what="the reading saved")
        [reading] = saved_readings(agent)
        assert reading["subject"] == PSEUDONYMS.of_card(CARD)
        assert (reading["systolic"], reading["diastolic"], reading["status"]) == (148.0, 92.0, ["body_movement"])
        # Forgotten after her result: the desk hears of the save just after the outbox has it.
        await wait_until(lambda: agent.desk.snapshot()["state"] == "idle", what="the desk forgetting her")

        # The next person did not identify: their reading is on nobody's record.
        cuff.measurements = [NORMAL]
        cuff.press_start()
        await wait_until(lambda: len(saved_readings(agent)) == 2, what="a second reading")
        assert saved_readings(agent)[1]["subject"] is None
        assert not any(CARD.encode() in body for body in bodies(agent))


@pytest.mark.asyncio
async def test_a_resident_who_identified_and_walked_away_is_forgotten(tmp_path: Path, broker) -> None:
    cuff = button_cuff()
    settings = kiosk_settings(tmp_path, broker, screen={"measure_timeout_s": 0.5})
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        await acall(agent.screen.url, "POST", "/api/bp/begin", {"card_number": CARD})
        await asyncio.sleep(0.8)
        cuff.press_start()
        await wait_until(lambda: len(saved_readings(agent)) == 1, what="the reading saved")
        assert saved_readings(agent)[0]["subject"] is None


@pytest.mark.asyncio
async def test_admin_endpoints_want_the_technicians_pin_and_lock_after_wrong_ones(tmp_path: Path, broker) -> None:
    settings = kiosk_settings(tmp_path, broker, screen={"pin_attempts": 3, "pin_lockout_s": 60})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        assert (await acall(url, "GET", "/api/admin/status")).body["error"] == "wrong_pin"
        right = await acall(url, "GET", "/api/admin/status", headers={"x-technician-pin": PIN})
        assert right.status == 200 and right.body["kiosk"] == settings.kiosk and right.body["uplink_connected"] is False
        answers = [await acall(url, "GET", "/api/admin/status", headers={"x-technician-pin": "000000"}) for _ in range(3)]
        assert [a.status for a in answers] == [401, 401, 429]
        locked = await acall(url, "GET", "/api/admin/status", headers={"x-technician-pin": PIN})
        assert locked.status == 429 and locked.body["error"] == "pin_locked" and int(locked.headers["retry-after"]) > 0
        assert agent.outbox is not None
        # Every use of the PIN, let in or not, is in the kiosk's own audit log.
        log = [(e.action, e.result) for e in reversed(LocalAudit(agent.outbox.database).entries())]
        assert log == [("technician_pin", "wrong_pin"), ("technician_pin", "ok"), ("technician_pin", "wrong_pin"),
                       ("technician_pin", "wrong_pin"), ("technician_pin", "pin_locked"), ("technician_pin", "pin_locked")]


@pytest.mark.asyncio
async def test_without_a_pin_configured_admin_is_closed(tmp_path: Path, broker) -> None:
    settings = kiosk_settings(tmp_path, broker)
    settings = settings.model_copy(update={"screen": settings.screen.model_copy(update={"technician_pin": None})})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        answer = await acall(agent.screen.url, "GET", "/api/admin/status", headers={"x-technician-pin": PIN})
        assert answer.status == 403 and answer.body["error"] == "admin_disabled"


@pytest.mark.asyncio
async def test_identity_look_ups_are_rate_limited(tmp_path: Path, broker) -> None:
    settings = kiosk_settings(tmp_path, broker, screen={"identify_per_minute": 3})
    async with running_agent(settings) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        answers = [await acall(url, "POST", "/api/relay/checkout", {"phone_last4": f"{n:04d}"}) for n in range(4)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        assert answers[3].body["error"] == "too_many_tries" and 0 < answers[3].body["retry_after_s"] <= 60
        # Measuring without a record looks nobody up, so it is never refused.
        assert (await acall(url, "POST", "/api/bp/begin", {"anonymous": True})).status == 200


@pytest.mark.asyncio
async def test_bad_requests_get_a_reason_never_a_crash(tmp_path: Path, broker) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        cases = [
            ("POST", "/api/bp/begin", {"card_number": "12"}, 422, "bad_card_number"),
            ("POST", "/api/bp/begin", {"card_number": "ABC 12345 €"}, 422, "bad_card_number"),
            ("POST", "/api/bp/begin", {}, 422, "bad_request"),
            ("POST", "/api/bp/begin", {"card_number": CARD, "anonymous": True}, 422, "bad_request"),
            ("POST", "/api/bp/begin", {"card_number": "9" * 5000}, 422, "bad_request"),
            ("POST", "/api/relay/checkin", {"phone_last4": "12a4"}, 422, "bad_phone_digits"),
            ("POST", "/api/relay/checkin", {"qr": "\x00\x01"}, 422, "bad_qr_code"),
            ("POST", "/api/relay/checkin", {"phone_last4": "1234", "qr": "x"}, 422, "bad_request"),
            ("POST", "/api/relay/checkin", [1, 2], 422, "bad_request"),
            ("POST", "/api/laundry/account", {"card_number": CARD}, 404, "no_laundry_room"),
            ("GET", "/api/no-such-thing", None, 404, "not_found"),
            ("DELETE", "/api/relay", None, 405, "method_not_allowed"),
        ]
        for method, path, body, status, reason in cases:
            answer = await acall(url, method, path, body)
            assert (answer.status, answer.body["error"]) == (status, reason), (method, path, body, answer.body)
        broken = await acall(url, "POST", "/api/relay/checkin", raw=b'{"phone_last4": ')
        assert (broken.status, broken.body["error"]) == (422, "bad_request")
        # Refused before anything parses them, as at the bridge (runtime/http_limits.py).
        huge = await acall(url, "POST", "/api/relay/checkin", raw=b'{"qr": "' + b"x" * 100_000 + b'"}')
        assert (huge.status, huge.body["error"]) == (413, "payload_too_large")
        deep = await acall(url, "POST", "/api/relay/checkin", raw=b"[" * 5000 + b"]" * 5000)
        assert deep.status == 422 and "nested 5000 levels" in deep.body["reason"]
        assert (await acall(url, "GET", "/api/screen")).status == 200  # still serving


@pytest.mark.asyncio
async def test_without_a_resident_secret_only_measuring_without_a_record_is_offered(tmp_path: Path, broker) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker, secret=None)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        assert (await acall(url, "GET", "/api/screen")).body["records"] is False
        refused = await acall(url, "POST", "/api/bp/begin", {"card_number": CARD})
        assert (refused.status, refused.body["error"]) == (503, "identification_unavailable")
        assert (await acall(url, "POST", "/api/bp/begin", {"anonymous": True})).status == 200


@pytest.mark.asyncio
async def test_a_check_in_and_out_are_events_in_the_outbox_with_pseudonyms_only(tmp_path: Path, broker) -> None:
    async with running_agent(kiosk_settings(tmp_path, broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        assert (await acall(url, "GET", "/api/relay")).body["inside"] == 0
        first = await acall(url, "POST", "/api/relay/checkin", {"phone_last4": "4821"})
        assert (first.body["outcome"], first.body["inside"]) == ("checked_in", 1)
        again = await acall(url, "POST", "/api/relay/checkin", {"phone_last4": "4821"})
        assert (again.body["outcome"], again.body["inside"]) == ("already_inside", 1)
        qr = await acall(url, "POST", "/api/relay/checkin", {"qr": "RIDER-88231"})
        assert (qr.body["outcome"], qr.body["inside"]) == ("checked_in", 2)
        out = await acall(url, "POST", "/api/relay/checkout", {"phone_last4": "4821"})
        assert (out.body["outcome"], out.body["inside"], out.body["stay_minutes"]) == ("checked_out", 1, 0)
        nobody = await acall(url, "POST", "/api/relay/checkout", {"phone_last4": "4821"})
        assert nobody.body["outcome"] == "not_inside"
        events = [r for r in agent.outbox.due(1000) if "/events/relay_" in r.topic]
        assert [r.topic.rsplit("/", 1)[1] for r in events] == ["relay_checkin", "relay_checkin", "relay_checkout"]
        payloads = [json.loads(r.body)["payload"] for r in events]
        phone = PSEUDONYMS.of_phone_last4("4821")
        assert [p["subject"] for p in payloads] == [phone, PSEUDONYMS.of_qr("RIDER-88231"), phone]
        assert payloads[0]["visit_id"] == payloads[2]["visit_id"] and payloads[2]["reason"] == "checked_out"
        assert not any("4821" in json.dumps(v) for p in payloads for k, v in p.items() if k != "subject")
        assert agent.outbox.counts()[RecordState.PENDING] >= 3
        # The scheduled job that closes visits past the maximum stay runs on the agent's loop.
        assert agent.scheduler is not None
        job = agent.scheduler.get_job("relay-expire")
        assert job is not None and asyncio.iscoroutinefunction(job.func)
        await job.func()
        assert (await acall(url, "GET", "/api/relay")).body["inside"] == 1  # the QR rider, still inside


@pytest.mark.asyncio
async def test_a_port_in_use_leaves_the_kiosk_working_without_its_screen(
    tmp_path: Path, broker, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings: AgentSettings = kiosk_settings(tmp_path, broker, screen={"port": port})
        cuff = button_cuff()
        with caplog.at_level(logging.ERROR, logger="edge_agent.agent"):
            async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
                cuff.press_start()
                await wait_until(lambda: len(saved_readings(agent)) == 1, what="a reading saved all the same")
                assert agent.screen is None
    assert any("kiosk screen cannot listen" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_check_ins_reach_the_bridge_through_the_broker_as_pseudonyms(
    tmp_path: Path, running_broker, bridge_factory
) -> None:
    bridge = bridge_factory(running_broker)
    async with running_agent(kiosk_settings(tmp_path, running_broker)) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        url = agent.screen.url
        assert (await acall(url, "POST", "/api/relay/checkin", {"phone_last4": "4821"})).status == 200
        assert (await acall(url, "POST", "/api/relay/checkout", {"phone_last4": "4821"})).status == 200

        def relay_events() -> list:  # type: ignore[type-arg]
            return [e for e in bridge.events() if e.type.startswith("relay_")]

        await wait_until(lambda: len(relay_events()) == 2, what="both events stored by the bridge")
        await wait_until(lambda: agent.outbox.counts()[RecordState.DELIVERED] >= 2, what="the bridge's acks")
    stored = sorted(relay_events(), key=lambda e: e.type)
    assert [e.type for e in stored] == ["relay_checkin", "relay_checkout"]
    assert {e.subject for e in stored} == {PSEUDONYMS.of_phone_last4("4821")}
    assert all("4821" not in json.dumps({k: v for k, v in e.payload.items() if k != "subject"}) for e in stored)


class DeskEvents:
    """The screen's event stream (GET /api/bp/events), read as the page reads it, into `seen`:
    (event name, data) in the order the agent sent them."""

    def __init__(self, base_url: str) -> None:
        self.seen: list[tuple[str, dict]] = []  # type: ignore[type-arg]
        self._url, self._task = base_url.rstrip("/") + "/api/bp/events", None

    async def __aenter__(self) -> DeskEvents:
        headers = await asyncio.to_thread(page_headers, self._url.rsplit("/api/", 1)[0])
        self._task = asyncio.create_task(self._read(headers))  # type: ignore[assignment]
        await wait_until(lambda: len(self.seen) >= 1, what="the stream's first state")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self, headers: dict[str, str]) -> None:
        async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", self._url, headers=headers) as response:
            name = "message"
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    self.seen.append((name, json.loads(line.split(":", 1)[1])))
                    name = "message"

    def named(self, name: str) -> list[dict]:  # type: ignore[type-arg]
        return [data for event, data in self.seen if event == name]


@asynccontextmanager
async def identified_at_the_desk(
    tmp_path: Path, broker: MosquittoProcess, cuff: ButtonCuff | None = None, screen: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Agent, DeskEvents]]:
    """A real agent with `cuff`, a page's event stream open, and a resident who identified by card."""
    backends = {} if cuff is None else {CUFF_ADDRESS: simulated_backend(cuff)}
    async with running_agent(kiosk_settings(tmp_path, broker, screen=screen), backends) as agent:
        await wait_until(lambda: agent.screen is not None, what="the screen serving")
        assert agent.screen is not None
        async with DeskEvents(agent.screen.url) as events:
            await acall(agent.screen.url, "POST", "/api/bp/begin", {"card_number": CARD})
            yield agent, events


@pytest.mark.asyncio
async def test_a_cuff_dropped_mid_measurement_ends_the_session_and_every_page_is_told(tmp_path: Path, broker) -> None:
    # Issue 18, item 1: the link drops at 180 mmHg, after the inflation and before any reading.
    cuff = button_cuff(drop_mid_measurement=True)
    async with identified_at_the_desk(tmp_path, broker, cuff) as (agent, events):
        cuff.press_start()
        # The end, then the state it left: nobody's record is waiting. Two events, pushed one
        # after the other: the page may have the first before the second.
        end_then_idle = [("ended", {"reason": "cuff_lost", "record": True}), ("state", {"state": "idle", "record": False})]
        await wait_until(lambda: events.seen[-2:] == end_then_idle, what="the end of her session, then idle")
        assert events.named("ended") == [{"reason": "cuff_lost", "record": True}]
        assert events.named("pressure")[-1] == {"pressure": 180}
        assert agent.desk.snapshot() == {"state": "idle", "record": False}

        # Pressed again without the screen: a session without a record, and its result.
        cuff.drop_mid_measurement = False
        cuff.press_start()
        await wait_until(lambda: len(saved_readings(agent)) == 1, what="the next reading saved")
        assert saved_readings(agent)[0]["subject"] is None
        await wait_until(lambda: len(events.named("ended")) == 2, what="the second session's end")
        assert events.named("ended")[1] == {"reason": "finished", "record": False}
        assert {"state": "measuring", "record": False} in events.named("state")

        # A page that connects now learns how the last session ended.
        assert agent.screen is not None
        async with DeskEvents(agent.screen.url) as late:
            await wait_until(lambda: len(late.seen) >= 2, what="the replayed end")
            assert late.seen[:2] == [("state", {"state": "idle", "record": False}),
                                     ("ended", {"reason": "finished", "record": False})]


@pytest.mark.asyncio
async def test_the_desks_expiry_reaches_the_page_without_anything_asking(tmp_path: Path, broker) -> None:
    async with identified_at_the_desk(tmp_path, broker, screen={"measure_timeout_s": 0.5}) as (_, events):
        end_then_idle = [("ended", {"reason": "expired", "record": True}), ("state", {"state": "idle", "record": False})]
        await wait_until(lambda: events.seen[-2:] == end_then_idle, timeout=5, what="the expiry pushed, then idle")


@pytest.mark.asyncio
async def test_an_older_reading_replayed_with_hers_does_not_take_her_record_away(tmp_path: Path, broker) -> None:
    # The cuff replays a reading from its memory, never saved here, before the one just taken.
    older = dataclasses.replace(NORMAL, timestamp=datetime(2026, 11, 24, 8, 0))
    hers = dataclasses.replace(NORMAL, systolic=131.0, timestamp=datetime(2026, 11, 25, 9, 30))
    cuff = button_cuff(lambda: [older, hers])
    async with identified_at_the_desk(tmp_path, broker, cuff) as (agent, events):
        cuff.press_start()
        await wait_until(lambda: len(saved_readings(agent)) == 2, what="both readings saved")
        await wait_until(lambda: events.named("result"), what="the result shown")
        assert [(r["systolic"], r["subject"]) for r in saved_readings(agent)] == [
            (118.0, None), (131.0, PSEUDONYMS.of_card(CARD))]
        [result] = events.named("result")
        assert (result["systolic"], result["record"]) == (131.0, True)


@pytest.mark.asyncio
async def test_an_implausible_reading_is_said_and_shown_as_not_reliable_and_saved_as_suspect(
    tmp_path: Path, broker
) -> None:
    # Issue 18, item 4: a pulse pressure of 5 mmHg and a pulse of 240 (drivers/plausibility.py).
    implausible = BloodPressureMeasurement(unit=BloodPressureUnit.MMHG, systolic=96.0, diastolic=91.0,
                                           mean_arterial_pressure=93.0, pulse_rate=240.0)
    cuff = button_cuff(lambda: [implausible])
    async with identified_at_the_desk(tmp_path, broker, cuff) as (agent, events):
        cuff.press_start()
        await wait_until(lambda: events.named("result"), what="the result")
        [result] = events.named("result")
        assert (result["meaning"], result["category"], result["record"]) == ("unreliable", None, True)
        assert result["suspect"] == ["pulse_pressure_too_narrow", "pulse_rate_out_of_range"]
        # What the kiosk says aloud for this very result: the request, not the numbers.
        assert spoken(result) == "这次的数字不可靠，请重新测量"
        # Saved all the same, on her record, marked suspect, as the screen says.
        [reading] = saved_readings(agent)
        assert reading["subject"] == PSEUDONYMS.of_card(CARD)
        assert reading["suspect"] == ["pulse_pressure_too_narrow", "pulse_rate_out_of_range"]
