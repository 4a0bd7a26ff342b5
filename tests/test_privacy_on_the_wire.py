"""A whole demo run (`doorstep demo`: broker, bridge and agent as processes) while residents use
the kiosk screen as they would: one identifies with her card and measures, a rider checks in and
out with the last four digits of his phone, a resident starts a washer. An observer on the
broker records every byte published under doorstep/: none of it holds a card number or phone
digits; residents travel as the site's pseudonyms only, and readings only sealed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from contract.batch import split_batch
from contract.topics import Channel
from doorstep.demo import DEMO_RESIDENT_SECRET, DEMO_RESIDENTS
from runtime.mqtt import BrokerSettings, make_client
from contract.pseudonym import Pseudonyms

PHONE_LAST4 = "4096"


def call(url: str, body: Any = None, token: str | None = None, page_token: str | None = None) -> Any:
    headers = {"content-type": "application/json"} | ({"authorization": f"Bearer {token}"} if token else {})
    headers |= {"x-page-token": page_token} if page_token else {}  # the kiosk screen's, for a POST
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


class Wiretap:
    """Every message under doorstep/ as the broker delivers it: (topic, payload bytes)."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = make_client("wiretap", BrokerSettings(port=port))
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("doorstep/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        with self._lock:
            self.seen.append((message.topic, bytes(message.payload)))

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.seen)

    def records(self) -> list[tuple[str, bytes]]:
        """What was published, each batch as its records: (its own topic, its envelope)."""
        found: list[tuple[str, bytes]] = []
        for topic, body in self.messages():
            if topic.endswith("/" + Channel.BATCH):
                found += [(record.topic, record.body) for record in split_batch(topic, body)]
            else:
                found.append((topic, body))
        return found

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_nothing_the_kiosk_publishes_names_a_resident(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "doorstep", "demo", "--workdir", str(tmp_path), "--http-port", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    tap: Wiretap | None = None
    try:
        assert demo.stdout is not None
        found: dict[str, str] = {}
        for line in demo.stdout:
            for name, pattern in (("broker", r"mqtt://127\.0\.0\.1:(\d+)"), ("screen", r"kiosk screen\s+(http://\S+/)"),
                                  ("bridge", r"(http://127\.0\.0\.1:\d+)/api/v1/readings"),
                                  ("doctor", r"doctor doctor +curl -H 'Authorization: Bearer ([\w-]+)'")):
                if (match := re.search(pattern, line)) is not None:
                    found[name] = match.group(1)
            if "Press Ctrl-C to stop" in line:
                break
        assert set(found) == {"broker", "screen", "bridge", "doctor"}, found
        tap = Wiretap(int(found["broker"]))
        screen = found["screen"]
        (_old_card, _, _), (card, _, _points) = DEMO_RESIDENTS
        pseudonyms = Pseudonyms(DEMO_RESIDENT_SECRET.encode())
        resident, rider = pseudonyms.of_card(card), pseudonyms.of_phone_last4(PHONE_LAST4)

        page = call(screen + "api/page-token")["token"]  # as the kiosk's page gets it
        call(screen + "api/bp/begin", {"card_number": card}, page_token=page)
        assert demo.stdin is not None
        demo.stdin.write("\n")  # the demo's cuff: its start button pressed, as the screen now asks
        demo.stdin.flush()
        call(screen + "api/relay/checkin", {"phone_last4": PHONE_LAST4}, page_token=page)
        call(screen + "api/relay/checkout", {"phone_last4": PHONE_LAST4}, page_token=page)
        idle = None
        deadline = time.monotonic() + 60
        while idle is None and time.monotonic() < deadline:  # the room is polled a few seconds in
            try:
                idle = next((m for m in call(screen + "api/laundry") if m["shown"] == "free"), None)
            except OSError:
                pass
            time.sleep(0.5)
        assert idle is not None, f"no free machine; logs in {tmp_path}"
        call(screen + "api/laundry/start", {"card_number": card, "unit": idle["unit"], "program": idle["programs"][0]["code"]},
             page_token=page)
        # Her reading reaches the doctor's view under her pseudonym, and the events with theirs.
        deadline = time.monotonic() + 90
        readings: list[Any] = []
        while time.monotonic() < deadline and not readings:
            readings = call(f"{found['bridge']}/api/v1/readings?subject={resident}", token=found["doctor"])["items"]
            time.sleep(1)
        assert readings, f"no reading on her record; logs in {tmp_path}"
        time.sleep(2)  # the events' last acks
        published = tap.messages()
        records = tap.records()
    finally:
        if tap is not None:
            tap.close()
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.communicate()
    everything = b"\n".join(topic.encode() + b" " + body for topic, body in published)
    for identifier in (card.encode(), *(c.encode() for c, _, _ in DEMO_RESIDENTS)):
        assert identifier not in everything
    # The digits never travel, quoted or as a field of their own ("method": "phone_last4" says
    # only how the rider identified).
    assert f'"{PHONE_LAST4}"'.encode() not in everything
    assert re.search(rb'"(phone|phone_last4|card|card_number|qr)"\s*:', everything) is None
    # Who they were, the cloud knows only as pseudonyms; her readings are sealed on the way.
    events = {topic.rsplit("/", 1)[1]: json.loads(body) for topic, body in records if "/events/" in topic}
    assert events["relay_checkin"]["payload"]["subject"] == rider
    assert events["laundry_vend"]["payload"]["subject"] == resident
    sent_readings = [json.loads(body) for topic, body in records if "/readings/" in topic]
    assert sent_readings and all(r["payload"] is None and r["sealed"]["box"] for r in sent_readings)
    assert resident.encode() not in b"\n".join(body for topic, body in records if "/readings/" in topic)
