"""docs/protocol.md must match the code: every example in it parses with contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contract.alarms import decode_alarms
from contract.batch import check_batched, split_batch
from contract.commands import decode_command
from contract.desired import decode_desired
from contract.envelope import Envelope, validate_upstream
from contract.status import Ack, Status
from contract.support_bundle import MANIFEST, BundleManifest
from contract.topics import BRIDGE_STATUS_ROOT, UPSTREAM_CHANNELS, Channel, bridge_status_topic, parse_topic

PROTOCOL_DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
EXAMPLE = re.compile(r"```json (\S+)\n(.*?)```", re.DOTALL)
# Examples are of a message on a topic, or of a file inside a support bundle.
EXAMPLES = [(topic, body) for topic, body in EXAMPLE.findall(PROTOCOL_DOC.read_text(encoding="utf-8"))
            if topic != MANIFEST]
MANIFESTS = [body for topic, body in EXAMPLE.findall(PROTOCOL_DOC.read_text(encoding="utf-8")) if topic == MANIFEST]


def test_the_document_has_examples_of_every_upstream_and_downstream_body() -> None:
    assert any(topic.startswith(BRIDGE_STATUS_ROOT + "/") for topic, _ in EXAMPLES)
    channels = {parse_topic(topic).channel for topic, _ in EXAMPLES if not topic.startswith(BRIDGE_STATUS_ROOT + "/")}
    # A support bundle's body is an archive, not JSON: its manifest is the example.
    assert {*UPSTREAM_CHANNELS, Channel.COMMANDS, Channel.ACKS, Channel.DESIRED} - {Channel.SUPPORT_BUNDLES} <= channels
    assert len(MANIFESTS) == 1


def test_the_support_bundle_manifest_example_parses() -> None:
    [manifest] = MANIFESTS
    BundleManifest.model_validate_json(manifest)


@pytest.mark.parametrize(("topic", "body"), EXAMPLES, ids=[f"{i}:{t}" for i, (t, _) in enumerate(EXAMPLES)])
def test_example_parses(topic: str, body: str) -> None:
    if topic.startswith(BRIDGE_STATUS_ROOT + "/"):
        assert bridge_status_topic(topic.rsplit("/", 1)[1]) == topic
        Status.model_validate_json(body)
        return
    channel = parse_topic(topic).channel
    if channel is Channel.STATUS:
        Status.model_validate_json(body)
    elif channel is Channel.ALARMS:
        decode_alarms(body.encode())
    elif channel is Channel.ACKS:
        Ack.model_validate_json(body)
    elif channel is Channel.COMMANDS:
        decode_command(body.encode())
    elif channel is Channel.DESIRED:
        decode_desired(body.encode())
    elif channel is Channel.BATCH:
        records = split_batch(topic, body.encode())
        assert len(records) >= 2  # an example of what a batch is for
        for record in records:
            check_batched(record)
            upstream_example_parses(record.topic, record.body.decode())
    else:
        upstream_example_parses(topic, body)


def upstream_example_parses(topic: str, body: str) -> None:
    # No document holds the bridge's private key: a sealed envelope is checked, its box cannot be.
    if Envelope.model_validate_json(body).sealed is None:
        validate_upstream(topic, body.encode())
