"""Hostile input at the bridge's door, on SQLite and PostgreSQL: whatever a kiosk (or anyone with
a kiosk's credentials, or a device's firmware through a kiosk) publishes is classified without
raising, and whatever the contract accepts the database stores. A message the contract let
through and the database then refused would fail every batch it joined, and with it the
readings of every other kiosk in that batch, each time it was re-sent.

The values are the edges of what JSON can say and what the stores hold: integers past 32 and
64 bits (PostgreSQL INTEGER and BIGINT, SQLite's 64-bit integers), floats that parse to
infinity (1e400) and the NaN/Infinity tokens Python and pydantic accept, NUL in strings
(PostgreSQL text and jsonb refuse it), dates whose UTC form is out of range, deep nesting."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.decode import Inbound, StatusMessage, Refused, classify
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.store import DeadLetter, Reading
from contract.codec import MAX_MESSAGE_BYTES
from contract.envelope import UpstreamMessage

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
RULES = AlertRules()
ROOT = "doorstep/v1/test-site/kiosk-1"
# A number token no Python float holds: pydantic reads it as infinity.
HUGE = "__HUGE__"

edge_ints = st.sampled_from([0, 1, -1, 255, 0xFFFF, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30])
ints = edge_ints | st.integers()
floats = st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, HUGE]) | st.floats()
texts = st.sampled_from(["", "\x00", "a\x00b", "\u2028", "\ud7ff", "\U0001f600" * 20, "x" * 300, "é"]) | st.text(max_size=20)
zones = st.sampled_from(["Z", "+00:00", "+14:00", "-14:00", "+08:00", "+23:59"])
times = st.one_of(
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1970-01-01T00:00:00Z",
                     "1969-12-31T23:59:59Z", "2026-11-25T09:14:03.512Z"]),
    st.builds(lambda d, z: d.isoformat() + z, st.datetimes(), zones),
)
naive_times = st.sampled_from(["0001-01-01T00:00:00", "9999-12-31T23:59:59", "2026-11-25T17:13:58"]) | st.datetimes().map(
    lambda d: d.isoformat())
json_values = st.recursive(
    st.none() | st.booleans() | ints | floats | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any], usual: Any) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, so messages get past the first check and reach the store."""
    return st.one_of(st.just(usual), st.just(usual), strategy)


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    channel = draw(st.sampled_from(["blood_pressure", "glucose", "telemetry", "laundry_machine", "laundry_vend",
                                    "command_results"]))
    if channel == "blood_pressure":
        return f"readings/{channel}", {
            "unit": "mmHg", "systolic": draw(maybe(floats, 120.0)), "diastolic": draw(maybe(floats, 80.0)),
            "mean_arterial_pressure": None, "pulse_rate": draw(maybe(floats, None)), "user_id": draw(maybe(ints, None)),
            "status": draw(maybe(st.lists(texts, max_size=3), [])), "special_values": draw(maybe(st.dictionaries(texts, texts, max_size=2), {})),
            "suspect": draw(maybe(st.lists(texts, max_size=2), [])), "subject": None,
        }
    if channel == "glucose":
        return f"readings/{channel}", {
            "glucose_concentration": draw(maybe(floats, 5.5)), "unit": "mmol/L", "sequence_number": draw(maybe(ints, 1)),
            "sample_location": draw(maybe(texts, None)),
        }
    if channel == "telemetry":
        return channel, {
            "uptime_s": draw(maybe(floats, 10.0)),
            "outbox": {"health": {"records": draw(maybe(ints, 0)), "oldest_age_s": draw(maybe(floats, None))}},
            "outbox_bytes": draw(maybe(ints, 1000)), "outbox_budget_bytes": draw(maybe(ints, 2**28)),
            "health_over_budget": False, "disk_free_bytes": draw(maybe(ints, None)),
            "cpu_temperature_c": draw(maybe(floats, None)), "clock_synchronised": True,
            "devices": [{
                "address": draw(maybe(texts, "A4:C1:38:12:34:56")), "model": draw(maybe(texts, "omron")),
                "battery_percent": draw(maybe(ints, 80)), "last_reading_at": draw(maybe(times, None)),
                "clock_offset_s": draw(maybe(floats, None)), "last_seen_at": draw(maybe(times, None)),
            }],
        }
    if channel == "laundry_machine":
        return f"events/{channel}", {
            "unit": draw(maybe(ints, 1)), "state": "fault", "link": "online", "program": draw(maybe(ints, None)),
            "remaining_seconds": draw(maybe(ints, None)), "error_code": draw(maybe(ints, 3)),
            "error_text": draw(maybe(st.dictionaries(st.sampled_from(["zh", "en"]), texts, max_size=2), None)),
            "cycle_count": draw(maybe(ints, None)),
        }
    if channel == "laundry_vend":
        return f"events/{channel}", {
            "transaction_id": str(uuid.uuid4()), "unit": 1, "program": draw(maybe(ints, 1)), "outcome": "started",
            "points_charged": draw(maybe(ints, 0)), "reason": draw(maybe(texts, None)),
        }
    return "command_results/req-1", {
        "request_id": "req-1", "command": draw(maybe(texts, "ping")), "outcome": "succeeded",
        "detail": draw(maybe(texts, None)), "data": draw(maybe(st.dictionaries(texts, json_values, max_size=4), {})),
    }


def render(value: Any) -> bytes:
    text = json.dumps(value, allow_nan=True, ensure_ascii=False)  # NaN, Infinity: tokens pydantic reads
    return text.replace(f'"{HUGE}"', "1e400").encode("utf-8", "surrogatepass")


@st.composite
def hostile_messages(draw: st.DrawFn) -> Inbound:
    if draw(st.integers(0, 9)) == 0:
        status = {"state": draw(st.sampled_from(["online", "offline"])), "at": draw(maybe(times, None))}
        return Inbound(f"{ROOT}/status", render(status))
    channel, payload = draw(payloads())
    envelope = {
        "schema_version": 1, "message_id": str(uuid.uuid4()), "seq": draw(maybe(ints, 1)),
        "kiosk_time": draw(maybe(times, "2026-11-25T09:14:03Z")), "kiosk_clock_trusted": True,
        "device_time": draw(maybe(naive_times, None)),
        "device": draw(maybe(st.fixed_dictionaries({"model": texts, "address": texts, "firmware": texts | st.none()}),
                             {"model": "m", "address": "a"})),
        "payload": payload,
    }
    return Inbound(f"{ROOT}/{channel}", render(envelope))


# One database per run, shared by the examples (each message has its own id).
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=hostile_messages())
def test_what_the_contract_accepts_the_database_stores(bridge_engine: Engine, message: Inbound) -> None:
    classified = classify(message, NOW)
    assert classified is None or isinstance(classified, (UpstreamMessage, StatusMessage, Refused))
    if isinstance(classified, Refused):
        assert classified.reason
        event("refused by the contract")
        return
    event("stored")
    outcome = commit_gulp(bridge_engine, [message], rules=RULES, notify=False, received_at=NOW)
    assert outcome.refused == 0 and (outcome.valid or outcome.statuses)


topic_levels = st.sampled_from(["doorstep", "v1", "test-site", "kiosk-1", "readings", "blood_pressure", "status",
                                "telemetry", "events", "acks", "commands", "command_results", "", "+", "#", "$SYS",
                                "UPPER", "x" * 40, "\x00", "é"]) | st.text(max_size=8)
topics = st.lists(topic_levels, max_size=8).map("/".join) | st.text(max_size=60)
bodies = st.binary(max_size=200) | json_values.map(render) | st.builds(
    lambda depth, opener: (opener * depth).encode(), st.integers(1, 20_000), st.sampled_from(["[", "{\"a\":", " "]))


@settings(max_examples=1000, deadline=timedelta(seconds=1))
@given(topics, bodies)
def test_any_topic_and_body_is_classified_without_raising(topic: str, body: bytes) -> None:
    classified = classify(Inbound(topic, body), NOW)
    if isinstance(classified, Refused):
        assert classified.reason and len(classified.raw) <= len(body) and classified.raw_size == len(body)


def test_an_oversized_or_deeply_nested_body_is_refused_with_its_reason() -> None:
    envelope = {"schema_version": 1, "message_id": str(uuid.uuid4()), "seq": 1, "kiosk_time": "2026-11-25T09:14:03Z"}
    big = json.dumps({**envelope, "payload": {"x": "y" * MAX_MESSAGE_BYTES}}).encode()
    refused = classify(Inbound(f"{ROOT}/telemetry", big), NOW)
    assert isinstance(refused, Refused) and "exceeds 65536" in refused.reason
    deep = json.dumps(envelope)[:-1].encode() + b', "payload": {"data": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    refused = classify(Inbound(f"{ROOT}/command_results/req-1", deep), NOW)
    assert isinstance(refused, Refused) and "recursion" in refused.reason.lower()


def test_a_message_the_database_refuses_is_a_dead_letter_and_the_rest_of_its_batch_is_stored(bridge_engine: Engine) -> None:
    """Defence in depth, for a value the contract does not yet know the store cannot hold: the
    batch is split until the one message is alone, and that message alone is refused."""
    from cloud_bridge.decode import decode
    from cloud_bridge.gulp import store_isolating
    from tests.bridge.wire_kiosk import WireKiosk, blood_pressure

    kiosk = WireKiosk()
    good = [kiosk.reading(blood_pressure(120 + i, 80)) for i in range(5)]
    parsed = decode(good, NOW)
    poison = decode([kiosk.reading(blood_pressure(150, 90))], NOW).valid[0]
    # As if the contract let through a sequence number past the store's integer column.
    envelope = poison.envelope.model_copy(update={"seq": 2**63})
    parsed.valid.insert(2, UpstreamMessage(poison.topic, envelope, poison.payload))
    outcome = store_isolating(bridge_engine, parsed, rules=RULES, notify=False, received_at=NOW)
    assert {m.envelope.message_id for m in outcome.valid} == {m.envelope.message_id for m in parsed.valid} - {envelope.message_id}
    assert outcome.refused == 1
    with Session(bridge_engine) as session:
        assert session.exec(select(func.count()).select_from(Reading)).one() == 5
        [dead] = session.exec(select(DeadLetter)).all()
    assert dead.topic == kiosk.topics.reading("blood_pressure")  # type: ignore[arg-type]
    assert "the database refused it" in dead.reason and str(envelope.message_id) in dead.reason
