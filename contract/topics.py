"""The topic tree: its root, the channels, the levels that name a reading kind, an event type
or a request id, one kiosk's topics (KioskTopics), parse_topic, the bridge's status topics, QoS.

Topic tree (MQTT 5, JSON bodies, UTF-8)::

    doorstep/v1/{site}/{kiosk}/status                     retained, "online" / Last Will "offline"
    doorstep/v1/{site}/{kiosk}/alarms                     retained, QoS 1, Alarms: the conditions now
    doorstep/v1/{site}/{kiosk}/readings/{kind}            QoS 1, Envelope[Reading]
    doorstep/v1/{site}/{kiosk}/events/{type}              QoS 1, Envelope[dict]
    doorstep/v1/{site}/{kiosk}/telemetry                  QoS 0, Envelope[dict]
    doorstep/v1/{site}/{kiosk}/commands/{request_id}      down
    doorstep/v1/{site}/{kiosk}/command_results/{request_id} up
    doorstep/v1/{site}/{kiosk}/batch                      QoS 1, several of the QoS 1 records above
    doorstep/v1/{site}/{kiosk}/acks                       down, QoS 1, Ack: stored message ids
    doorstep/v1/{site}/{kiosk}/support_bundles/{request_id} up, QoS 1, a tar.gz (contract/support_bundle.py)
    doorstep/v1/{site}/{kiosk}/desired                    down, retained, QoS 1, DesiredConfig
    doorstep/v1/_bridge/{client_id}                       retained, each bridge worker's status

Only an Ack lets a kiosk forget a record: a broker's PUBACK means only that the broker took
the message (Mosquitto drops PUBACKed messages past its queue limit and loses whatever it had
not snapshotted when killed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final

from pydantic import StringConstraints

from contract.errors import ContractError


SCHEMA_VERSION: Final = 1
TOPIC_ROOT: Final = "doorstep/v1"

QOS_RELIABLE: Final = 1  # readings, events, acks, command results
QOS_TELEMETRY: Final = 0  # a lost heartbeat is replaced by the next one


SLUG_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,31}$"
_SLUG_RE: Final = re.compile(SLUG_PATTERN)

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


class Channel(StrEnum):
    STATUS = "status"
    ALARMS = "alarms"  # retained, the kiosk's conditions at its limits (contract/alarms.py)
    READINGS = "readings"
    EVENTS = "events"
    TELEMETRY = "telemetry"
    COMMANDS = "commands"
    COMMAND_RESULTS = "command_results"
    BATCH = "batch"
    ACKS = "acks"
    SUPPORT_BUNDLES = "support_bundles"  # a tar.gz the kiosk uploads when asked (contract/support_bundle.py)
    DESIRED = "desired"  # down, retained: the configuration the bridge wants the kiosk to run (contract/desired.py)


# Channels whose topic has a last level naming the kind, type or request id.
_NAMED_CHANNELS: Final = {
    Channel.READINGS,
    Channel.EVENTS,
    Channel.COMMANDS,
    Channel.COMMAND_RESULTS,
    Channel.SUPPORT_BUNDLES,
}


def channel_filter(channel: Channel) -> str:
    """The MQTT topic filter of one channel of every kiosk, e.g. doorstep/v1/+/+/readings/+."""
    return f"{TOPIC_ROOT}/+/+/{channel}" + ("/+" if channel in _NAMED_CHANNELS else "")


class ReadingKind(StrEnum):
    BLOOD_PRESSURE = "blood_pressure"
    GLUCOSE = "glucose"
    TEMPERATURE = "temperature"
    WEIGHT = "weight"
    SPO2 = "spo2"


_READING_KINDS: Final = frozenset(kind.value for kind in ReadingKind)


# --- Event payloads, one model per EventType ---------------------------------------------


class EventType(StrEnum):
    LAUNDRY_MACHINE = "laundry_machine"  # a machine's state, fault or link changed
    LAUNDRY_VEND = "laundry_vend"  # a start transaction moved: started (charged), refused, done, ...
    RELAY_CHECKIN = "relay_checkin"  # a worker checked in at a 24-hour love relay station
    RELAY_CHECKOUT = "relay_checkout"  # ... and out (or the visit expired unclosed)
    STAFF_CALLED = "staff_called"  # someone at the kiosk pressed "call staff" (issue 18, item 9)


_EVENT_TYPES: Final = frozenset(event.value for event in EventType)


REQUEST_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_REQUEST_ID_RE: Final = re.compile(REQUEST_ID_PATTERN)
RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]


@dataclass(frozen=True, slots=True)
class KioskTopics:
    """The topics of one kiosk."""

    site: str
    kiosk: str

    def __post_init__(self) -> None:
        for name, value in (("site", self.site), ("kiosk", self.kiosk)):
            if not _SLUG_RE.match(value):
                raise ContractError(
                    f"{name} id {value!r} is not a slug (lowercase letters, digits, '-', at most 32)"
                )

    @property
    def root(self) -> str:
        return f"{TOPIC_ROOT}/{self.site}/{self.kiosk}"

    @property
    def status(self) -> str:
        return f"{self.root}/{Channel.STATUS}"

    @property
    def alarms(self) -> str:
        return f"{self.root}/{Channel.ALARMS}"

    @property
    def telemetry(self) -> str:
        return f"{self.root}/{Channel.TELEMETRY}"

    @property
    def acks(self) -> str:
        return f"{self.root}/{Channel.ACKS}"

    @property
    def desired(self) -> str:
        return f"{self.root}/{Channel.DESIRED}"

    @property
    def batch(self) -> str:
        return f"{self.root}/{Channel.BATCH}"

    def reading(self, kind: ReadingKind) -> str:
        return f"{self.root}/{Channel.READINGS}/{kind}"

    def event(self, event_type: EventType) -> str:
        return f"{self.root}/{Channel.EVENTS}/{event_type}"

    def command(self, request_id: str) -> str:
        return f"{self.root}/{Channel.COMMANDS}/{request_id}"

    def command_result(self, request_id: str) -> str:
        return f"{self.root}/{Channel.COMMAND_RESULTS}/{request_id}"

    def support_bundle(self, request_id: str) -> str:
        return f"{self.root}/{Channel.SUPPORT_BUNDLES}/{request_id}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    site: str
    kiosk: str
    channel: Channel
    name: str | None  # reading kind, event type or request id; None for the other channels

    @property
    def kiosk_topics(self) -> KioskTopics:
        return KioskTopics(self.site, self.kiosk)


def parse_topic(topic: str) -> ParsedTopic:
    """Split a topic of the tree; raise ContractError for anything outside it."""
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        raise ContractError(f"topic {topic!r} is not under {TOPIC_ROOT}/")
    parts = topic[len(prefix) :].split("/")
    if len(parts) < 3:
        raise ContractError(f"topic {topic!r} has no site/kiosk/channel")
    site, kiosk, channel_name, *rest = parts
    topics = KioskTopics(site, kiosk)  # validates the slugs
    try:
        channel = Channel(channel_name)
    except ValueError:
        raise ContractError(f"topic {topic!r}: unknown channel {channel_name!r}") from None
    expected_levels = 1 if channel in _NAMED_CHANNELS else 0
    if len(rest) != expected_levels or (rest and not rest[0]):
        raise ContractError(f"topic {topic!r}: wrong number of levels for channel {channel}")
    name = rest[0] if rest else None
    if channel is Channel.READINGS and name not in _READING_KINDS:
        raise ContractError(f"topic {topic!r}: unknown reading kind {name!r}")
    if channel is Channel.EVENTS and name not in _EVENT_TYPES:
        raise ContractError(f"topic {topic!r}: unknown event type {name!r}")
    if channel in (Channel.COMMANDS, Channel.COMMAND_RESULTS, Channel.SUPPORT_BUNDLES) and not _REQUEST_ID_RE.match(str(name)):
        raise ContractError(f"topic {topic!r}: request id {name!r} is not 1-64 letters, digits, '-' or '_'")
    return ParsedTopic(topics.site, topics.kiosk, channel, name)


# The channels whose messages are envelopes (everything a kiosk sends but its status, alarms and batches).
ENVELOPE_CHANNELS: Final = frozenset({Channel.READINGS, Channel.EVENTS, Channel.TELEMETRY, Channel.COMMAND_RESULTS})
# What a kiosk retains, one message a kiosk: each bridge worker subscribes to these on its own,
# not shared, so every worker knows every kiosk's current state (cloud_bridge/ingest.py).
RETAINED_CHANNELS: Final = frozenset({Channel.STATUS, Channel.ALARMS})
# Everything a kiosk publishes: its broker role must let it write each (broker_admin/access.py).
UPSTREAM_CHANNELS: Final = frozenset({*RETAINED_CHANNELS, *ENVELOPE_CHANNELS, Channel.BATCH, Channel.SUPPORT_BUNDLES})


# Each bridge worker says here, retained, whether it is up: "online" once it is subscribed, and
# "offline" as its Last Will or when it stops. A kiosk that stopped hearing acks (the bridge away)
# listens, and sends its backlog at once when a worker comes back instead of at its next probe.
# "_bridge" is not a slug, so it can never be a site.
BRIDGE_STATUS_ROOT: Final = f"{TOPIC_ROOT}/_bridge"
BRIDGE_STATUS_FILTER: Final = f"{BRIDGE_STATUS_ROOT}/+"


def bridge_status_topic(client_id: str) -> str:
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", client_id):
        raise ContractError(f"bridge client id {client_id!r}: 1-64 letters, digits, '-' or '_'")
    return f"{BRIDGE_STATUS_ROOT}/{client_id}"
