"""Decode (cloud_bridge/decode.py): a kiosk's batch read in one pass of pydantic over its
container, each record typed for its channel, classified exactly as split_batch's path (each
record written back out and validated alone) classifies it, for any body at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings

from cloud_bridge.decode import Inbound, Refused, Unopenable, classify_batch, classify_split
from contract.batch import batch_entry, encode_batch, read_batch
from contract.envelope import UpstreamMessage
from contract.payloads import LaundryMachineEvent
from contract.sealing import Opener, private_key_from_file, write_key_pair
from tests.bridge.test_batches import batch_bodies
from tests.test_sealing import sealed_body
from tests.bridge.wire_kiosk import WireKiosk, blood_pressure

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_an_agents_batch_is_read_in_one_pass_each_record_typed_for_its_channel() -> None:
    kiosk = WireKiosk()
    records = [kiosk.reading(blood_pressure(120 + i, 80)) for i in range(3)]
    records.append(kiosk.machine(LaundryMachineEvent(unit=3, state="fault", link="online", error_code=21)))
    read = read_batch(kiosk.batch(*records).body)
    assert read is not None
    assert [r.channel for r in read] == ["readings/blood_pressure"] * 3 + ["events/laundry_machine"]
    assert all(r.envelope is not None and r.untyped is None for r in read)
    assert [r.envelope.payload for r in read if r.envelope] == [
        blood_pressure(120 + i, 80) for i in range(3)] + [LaundryMachineEvent(unit=3, state="fault", link="online", error_code=21)]


def test_sealed_records_of_a_batch_are_opened_as_alone(tmp_path: Path) -> None:
    """More boxes than one thread opens alone (half are opened on another), a tampered one
    among them (refused as alone) and one sealed for a key the bridge lacks (left unopened)."""
    path, public = write_key_pair(tmp_path / "keys")
    _, other = write_key_pair(tmp_path / "other")
    kiosk = WireKiosk()
    payloads = [blood_pressure(100 + i, 70).model_dump(mode="json") for i in range(20)]
    bodies = [sealed_body(public, payload, seq) for seq, payload in enumerate(payloads, 1)]
    opener = Opener([private_key_from_file(path)])
    item = Inbound(kiosk.topics.batch, encode_batch([batch_entry("readings/blood_pressure", b) for b in bodies]))
    decoded = classify_batch(item, NOW, opener)
    assert decoded == classify_split(item, NOW, opener)
    assert [m.payload.model_dump(mode="json") for m in decoded if isinstance(m, UpstreamMessage)] == payloads
    tampered = json.loads(bodies[5])
    tampered["sealed"]["box"] = tampered["sealed"]["box"][:-8] + "AAAAAAA="
    bodies[5] = json.dumps(tampered).encode()
    bodies[9] = sealed_body(other, payloads[9], 10)
    item = Inbound(kiosk.topics.batch, encode_batch([batch_entry("readings/blood_pressure", b) for b in bodies]))
    decoded = classify_batch(item, NOW, opener)
    assert decoded == classify_split(item, NOW, opener)
    assert isinstance(decoded[5], Refused) and "sealed: cannot be opened" in decoded[5].reason
    assert isinstance(decoded[9], Unopenable)
    assert sum(isinstance(m, UpstreamMessage) for m in decoded) == 18


@settings(max_examples=300, deadline=None)
@given(body=batch_bodies())
def test_any_batch_is_classified_as_split_batchs_path_classifies_it(body: bytes) -> None:
    item = Inbound(WireKiosk().topics.batch, body)
    assert classify_batch(item, NOW) == classify_split(item, NOW)
