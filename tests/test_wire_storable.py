"""The contract keeps a message storable in the one pass that validates it (docs/protocol.md,
"Every value must also be one the bridge's database can hold"): the models' types bound every
number and time, a free-form field is walked as it is validated, and a NUL is looked for in
the body. tests/bridge/test_hostile_ingest.py fuzzes the outcome against the databases; these
pin how, so that a field added without its bound fails here, not in a batch."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from contract.envelope import _ENVELOPE_MODELS, validate_upstream
from contract.errors import ContractError
from contract.sealing import Opener, Sealer, private_key_from_file, write_key_pair
from contract.status import Status
from contract.storable import EARLIEST_TIME, INT64_MAX, LATEST_TIME, _storable_json
from contract.topics import KioskTopics, ReadingKind

TOPICS = KioskTopics("site-a", "kiosk-1")
UPSTREAM_MODELS: list[type[BaseModel]] = [*_ENVELOPE_MODELS.values(), Status]


def schema_nodes(schema: Any, free_form_checked: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every node of a pydantic-core schema, and whether it is inside a StorableJson."""
    if isinstance(schema, dict):
        function = schema.get("function", {}).get("function") if schema.get("type") == "function-after" else None
        free_form_checked = free_form_checked or function is _storable_json
        yield schema, free_form_checked
        for value in schema.values():
            yield from schema_nodes(value, free_form_checked)
    elif isinstance(schema, list):
        for value in schema:
            yield from schema_nodes(value, free_form_checked)


@pytest.mark.parametrize("model", UPSTREAM_MODELS, ids=lambda m: m.__name__)
def test_every_number_and_time_of_an_upstream_message_is_bounded_by_its_type(model: type[BaseModel]) -> None:
    for node, free_form_checked in schema_nodes(model.__pydantic_core_schema__):
        kind = node.get("type")
        if kind == "model":
            assert node["config"].get("allow_inf_nan") is False, node["cls"]
        elif kind == "int":
            assert -INT64_MAX - 1 <= node.get("ge", -(2**64)) and node.get("le", 2**64) <= INT64_MAX, node
        elif kind == "datetime" and node.get("tz_constraint") == "aware":
            assert EARLIEST_TIME <= node.get("ge", EARLIEST_TIME.replace(year=1)) and node.get(
                "le", LATEST_TIME.replace(year=9999)) <= LATEST_TIME, node
        elif kind == "any":
            assert free_form_checked, f"{model.__name__}: free-form JSON that is not StorableJson"


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps({"message_id": str(uuid.uuid4()), "seq": 1, "kiosk_time": "2026-11-25T09:00:00Z",
                       "payload": payload}).encode()


BP = {"unit": "mmHg", "systolic": 120.0, "diastolic": 80.0, "mean_arterial_pressure": None}
RESULT = {"request_id": "r-1", "command": "ping", "outcome": "succeeded"}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPICS.reading(ReadingKind.BLOOD_PRESSURE), BP | {"status": ["ok", "a\x00b"]},
         "payload.status.1: a NUL character in a string"),
        (TOPICS.reading(ReadingKind.BLOOD_PRESSURE), BP | {"special_values": {"x\x00": "nan"}},
         "payload.special_values: a NUL character in a string"),
        (TOPICS.command_result("r-1"), RESULT | {"data": {"a": [1, {"b": 2**64}]}},
         "payload: data: an integer past 64 bits at a.1.b"),
        (TOPICS.command_result("r-1"), RESULT | {"data": {"n": float("nan")}}, "payload: data: a number that is not finite at n"),
        (TOPICS.command_result("r-1"), RESULT | {"data": {"s": "\x00"}}, "payload: data: a NUL character in a string at s"),
        (TOPICS.telemetry, {"uptime_s": 1, "outbox": {}, "outbox_bytes": 0, "outbox_budget_bytes": 0,
                            "health_over_budget": False, "clock_synchronised": True, "refused_records": 2**63},
         "payload: refused_records: Input should be less than or equal to 9223372036854775807"),
    ],
)
def test_what_a_store_cannot_hold_is_refused_naming_where(topic: str, payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError) as refused:
        validate_upstream(topic, body(payload))
    assert refused.value.reason == reason


def test_a_backslash_before_u0000_is_text_not_a_nul() -> None:
    message = validate_upstream(TOPICS.reading(ReadingKind.BLOOD_PRESSURE), body(BP | {"status": ["C:\\u0000"]}))
    assert message.payload.status == ["C:\\u0000"]  # type: ignore[attr-defined]


def test_a_sealed_payload_is_held_to_the_same_rules(tmp_path: Path) -> None:
    key, public = write_key_pair(tmp_path)
    opener = Opener([private_key_from_file(key)])
    topic = TOPICS.reading(ReadingKind.BLOOD_PRESSURE)
    for payload, reason in [(BP | {"status": ["a\x00"]}, "payload.status.0: a NUL character in a string"),
                            (BP | {"user_id": 256}, "payload: user_id: Input should be less than or equal to 255")]:
        sealed = Sealer.from_text(public).seal(payload)
        envelope = {"message_id": str(uuid.uuid4()), "seq": 1, "kiosk_time": "2026-11-25T09:00:00Z",
                    "sealed": sealed.model_dump()}
        with pytest.raises(ContractError) as refused:
            validate_upstream(topic, json.dumps(envelope).encode(), opener.open)
        assert refused.value.reason == reason
