"""Residents' readings sealed for the bridge: unreadable in the kiosk's outbox file and on the
broker, opened and stored by the bridge, refused when tampered with, waiting (not lost) when
the bridge lacks the key."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.alerts import Alert
from cloud_bridge.decode import Inbound, Unopenable, classify
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import BridgeSettings
from cloud_bridge.store import Reading
from broker_admin.mosquitto import MosquittoProcess
from contract.codec import encode
from contract.envelope import Envelope, SealedPayload, validate_upstream
from contract.errors import ContractError
from contract.sealing import Opener, Sealer, UnknownPayloadKey, private_key_from_file, write_key_pair
from contract.topics import KioskTopics, ReadingKind
from runtime.config import ConfigError
from runtime.mqtt import make_client
from edge_agent.store.outbox import Outbox, RecordState
from tests.bridge.wire_kiosk import blood_pressure
from tests.support import KIOSK, SITE, agent_settings, broker_settings, running_agent, wait_until
from tests.test_end_to_end import assert_is_the_measurement, cuff_backends

TOPIC = KioskTopics(SITE, KIOSK).reading(ReadingKind.BLOOD_PRESSURE)
RESIDENT = "ab" * 32


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    return write_key_pair(tmp_path / "keys")


def opener_for(path: Path) -> Opener:
    return Opener([private_key_from_file(path)])


def sealed_body(public: str, payload: dict[str, Any], seq: int = 1) -> bytes:
    import uuid

    return encode(Envelope(message_id=uuid.uuid4(), seq=seq, kiosk_time=datetime.now(UTC),
                           sealed=Sealer.from_text(public).seal(payload)))


def test_the_private_key_is_written_for_its_owner_only(keys: tuple[Path, str]) -> None:
    path, public = keys
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(public) == 44  # 32 bytes, base64
    with pytest.raises(FileExistsError):
        write_key_pair(path.parent)  # never overwritten


def test_a_sealed_reading_opens_only_with_the_bridge_key(keys: tuple[Path, str], tmp_path: Path) -> None:
    path, public = keys
    payload = blood_pressure(150, 95, subject=RESIDENT).model_dump(mode="json")
    body = sealed_body(public, payload)
    # Nothing of the reading in clear: no payload, no field name, no value, no pseudonym. (It
    # looked for the bytes "150" anywhere, which a message id, a time's microseconds or the box's
    # base64 hold by chance now and then: a fresh-clone run failed on it.)
    envelope = json.loads(body)
    assert envelope.get("payload") is None and set(envelope["sealed"]) == {"key_id", "box"}
    clear = json.dumps({k: v for k, v in envelope.items() if k not in ("sealed", "message_id", "kiosk_time")})
    assert "150" not in clear
    assert b"systolic" not in body and RESIDENT.encode() not in body
    message = validate_upstream(TOPIC, body, opener_for(path).open)
    assert message.payload.model_dump(mode="json") == payload  # type: ignore[union-attr]
    with pytest.raises(ContractError, match="holds no key"):
        validate_upstream(TOPIC, body)
    other, _ = write_key_pair(tmp_path / "other")
    with pytest.raises(UnknownPayloadKey):
        validate_upstream(TOPIC, body, opener_for(other).open)


def test_a_tampered_box_is_refused_with_its_reason(keys: tuple[Path, str]) -> None:
    path, public = keys
    sealed = Sealer.from_text(public).seal({"unit": "mmHg"})
    flipped = sealed.box[:-8] + ("A" if sealed.box[-8] != "A" else "B") + sealed.box[-7:]
    with pytest.raises(ContractError, match="cannot be opened"):
        opener_for(path).open(SealedPayload(key_id=sealed.key_id, box=flipped))


def test_an_envelope_has_a_payload_or_a_sealed_one_never_both() -> None:
    import uuid

    with pytest.raises(ValueError, match="exactly one of payload and sealed"):
        Envelope(message_id=uuid.uuid4(), seq=1, kiosk_time=datetime.now(UTC))


def test_a_bridge_without_the_key_keeps_nothing_refuses_nothing_and_says_so(
    keys: tuple[Path, str], bridge_engine: Engine
) -> None:
    _path, public = keys
    item = Inbound(TOPIC, sealed_body(public, blood_pressure(120, 80).model_dump(mode="json")))
    assert isinstance(classify(item, datetime.now(UTC), None), Unopenable)
    outcome = commit_gulp(bridge_engine, [item], rules=AlertRules(), notify=False, received_at=datetime.now(UTC))
    assert outcome.valid == [] and outcome.refused == 0  # the kiosk keeps sending it: not lost
    with Session(bridge_engine) as session:
        assert session.exec(select(Reading)).all() == []
        [alert] = session.exec(select(Alert)).all()
    assert (alert.kind, alert.severity) == ("payload_key_missing", "critical")


def test_the_bridge_refuses_to_start_with_a_key_file_it_cannot_use(tmp_path: Path) -> None:
    bad = tmp_path / "payload.key"
    bad.write_text("not a key\n")
    config = tmp_path / "bridge.yaml"
    config.write_text(f"environment: development\npayload_keys: [{bad}]\n")
    with pytest.raises(ConfigError, match="payload_keys.*not a base64 X25519 private key"):
        BridgeSettings.from_file(config)


def test_the_outbox_file_holds_no_readable_reading(keys: tuple[Path, str], tmp_path: Path) -> None:
    _path, public = keys
    outbox = Outbox(tmp_path / "outbox.sqlite3", sealer=Sealer.from_text(public))
    outbox.save(TOPIC, blood_pressure(163, 101, subject=RESIDENT))
    outbox.save(KioskTopics(SITE, KIOSK).telemetry, {"uptime_s": 1})  # not health data: not sealed
    outbox.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("outbox.sqlite3*"))
    assert RESIDENT.encode() not in raw and b'"systolic"' not in raw and b"uptime_s" in raw


@pytest.mark.asyncio
async def test_sealed_from_the_cuff_to_the_bridge_database(
    keys: tuple[Path, str], tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    path, public = keys
    bridge = bridge_factory(running_broker, payload_keys=[path])
    seen: list[bytes] = []
    lock = threading.Lock()
    observer = make_client("observer", broker_settings(running_broker))
    observer.on_message = lambda _c, _u, m: (lock.acquire(), seen.append(bytes(m.payload)), lock.release())
    observer.connect(running_broker.host, running_broker.port)
    observer.subscribe(f"doorstep/v1/{SITE}/{KIOSK}/readings/#", qos=1)
    observer.loop_start()
    try:
        settings = agent_settings(tmp_path, running_broker).model_copy(update={"payload_public_key": public})
        async with running_agent(settings, cuff_backends()) as agent:
            await wait_until(lambda: bridge.reading_count() == 1, what="the sealed reading stored")
            await wait_until(lambda: agent.outbox.counts()[RecordState.DELIVERED] == 1, what="confirmed")  # type: ignore[union-attr]
    finally:
        observer.disconnect()
        observer.loop_stop()
    [row] = bridge.readings()
    assert_is_the_measurement(row.payload)  # opened and stored as the cuff measured it
    assert seen and all(b'"sealed"' in body and b"systolic" not in body for body in seen)
