"""Residents' readings sealed for the bridge: unreadable in the kiosk's outbox file and on the
broker, opened and stored by the bridge, refused when tampered with, waiting (not lost) when
the bridge lacks the key."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.alerts import Alert
from cloud_bridge.decode import Inbound, Unopenable, classify
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.settings import BridgeSettings
from cloud_bridge.store import Reading
from broker_admin.mosquitto import MosquittoProcess
from contract.batch import batch_entry, batched_channel, encode_batch
from contract.codec import encode
from contract.envelope import Envelope, SealedPayload, validate_upstream
from contract.errors import ContractError
from contract.sealing import (
    SESSION_S,
    SESSION_SEALS,
    Opener,
    Sealer,
    UnknownPayloadKey,
    encode_key,
    private_key_from_file,
    public_key_from,
    write_key_pair,
)
from contract.status import KioskState, Status
from contract.topics import KioskTopics, ReadingKind, bridge_status_topic
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


# --- Session boxes (contract/sealing.py): one key agreement per session, not per reading -----


def test_a_session_box_opens_like_a_sealed_box_and_names_its_sender(keys: tuple[Path, str]) -> None:
    path, public = keys
    payload = blood_pressure(150, 95, subject=RESIDENT).model_dump(mode="json")
    sealed = Sealer.from_text(public, session_boxes=lambda: True).seal(payload)
    assert sealed.sender is not None and len(base64.b64decode(sealed.sender)) == 32
    body = encode(Envelope(message_id=uuid.uuid4(), seq=1, kiosk_time=datetime.now(UTC), sealed=sealed))
    assert b"systolic" not in body and RESIDENT.encode() not in body
    message = validate_upstream(TOPIC, body, opener_for(path).open)
    assert message.payload.model_dump(mode="json") == payload  # type: ignore[union-attr]


def test_a_sealed_box_travels_as_before_with_no_sender_key(keys: tuple[Path, str]) -> None:
    """A bridge of before forbids unknown keys: a sealed box must not even say `"sender": null`."""
    _path, public = keys
    body = sealed_body(public, {"unit": "mmHg"})
    assert set(json.loads(body)["sealed"]) == {"key_id", "box"}


def test_a_session_lasts_its_seals_or_its_time_and_its_key_is_never_reused_after(keys: tuple[Path, str]) -> None:
    _path, public = keys
    now = [0.0]
    sealer = Sealer(public_key_from(public), session_boxes=lambda: True, clock=lambda: now[0])
    senders = [sealer.seal({"n": n}).sender for n in range(SESSION_SEALS + 1)]
    assert len(set(senders[:SESSION_SEALS])) == 1 and senders[SESSION_SEALS] != senders[0]
    now[0] += SESSION_S
    assert sealer.seal({"n": 0}).sender not in senders


@pytest.mark.parametrize("forgery", ["other sender", "tampered", "low-order sender"])
def test_a_session_box_that_does_not_open_is_refused_with_its_reason(keys: tuple[Path, str], forgery: str) -> None:
    path, public = keys
    sealed = Sealer.from_text(public, session_boxes=lambda: True).seal({"unit": "mmHg"})
    if forgery == "other sender":
        sealed = sealed.model_copy(update={"sender": encode_key(PrivateKey.generate().public_key)})
    elif forgery == "tampered":
        sealed = sealed.model_copy(update={"box": sealed.box[:-8] + ("A" if sealed.box[-8] != "A" else "B") + sealed.box[-7:]})
    else:  # the all-zero point: X25519 with it agrees on nothing, which libsodium refuses
        sealed = sealed.model_copy(update={"sender": base64.b64encode(bytes(32)).decode()})
    with pytest.raises(ContractError, match="cannot be opened"):
        opener_for(path).open(sealed)


def test_a_batch_may_hold_both_kinds_and_the_bridge_stores_each(keys: tuple[Path, str], bridge_engine: Engine) -> None:
    path, public = keys
    topics = KioskTopics(SITE, KIOSK)
    channel = batched_channel(topics, TOPIC)
    assert channel is not None
    bodies = [
        encode(Envelope(message_id=uuid.uuid4(), seq=seq, kiosk_time=datetime.now(UTC),
                        sealed=Sealer.from_text(public, session_boxes=lambda: session).seal(
                            blood_pressure(120 + seq, 80).model_dump(mode="json"))))
        for seq, session in [(1, False), (2, True), (3, False), (4, True)]
    ]
    batch = Inbound(topics.batch, encode_batch([batch_entry(channel, body) for body in bodies]))
    outcome = commit_gulp(bridge_engine, [batch], rules=AlertRules(), notify=False, received_at=datetime.now(UTC),
                          opener=opener_for(path))
    assert outcome.refused == 0 and len(outcome.new_ids) == 4
    with Session(bridge_engine) as session:
        assert sorted(r.payload["systolic"] for r in session.exec(select(Reading)).all()) == [121, 122, 123, 124]


def old_worker_status(broker: MosquittoProcess, state: str) -> None:
    """A bridge worker of before the session box says it is online (or not), retained, with no
    user property: as such a worker does during a rolling upgrade."""
    client = make_client("bridge-of-before", broker_settings(broker))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        body = encode(Status(state=KioskState(state), at=datetime.now(UTC)))
        client.publish(bridge_status_topic("bridge-of-before"), body, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def sealed_kinds(outbox_path: Path) -> list[str]:
    """The kind of seal of each reading in an outbox file, in order."""
    with sqlite3.connect(outbox_path) as db:
        rows = db.execute("SELECT body FROM outbox WHERE topic LIKE '%/readings/%' ORDER BY seq").fetchall()
    return ["session box" if "sender" in json.loads(body)["sealed"] else "sealed box" for (body,) in rows]


@pytest.mark.asyncio
async def test_a_kiosk_seals_session_boxes_only_once_every_bridge_worker_opens_them(
    keys: tuple[Path, str], tmp_path: Path, running_broker: MosquittoProcess, bridge_factory: Any
) -> None:
    """A rolling upgrade: a worker of before and a new one share the kiosks. While the old one is
    online, a kiosk seals sealed boxes, which both open; once it has gone, session boxes. The
    new worker stores both kinds, and nothing is refused."""
    path, public = keys
    old_worker_status(running_broker, "online")
    bridge = bridge_factory(running_broker, payload_keys=[path])
    settings = agent_settings(tmp_path, running_broker, with_cuff=False).model_copy(update={"payload_public_key": public})
    async with running_agent(settings) as agent:
        assert agent.outbox is not None
        await wait_until(lambda: len(agent.bridge_workers.online_now()) == 2, what="both workers heard")
        assert agent.bridge_workers.online_now() == {"bridge-of-before": False, "bridge-test-1": True}
        agent.outbox.save(TOPIC, blood_pressure(131, 81))
        old_worker_status(running_broker, "offline")
        await wait_until(agent.bridge_workers.all_open_session_boxes, what="the worker of before gone")
        agent.outbox.save(TOPIC, blood_pressure(132, 82))
        await wait_until(lambda: bridge.reading_count() == 2, what="both readings stored")
        await wait_until(lambda: agent.outbox.counts()[RecordState.DELIVERED] == 2, what="both confirmed")  # type: ignore[union-attr]
        assert agent.outbox.counts()[RecordState.REFUSED] == 0
    assert sealed_kinds(settings.outbox_path) == ["sealed box", "session box"]
    assert sorted(r.payload["systolic"] for r in bridge.readings()) == [131, 132]


@pytest.mark.asyncio
async def test_a_kiosk_that_has_heard_no_bridge_worker_seals_sealed_boxes(
    keys: tuple[Path, str], tmp_path: Path, broker: MosquittoProcess
) -> None:
    _path, public = keys
    settings = agent_settings(tmp_path, broker, with_cuff=False).model_copy(update={"payload_public_key": public})
    async with running_agent(settings) as agent:
        assert agent.outbox is not None
        agent.outbox.save(TOPIC, blood_pressure(131, 81))
    assert sealed_kinds(settings.outbox_path) == ["sealed box"]
