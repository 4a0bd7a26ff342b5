"""Batches (docs/protocol.md, Batches) through the bridge's pipeline to the database, on SQLite
and PostgreSQL: each record stored once as if it had come alone, a bad record refused alone,
a malformed container refused as a whole with its reason, and no batch storing for a kiosk
other than its topic's. Then through a real Mosquitto: what the kiosk is told."""

from __future__ import annotations

import json
import queue
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.decode import Inbound, Refused, classify, classify_all
from cloud_bridge.gulp import GulpOutcome, commit_gulp
from cloud_bridge.fleet import Kiosk
from cloud_bridge.store import DeadLetter, Event, Reading
from broker_admin.mosquitto import MosquittoProcess
from contract.batch import MAX_BATCH_RECORDS, batch_entry, encode_batch
from contract.codec import MAX_MESSAGE_BYTES
from contract.envelope import UpstreamMessage
from contract.payloads import LaundryMachineEvent
from contract.status import Ack, decode_ack
from contract.topics import QOS_RELIABLE
from runtime.mqtt import make_client
from tests.bridge.test_hostile_ingest import hostile_messages, json_values, render
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure
from tests.bridge.wire_kiosk import telemetry as health_report
from tests.support import broker_settings, wait_for

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RULES = AlertRules()


def commit(engine: Engine, *items: Inbound) -> GulpOutcome:
    return commit_gulp(engine, list(items), rules=RULES, notify=False, received_at=NOW)


def rows(engine: Engine, model: Any) -> list[Any]:
    with Session(engine) as session:
        return list(session.exec(select(model)))


def refused_ids(outcome: GulpOutcome) -> set[uuid.UUID]:
    return {i for r in outcome.refusals for i in r.message_ids}


def message_id(item: Inbound) -> uuid.UUID:
    return uuid.UUID(json.loads(item.body)["message_id"])


def test_each_record_of_a_batch_is_stored_once_as_if_it_came_alone(bridge_engine: Engine) -> None:
    kiosk = WireKiosk()
    records = [kiosk.reading(blood_pressure(120 + i, 80)) for i in range(5)]
    records.append(kiosk.machine(LaundryMachineEvent(unit=3, state="fault", link="online", error_code=21)))
    outcome = commit(bridge_engine, kiosk.batch(*records))
    assert outcome.refused == 0 and outcome.new_ids == {message_id(r) for r in records}
    assert dict(outcome.counts()) == {("readings", "stored"): 5, ("events", "stored"): 1}
    alone = WireKiosk(kiosk="kiosk-2")
    commit(bridge_engine, *(alone.reading(blood_pressure(120 + i, 80)) for i in range(5)))
    by_kiosk = {k: sorted((r.seq, r.payload["systolic"]) for r in rows(bridge_engine, Reading) if r.kiosk == k)
                for k in ("kiosk-1", "kiosk-2")}
    assert by_kiosk["kiosk-1"] == by_kiosk["kiosk-2"] and len(by_kiosk["kiosk-1"]) == 5  # as if one by one
    [event] = rows(bridge_engine, Event)
    assert (event.kiosk, event.seq) == ("kiosk-1", 6)
    with Session(bridge_engine) as session:
        row = session.get(Kiosk, (kiosk.site, kiosk.kiosk))
        assert row is not None and row.last_seq == 6
    assert [(c.alert.kind, c.event) for c in outcome.alert_changes] == [("device_fault", "opened")]  # what it implies


def test_a_bad_record_is_refused_alone_with_its_own_reason_and_the_rest_are_stored(bridge_engine: Engine) -> None:
    kiosk = WireKiosk()
    good = [kiosk.reading(blood_pressure(120, 80)), kiosk.reading(blood_pressure(121, 80))]
    bad = kiosk.reading(blood_pressure(130, 80))
    bad = Inbound(bad.topic, bad.body.replace(b'"systolic":130.0', b'"systolic":"high"'))
    telemetry = kiosk.telemetry(health_report())
    unknown = kiosk.reading(blood_pressure(125, 80))
    unknown = Inbound(unknown.topic.replace("blood_pressure", "blood_sugar"), unknown.body)
    surrogate = kiosk.reading(blood_pressure(126, 80))  # a lone surrogate: no store holds it (PostgreSQL's text)
    surrogate = Inbound(surrogate.topic, surrogate.body.replace(b'"unit":"mmHg"', b'"unit":"mm\\ud800Hg"'))
    assert isinstance(classify(surrogate, NOW), Refused)
    outcome = commit(bridge_engine, kiosk.batch(good[0], bad, telemetry, unknown, surrogate, good[1]))
    assert outcome.new_ids == {message_id(g) for g in good}
    assert refused_ids(outcome) == {message_id(r) for r in (bad, telemetry, unknown, surrogate)}  # each told
    alone = classify(bad, NOW)
    assert isinstance(alone, Refused)
    dead = {d.reason.split(":")[0]: d for d in rows(bridge_engine, DeadLetter)}
    assert len(dead) == 4
    assert dead["payload"].reason == alone.reason  # the reason it would have had alone
    assert dead["payload"].topic == bad.topic and json.loads(dead["payload"].raw) == json.loads(bad.body)  # its envelope
    assert dead["body"].reason.startswith("body: Invalid JSON")
    assert "is not sent in a batch" in dead[f"topic '{telemetry.topic}'"].reason  # QoS 0: never batched
    assert "unknown reading kind 'blood_sugar'" in dead[f"topic '{unknown.topic}'"].reason
    assert len(rows(bridge_engine, Reading)) == 2


def test_a_batch_stores_only_for_the_kiosk_of_its_topic(bridge_engine: Engine) -> None:
    kiosk, other = WireKiosk(), WireKiosk(kiosk="kiosk-2")
    theirs = other.reading(blood_pressure(150, 95))
    for channel in ("../kiosk-2/readings/blood_pressure", "kiosk-2/readings/blood_pressure",
                    "test-site/kiosk-2/readings/blood_pressure", "/readings/blood_pressure", "readings/blood_pressure/x"):
        outcome = commit(bridge_engine, Inbound(kiosk.topics.batch, encode_batch([batch_entry(channel, theirs.body)])))
        assert outcome.refused == 1 and not outcome.valid, channel
    # Its envelope as a record of kiosk-1's batch is kiosk-1's record: nothing says otherwise.
    commit(bridge_engine, Inbound(kiosk.topics.batch, encode_batch([batch_entry("readings/blood_pressure", theirs.body)])))
    assert [(r.kiosk, r.message_id) for r in rows(bridge_engine, Reading)] == [("kiosk-1", message_id(theirs))]
    with Session(bridge_engine) as session:
        assert session.get(Kiosk, (other.site, other.kiosk)) is None


def test_duplicates_within_a_batch_and_a_batch_sent_again_recomposed_are_stored_once(bridge_engine: Engine) -> None:
    kiosk = WireKiosk()
    records = [kiosk.reading(blood_pressure(120 + i, 80)) for i in range(6)]
    first = commit(bridge_engine, kiosk.batch(records[0], records[1], records[0], records[2]))
    assert first.new_ids == {message_id(r) for r in records[:3]} and len(first.valid) == 4
    # Sent again: differently composed, one record alone, and new ones among them.
    again = commit(bridge_engine, kiosk.batch(records[2], records[3], records[1]), records[0], kiosk.batch(*records[3:]))
    assert again.new_ids == {message_id(r) for r in records[3:]}
    assert {m.envelope.message_id for m in again.valid} == {message_id(r) for r in records}  # all confirmed again
    assert sorted(r.seq for r in rows(bridge_engine, Reading)) == [1, 2, 3, 4, 5, 6]


def container(records: list[Any], **fields: Any) -> bytes:
    return json.dumps({"schema_version": 1, "records": records, **fields}).encode()


def entry(item: Inbound, kiosk: WireKiosk) -> dict[str, Any]:
    return {"channel": item.topic.removeprefix(kiosk.topics.root + "/"), "envelope": json.loads(item.body)}


def test_a_malformed_container_is_one_dead_letter_with_its_reason(bridge_engine: Engine) -> None:
    kiosk = WireKiosk()
    readings = [kiosk.reading(blood_pressure(120, 80)) for _ in range(3)]
    records = [entry(r, kiosk) for r in readings]
    ids = {message_id(r) for r in readings}
    unidentified = [*records[:2], {"channel": "readings/spo2", "envelope": {"seq": 4}}]
    tiny_id = uuid.uuid4()
    tiny = {"channel": "readings/spo2", "envelope": {"message_id": str(tiny_id)}}
    cases: list[tuple[bytes, str, set[uuid.UUID]]] = [
        (b"{not json", "batch: not JSON", set()),
        (b"\xff\xfe", "batch: not JSON", set()),
        (b"[" * 100_000, "exceeds 65536", set()),
        (b"[" * 5000 + b"]" * 5000, "batch: nested too deeply", set()),
        (json.dumps(records).encode(), "not an object with a list of records", set()),
        (json.dumps({"schema_version": 1, "records": {"0": records[0]}}).encode(), "not an object with a list", set()),
        (container([]), "batch of 0 records: from 1 to 500", set()),
        (container([tiny] * (MAX_BATCH_RECORDS + 1)), "batch of 501 records: from 1 to 500",
         {tiny_id}),
        (container(records, schema_version=2), "schema_version must be 1", ids),
        (container(records, schema_version=True), "schema_version must be 1", ids),
        (container(records, sender="kiosk-2"), "fields must be exactly schema_version and records", ids),
        (container([*records[:2], {**records[2], "topic": "x"}]), "records.2 must be exactly a channel", ids),
        (container([*records[:2], {"channel": 7, "envelope": records[2]["envelope"]}]), "records.2 must be", ids),
        (container([*records[:2], {"channel": "readings/bp\x00", "envelope": records[2]["envelope"]}]), "records.2", ids),
        (container(unidentified, schema_version=2), "schema_version must be 1", set()),  # one unreadable id: none told
    ]
    for body, reason, told in cases:
        outcome = commit(bridge_engine, Inbound(kiosk.topics.batch, body), kiosk.reading(blood_pressure(110, 70)))
        assert outcome.refused == 1 and len(outcome.new_ids) == 1, reason  # the rest of the bridge's batch is stored
        [refusal] = outcome.refusals
        assert reason in refusal.reason and refusal.topic == kiosk.topics.batch, (reason, refusal.reason)
        assert set(refusal.message_ids) == told, reason
        assert refusal.raw == body[:4096] and refusal.raw_size == len(body)
    assert len(rows(bridge_engine, DeadLetter)) == len(cases)
    assert len(rows(bridge_engine, Reading)) == len(cases)  # none of a malformed batch's records


@st.composite
def batch_bodies(draw: st.DrawFn) -> bytes:
    """Mostly batches of hostile records (tests/bridge/test_hostile_ingest.py), some with their
    container broken, some any JSON at all."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=200) | json_values.map(render))
    records = []
    for message in draw(st.lists(hostile_messages(), min_size=1, max_size=6)):
        channel = message.topic.split("/", 4)[4]
        records.append({"channel": channel, "envelope": json.loads(message.body)} if choice > 1 else
                       draw(st.sampled_from([{"channel": channel}, {"channel": channel, "envelope": message.body.decode()},
                                             {"channel": "x" * 200, "envelope": {}}, None, [channel]])))
    fields: dict[str, Any] = {"schema_version": draw(st.sampled_from([1, 1, 1, 0, "1", None]))}
    return render({**fields, "records": records})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=batch_bodies())
def test_any_batch_is_classified_without_raising_and_what_it_accepts_is_stored(bridge_engine: Engine, body: bytes) -> None:
    kiosk = WireKiosk()
    item = Inbound(kiosk.topics.batch, body)
    classified = classify_all(item, NOW)
    assert classified and all(c is not None for c in classified)
    for refusal in classified:
        if isinstance(refusal, Refused):
            assert refusal.reason and len(refusal.raw) <= 4096
    outcome = commit(bridge_engine, item)  # never a database error: the contract refused what it cannot hold
    valid = [c for c in classified if isinstance(c, UpstreamMessage)]
    event(f"{len(valid)} stored" if valid else "none stored")
    assert len(outcome.valid) == len(valid) and outcome.refused == len(classified) - len(valid)


def test_the_kiosk_is_told_per_record_through_a_real_broker(running_broker: MosquittoProcess, bridge_factory: Any) -> None:
    """One Ack for a batch: its stored records' ids, and its refused record with the reason;
    for a container refused whole whose records could all be read, every one refused."""
    bridge = bridge_factory(running_broker)
    wait_for(lambda: bridge.ingest.connected, what="the bridge subscribed")
    kiosk = WireKiosk()
    acks: queue.SimpleQueue[Ack] = queue.SimpleQueue()
    client = make_client("batch-kiosk", broker_settings(running_broker))
    client.on_message = lambda _c, _u, message: acks.put(decode_ack(bytes(message.payload)))
    client.connect(running_broker.host, running_broker.port)
    client.subscribe(kiosk.topics.acks, qos=QOS_RELIABLE)
    client.loop_start()
    try:
        good = [kiosk.reading(blood_pressure(120 + i, 80)) for i in range(3)]
        bad = kiosk.reading(blood_pressure(130, 80))
        bad = Inbound(bad.topic, bad.body.replace(b'"unit":"mmHg"', b'"unit":"psi"'))
        client.publish(kiosk.topics.batch, kiosk.batch(good[0], bad, *good[1:]).body, qos=QOS_RELIABLE)
        told: dict[uuid.UUID, str | None] = {}
        while len(told) < 4:
            ack = acks.get(timeout=10)
            told |= {m: None for m in ack.message_ids} | {r.message_id: r.reason for r in ack.refused}
        assert told == {**{message_id(g): None for g in good}, message_id(bad): "payload: unit: Input should be 'mmHg' or 'kPa'"}
        assert bridge.reading_count() == 3
        later = [kiosk.reading(blood_pressure(140, 90)) for _ in range(2)]
        client.publish(kiosk.topics.batch, container([entry(r, kiosk) for r in later], schema_version=2), qos=QOS_RELIABLE)
        ack = acks.get(timeout=10)
        assert {r.message_id for r in ack.refused} == {message_id(r) for r in later} and not ack.message_ids
        assert {r.reason for r in ack.refused} == {"batch: schema_version must be 1"}
        wait_for(lambda: len(bridge.dead_letters()) == 2, what="two dead letters")
        with Session(bridge.engine) as session:
            assert session.exec(select(func.count()).select_from(Reading)).one() == 3
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("records", [1, 100])  # one; the agent's default batch_records (and 64 KiB: ~120 of these)
def test_a_batch_of_one_record_or_of_many_is_a_batch(bridge_engine: Engine, records: int) -> None:
    kiosk = WireKiosk()
    items = [kiosk.reading(blood_pressure(120, 80)) for _ in range(records)]
    body = kiosk.batch(*items)
    assert len(body.body) <= MAX_MESSAGE_BYTES
    outcome = commit(bridge_engine, body)
    assert len(outcome.new_ids) == records and outcome.refused == 0
