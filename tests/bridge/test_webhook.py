"""Alert notifications reach a real HTTP receiver, signed, at least once, through failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.alerts import resolve
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.webhook import WebhookDelivery, WebhookSender, WebhookSettings, enqueue
from broker_admin.mosquitto import free_port
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure

SECRET = "s3cret-of-the-station"


class Receiver:
    """A real HTTP server that answers each POST with the next planned status."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver([])
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def senders() -> Iterator[list[WebhookSender]]:
    made: list[WebhookSender] = []
    yield made
    for sender in made:
        sender.stop()


def raise_dangerous_reading(engine: Engine) -> None:
    kiosk = WireKiosk()
    commit_gulp(engine, [kiosk.reading(blood_pressure(190, 125))], rules=AlertRules(), notify=True,
                 received_at=datetime.now(UTC))


def sender(engine: Engine, receiver: Receiver, senders: list[WebhookSender], **settings: Any) -> WebhookSender:
    made = WebhookSender(engine, WebhookSettings(url=receiver.url, secret=SECRET, backoff_s=0.01, **settings))  # type: ignore[arg-type]
    senders.append(made)
    return made


def test_an_opened_alert_is_posted_signed(bridge_engine: Engine, receiver: Receiver, senders: list[WebhookSender]) -> None:
    raise_dangerous_reading(bridge_engine)
    webhook = sender(bridge_engine, receiver, senders)
    assert webhook.send_due() == 1
    assert webhook.send_due() == 0  # delivered: not again
    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-doorstep-signature"] == expected
    posted = json.loads(body)
    assert posted["event"] == "opened"
    assert posted["alert"]["kind"] == "dangerous_reading"
    assert posted["alert"]["title"] == "very high blood pressure 190/125 mmHg"
    assert isinstance(posted["delivery_id"], int)


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(bridge_engine: Engine, receiver: Receiver, senders: list[WebhookSender]) -> None:
    receiver.statuses = [500, 503]
    raise_dangerous_reading(bridge_engine)
    webhook = sender(bridge_engine, receiver, senders, max_attempts=3)
    webhook.send_due()
    with Session(bridge_engine) as session:
        [row] = session.exec(select(WebhookDelivery)).all()
        assert (row.attempts, row.last_error, row.delivered_at) == (1, "HTTP 500", None)
    time.sleep(0.05)
    webhook.send_due()
    time.sleep(0.05)
    webhook.send_due()
    assert len(receiver.received) == 3
    with Session(bridge_engine) as session:
        [row] = session.exec(select(WebhookDelivery)).all()
        assert row.delivered_at is not None and row.attempts == 3


def test_an_unreachable_receiver_is_given_up_after_max_attempts_and_kept(
    bridge_engine: Engine, senders: list[WebhookSender]
) -> None:
    raise_dangerous_reading(bridge_engine)
    webhook = WebhookSender(bridge_engine, WebhookSettings(url=f"http://127.0.0.1:{free_port()}/x", max_attempts=1))  # type: ignore[arg-type]
    senders.append(webhook)
    webhook.send_due()
    with Session(bridge_engine) as session:
        [row] = session.exec(select(WebhookDelivery)).all()
        assert row.given_up and row.delivered_at is None and "ConnectError" in (row.last_error or "")


def test_two_senders_never_post_the_same_attempt(bridge_engine: Engine, receiver: Receiver, senders: list[WebhookSender]) -> None:
    for _ in range(20):
        raise_dangerous_reading(bridge_engine)
    first, second = sender(bridge_engine, receiver, senders), sender(bridge_engine, receiver, senders)
    threads = [threading.Thread(target=s.send_due, kwargs={"limit": 50}) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [json.loads(body)["delivery_id"] for _, body in receiver.received]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 20


def test_a_resolution_is_posted_too(bridge_engine: Engine, receiver: Receiver, senders: list[WebhookSender]) -> None:
    raise_dangerous_reading(bridge_engine)
    with Session(bridge_engine) as session:
        change = resolve(session, 1, by="doctor-wang", note="called her; she is fine", at=datetime.now(UTC))
        enqueue(session, [change], datetime.now(UTC))
        session.commit()
    sender(bridge_engine, receiver, senders).send_due()
    events = [json.loads(body)["event"] for _, body in receiver.received]
    assert events == ["opened", "resolved"]
    assert json.loads(receiver.received[1][1])["alert"]["resolved_by"] == "doctor-wang"
