"""Messages as a kiosk sends them, built with the wire contract's own models, for tests that
drive the bridge directly: through commit_gulp (no broker), or published on a real broker."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from cloud_bridge.decode import Inbound
from contract.batch import batch_entry, encode_batch
from contract.codec import encode
from contract.envelope import Envelope
from contract.payloads import BloodPressurePayload, DeviceIdentity, LaundryMachineEvent
from contract.status import KioskState, Status
from contract.telemetry import DeviceTelemetry, KioskTelemetry, OutboxDepth
from contract.topics import EventType, KioskTopics, ReadingKind

CUFF = DeviceIdentity(model="omron-hem-7361t", address="A4:C1:38:12:34:56", firmware="1.2.0")


def blood_pressure(systolic: float, diastolic: float, subject: str | None = None, unit: str = "mmHg") -> BloodPressurePayload:
    return BloodPressurePayload(
        unit=unit, systolic=systolic, diastolic=diastolic, mean_arterial_pressure=None, subject=subject  # type: ignore[arg-type]
    )


def telemetry(*, backlog: int = 0, oldest_age_s: float | None = None, devices: list[DeviceTelemetry] | None = None,
              health_over_budget: bool = False) -> KioskTelemetry:
    return KioskTelemetry(
        uptime_s=100,
        outbox={
            "health": OutboxDepth(records=backlog, oldest_age_s=oldest_age_s),
            "event": OutboxDepth(records=0),
            "telemetry": OutboxDepth(records=0),
        },
        outbox_bytes=1000,
        outbox_budget_bytes=256 * 1024 * 1024,
        health_over_budget=health_over_budget,
        disk_free_bytes=8 * 1024**3,
        clock_synchronised=True,
        devices=devices or [],
    )


@dataclass
class WireKiosk:
    site: str = "test-site"
    kiosk: str = "kiosk-1"
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def topics(self) -> KioskTopics:
        return KioskTopics(self.site, self.kiosk)

    def envelope(self, payload: BaseModel, *, seq: int | None = None, at: datetime | None = None,
                 device: DeviceIdentity | None = None, message_id: uuid.UUID | None = None) -> bytes:
        return encode(
            Envelope(
                message_id=message_id or uuid.uuid4(),
                seq=next(self._seq) if seq is None else seq,
                kiosk_time=at or datetime.now(UTC),
                device=device,
                payload=payload.model_dump(mode="json"),
            )
        )

    def reading(self, payload: BaseModel, kind: ReadingKind = ReadingKind.BLOOD_PRESSURE, **options: Any) -> Inbound:
        options.setdefault("device", CUFF)
        return Inbound(self.topics.reading(kind), self.envelope(payload, **options))

    def telemetry(self, payload: KioskTelemetry, **options: Any) -> Inbound:
        return Inbound(self.topics.telemetry, self.envelope(payload, **options))

    def machine(self, event: LaundryMachineEvent, **options: Any) -> Inbound:
        options.setdefault("device", DeviceIdentity(model="washer-retrofit-a", address=f"modbus-unit-{event.unit}"))
        return Inbound(self.topics.event(EventType.LAUNDRY_MACHINE), self.envelope(event, **options))

    def event(self, kind: EventType, event: BaseModel, **options: Any) -> Inbound:
        return Inbound(self.topics.event(kind), self.envelope(event, **options))

    def status(self, state: KioskState, at: datetime | None = None) -> Inbound:
        return Inbound(self.topics.status, encode(Status(state=state, at=at)))

    def batch(self, *records: Inbound) -> Inbound:
        """Records as the agent batches them: each one's envelope as it is, under its topic's tail."""
        root = self.topics.root + "/"
        return Inbound(self.topics.batch, encode_batch([batch_entry(r.topic.removeprefix(root), r.body) for r in records]))
