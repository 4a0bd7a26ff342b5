"""docs/protocol.md must match the code: every example in it parses with doorstep.wire."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from doorstep.wire import (
    BRIDGE_STATUS_ROOT,
    Ack,
    Channel,
    Envelope,
    Status,
    bridge_status_topic,
    decode_command,
    parse_topic,
    validate_upstream,
)

PROTOCOL_DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
EXAMPLE = re.compile(r"```json (\S+)\n(.*?)```", re.DOTALL)
EXAMPLES = EXAMPLE.findall(PROTOCOL_DOC.read_text(encoding="utf-8"))


def test_the_document_has_examples_of_every_upstream_and_downstream_body() -> None:
    assert any(topic.startswith(BRIDGE_STATUS_ROOT + "/") for topic, _ in EXAMPLES)
    channels = {parse_topic(topic).channel for topic, _ in EXAMPLES if not topic.startswith(BRIDGE_STATUS_ROOT + "/")}
    assert {Channel.READINGS, Channel.EVENTS, Channel.TELEMETRY, Channel.COMMANDS, Channel.COMMAND_RESULTS,
            Channel.STATUS, Channel.ACKS} <= channels


@pytest.mark.parametrize(("topic", "body"), EXAMPLES, ids=[f"{i}:{t}" for i, (t, _) in enumerate(EXAMPLES)])
def test_example_parses(topic: str, body: str) -> None:
    if topic.startswith(BRIDGE_STATUS_ROOT + "/"):
        assert bridge_status_topic(topic.rsplit("/", 1)[1]) == topic
        Status.model_validate_json(body)
        return
    channel = parse_topic(topic).channel
    if channel is Channel.STATUS:
        Status.model_validate_json(body)
    elif channel is Channel.ACKS:
        Ack.model_validate_json(body)
    elif channel is Channel.COMMANDS:
        decode_command(body.encode())
    elif '"sealed": {' in body:
        # No document holds the bridge's private key: the envelope is checked, the box cannot be.
        Envelope.model_validate_json(body)
    else:
        validate_upstream(topic, body.encode())
