"""Alert notifications to a webhook: written in the alert's own transaction, posted after.

A notification is a row before it is a request, so a bridge killed between the commit and the
POST still sends it (at least once; the body carries `delivery_id` for the receiver to dedupe).
Any worker may post any row: a worker claims a due row by moving its `next_attempt_at` forward
with a compare-and-set UPDATE, so two workers never post the same attempt. Failures back off
exponentially; after `max_attempts` the row is kept, marked given up, and counted.

The body is signed: `X-Doorstep-Signature: sha256=<hex HMAC of the body with the webhook
secret>`, so the receiver can tell the bridge from anyone who learnt the URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel, Field as PydanticField, HttpUrl, SecretStr
from sqlalchemy import JSON, Engine, update
from sqlmodel import Field, Session, SQLModel, col, select

from cloud_bridge.alerts import AlertChange

log = logging.getLogger(__name__)


class WebhookSettings(BaseModel):
    url: HttpUrl
    secret: SecretStr | None = PydanticField(default=None, description="signs each body (HMAC-SHA256)")
    timeout_s: float = PydanticField(default=5, gt=0)
    max_attempts: int = PydanticField(default=12, ge=1, description="then the notification is given up (and kept)")
    backoff_s: float = PydanticField(default=2, gt=0, description="first retry delay; doubles, at most 10 min")


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(index=True)
    event: str = Field(max_length=16)
    body: dict[str, Any] = Field(sa_type=JSON)
    created_at: datetime
    next_attempt_at: datetime = Field(index=True)
    attempts: int = 0
    delivered_at: datetime | None = None
    given_up: bool = False
    last_error: str | None = Field(default=None, max_length=500)


MAX_BACKOFF = timedelta(minutes=10)
# A claimed row is not due again for this long: a worker killed mid-POST leaves it to another.
CLAIM_LEASE = timedelta(seconds=60)


def enqueue(session: Session, changes: Sequence[AlertChange], now: datetime) -> None:
    for change in changes:
        body = {"event": change.event.value, "alert": change.alert.model_dump(mode="json")}
        session.add(
            WebhookDelivery(alert_id=change.alert.id, event=change.event.value, body=body, created_at=now, next_attempt_at=now)
        )


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Posts due notifications, from a thread of its own, until stopped."""

    def __init__(
        self,
        engine: Engine,
        settings: WebhookSettings,
        *,
        poll_s: float = 1.0,
        on_result: Callable[[str], None] = lambda outcome: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._poll_s = poll_s
        self._on_result = on_result
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._http = httpx.Client(timeout=settings.timeout_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._http.close()

    def poke(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while self.send_due() and not self._stopping.is_set():
                    pass
            except Exception:
                log.exception("webhook sender failed; retrying")
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def send_due(self, limit: int = 20) -> int:
        """Claim and post up to `limit` due notifications; returns how many were claimed."""
        now = self._clock()
        with Session(self._engine) as session:
            due = session.exec(
                select(WebhookDelivery)
                .where(col(WebhookDelivery.delivered_at).is_(None), col(WebhookDelivery.given_up).is_(False),
                       col(WebhookDelivery.next_attempt_at) <= now)
                .order_by(col(WebhookDelivery.id))
                .limit(limit)
            ).all()
            claimed = []
            for row in due:
                result = session.execute(
                    update(WebhookDelivery)
                    .where(col(WebhookDelivery.id) == row.id, col(WebhookDelivery.next_attempt_at) == row.next_attempt_at)
                    .values(next_attempt_at=now + CLAIM_LEASE)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((row.id, row.attempts, row.body))
            session.commit()
        for delivery_id, attempts, body in claimed:
            self._post(delivery_id, attempts, body)
        return len(claimed)

    def _post(self, delivery_id: int | None, attempts: int, body: dict[str, Any]) -> None:
        payload = json.dumps({"delivery_id": delivery_id, **body}, ensure_ascii=False).encode()
        headers = {"content-type": "application/json"}
        if self._settings.secret is not None:
            headers["x-doorstep-signature"] = signature(self._settings.secret.get_secret_value(), payload)
        error: str | None = None
        try:
            response = self._http.post(str(self._settings.url), content=payload, headers=headers)
            if response.status_code >= 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"
        now = self._clock()
        attempts += 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error[:500] if error else None}
        if error is None:
            values["delivered_at"] = now
            outcome = "delivered"
        elif attempts >= self._settings.max_attempts:
            values["given_up"] = True
            outcome = "given_up"
            log.error("webhook: gave up on notification %s after %d attempts: %s", delivery_id, attempts, error)
        else:
            delay = min(MAX_BACKOFF, timedelta(seconds=self._settings.backoff_s * 2 ** (attempts - 1)))
            values["next_attempt_at"] = now + delay
            outcome = "failed"
            log.warning("webhook: notification %s failed (%s); retrying in %.0f s", delivery_id, error, delay.total_seconds())
        with Session(self._engine) as session:
            session.execute(update(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id).values(**values))
            session.commit()
        self._on_result(outcome)
