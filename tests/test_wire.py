"""The wire contract's own rules: topics, envelopes, payloads, reasons for refusal."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from contract.codec import MAX_MESSAGE_BYTES, encode
from contract.envelope import Envelope, validate_upstream
from contract.errors import ContractError
from contract.payloads import BloodPressurePayload, LaundryMachineEvent, LaundryVendEvent
from contract.topics import Channel, EventType, KioskTopics, ReadingKind, parse_topic

TOPICS = KioskTopics("site-a", "kiosk-1")
BP_TOPIC = TOPICS.reading(ReadingKind.BLOOD_PRESSURE)


def envelope(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "message_id": str(uuid.uuid4()),
        "seq": 1,
        "kiosk_time": datetime(2026, 11, 25, 9, 0, tzinfo=UTC).isoformat(),
        "payload": {"unit": "mmHg", "systolic": 120.0, "diastolic": 80.0, "mean_arterial_pressure": 93.3},
    }
    data.update(overrides)
    return data


def test_topics_of_a_kiosk_round_trip() -> None:
    assert BP_TOPIC == "doorstep/v1/site-a/kiosk-1/readings/blood_pressure"
    parsed = parse_topic(BP_TOPIC)
    assert (parsed.site, parsed.kiosk, parsed.channel, parsed.name) == ("site-a", "kiosk-1", Channel.READINGS, "blood_pressure")
    assert parse_topic(TOPICS.acks).channel is Channel.ACKS
    assert parse_topic(TOPICS.status).name is None


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("other/v1/s/k/status", "not under"),
        ("doorstep/v1/s/k", "no site/kiosk/channel"),
        ("doorstep/v1/Site/k/status", "not a slug"),
        ("doorstep/v1/s/k/bogus", "unknown channel"),
        ("doorstep/v1/s/k/readings/cholesterol", "unknown reading kind"),
        ("doorstep/v1/s/k/events/party", "unknown event type"),
        ("doorstep/v1/s/k/readings", "wrong number of levels"),
        ("doorstep/v1/s/k/status/extra", "wrong number of levels"),
    ],
)
def test_topics_outside_the_tree_are_refused_with_a_reason(topic: str, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        parse_topic(topic)


def test_a_valid_reading_is_typed_by_its_topic() -> None:
    message = validate_upstream(BP_TOPIC, json.dumps(envelope()).encode())
    assert isinstance(message.payload, BloodPressurePayload)
    assert message.payload.systolic == 120.0
    assert message.envelope.seq == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "Invalid JSON"),
        (json.dumps(envelope(seq=-1)).encode(), "seq"),
        (json.dumps(envelope(schema_version=2)).encode(), "schema_version"),
        (json.dumps(envelope(kiosk_time="2026-11-25T09:00:00")).encode(), "kiosk_time"),
        (json.dumps(envelope(surprise=1)).encode(), "surprise"),
        (json.dumps(envelope(payload={"unit": "mmHg", "systolic": "high"})).encode(), "payload"),
        (json.dumps(envelope(payload={"unit": "mmHg", "systolic": None, "diastolic": 80, "mean_arterial_pressure": None})).encode(), "special_values"),
        (json.dumps(envelope(payload={"unit": "mmHg", "systolic": 1, "diastolic": 1, "mean_arterial_pressure": 1, "subject": "Zhang San"})).encode(), "subject"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_a_message_breaking_the_contract_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        validate_upstream(BP_TOPIC, body)


def test_acks_do_not_carry_envelopes() -> None:
    with pytest.raises(ContractError, match="does not carry an envelope"):
        validate_upstream(TOPICS.acks, b"{}")


def test_encoded_envelope_round_trips() -> None:
    original = Envelope.model_validate(envelope())
    assert Envelope.model_validate_json(encode(original)) == original


VEND = {"transaction_id": str(uuid.uuid4()), "unit": 2, "program": 1, "outcome": "started", "points_charged": 5}


def test_laundry_events_are_typed_by_their_topic() -> None:
    vend = validate_upstream(TOPICS.event(EventType.LAUNDRY_VEND), json.dumps(envelope(payload=VEND)).encode())
    assert isinstance(vend.payload, LaundryVendEvent) and vend.payload.points_charged == 5
    machine = {"unit": 8, "state": "unknown", "link": "offline", "link_error": "timeout: "}
    parsed = validate_upstream(TOPICS.event(EventType.LAUNDRY_MACHINE), json.dumps(envelope(payload=machine)).encode())
    assert isinstance(parsed.payload, LaundryMachineEvent) and parsed.payload.link == "offline"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (VEND | {"outcome": "maybe"}, "outcome"),
        (VEND | {"unit": 0}, "unit"),
        (VEND | {"points_charged": -5}, "points_charged"),
        (VEND | {"subject": "13800138000"}, "subject"),
        (VEND | {"refund": 5}, "refund"),
    ],
)
def test_a_laundry_event_breaking_the_contract_is_refused(payload: dict[str, object], reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        validate_upstream(TOPICS.event(EventType.LAUNDRY_VEND), json.dumps(envelope(payload=payload)).encode())


def test_commands_and_their_results_keep_to_the_contract() -> None:
    from contract.commands import CommandName, decode_command

    with pytest.raises(ContractError, match="request id"):
        parse_topic("doorstep/v1/site-a/kiosk-1/commands/has space")
    command = decode_command(b'{"command": "ping", "issued_by": "tech", "issued_at": "2026-11-25T09:00:00Z"}')
    assert command.command is CommandName.PING and command.expires_at is None
    with pytest.raises(ContractError, match="issued_at"):
        decode_command(b'{"command": "ping", "issued_by": "tech", "issued_at": "2026-11-25T09:00:00"}')
    result = {"request_id": "r-1", "command": "ping", "outcome": "succeeded"}
    validate_upstream(TOPICS.command_result("r-1"), json.dumps(envelope(payload=result)).encode())
    with pytest.raises(ContractError, match="does not match"):
        validate_upstream(TOPICS.command_result("r-2"), json.dumps(envelope(payload=result)).encode())
