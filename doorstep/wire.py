"""The wire contract between kiosks and the cloud: topics, envelope, payloads.

This is the one definition both the edge agent and the cloud bridge import; docs/protocol.md
describes it for people and a test checks that the examples there parse with these models.

Topic tree (MQTT 5, JSON bodies, UTF-8)::

    doorstep/v1/{site}/{kiosk}/status                     retained, "online" / Last Will "offline"
    doorstep/v1/{site}/{kiosk}/readings/{kind}            QoS 1, Envelope[Reading]
    doorstep/v1/{site}/{kiosk}/events/{type}              QoS 1, Envelope[dict]
    doorstep/v1/{site}/{kiosk}/telemetry                  QoS 0, Envelope[dict]
    doorstep/v1/{site}/{kiosk}/commands/{request_id}      down
    doorstep/v1/{site}/{kiosk}/command_results/{request_id} up
    doorstep/v1/{site}/{kiosk}/batch                      QoS 1, several of the QoS 1 records above
    doorstep/v1/{site}/{kiosk}/acks                       down, QoS 1, Ack: stored message ids

Only an Ack lets a kiosk forget a record: a broker's PUBACK means only that the broker took
the message (Mosquitto drops PUBACKed messages past its queue limit and loses whatever it had
not snapshotted when killed).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NaiveDatetime,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Final = 1
TOPIC_ROOT: Final = "doorstep/v1"

QOS_RELIABLE: Final = 1  # readings, events, acks, command results
QOS_TELEMETRY: Final = 0  # a lost heartbeat is replaced by the next one

# A message body larger than this is refused before it is parsed: the biggest legitimate
# message (an ack batch of 500 ids) is ~20 KB, and parsing untrusted megabytes costs memory.
MAX_MESSAGE_BYTES: Final = 64 * 1024

# What the bridge's database holds, so that a message the contract accepts is one it can store
# (tests/bridge/test_hostile_ingest.py): a message accepted here and then refused by the
# database would fail every batch it joined, with the other kiosks' messages in it. PostgreSQL
# INTEGER and BIGINT columns; 16- and 32-bit Modbus registers (firmware_configs/laundry.py).
INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1
U16_MAX: Final = 0xFFFF
U32_MAX: Final = 0xFFFF_FFFF
# Aware times from 1900 (a Raspberry Pi without NTP boots at 1970, which is 1969 west of UTC)
# to long before the end of Python's calendar (9999), so that converting one to UTC or adding
# days to it cannot overflow anywhere.
EARLIEST_TIME: Final = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_TIME: Final = datetime(9000, 1, 1, tzinfo=UTC)
# Every aware time of an upstream message: pydantic compares the instant, whatever the zone.
StorableTime = Annotated[AwareDatetime, Field(ge=EARLIEST_TIME, le=LATEST_TIME)]

SLUG_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,31}$"
_SLUG_RE: Final = re.compile(SLUG_PATTERN)

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
# HMAC-SHA256 of a resident's card or phone number with the per-site secret, hex encoded.
Pseudonym = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ContractError(ValueError):
    """A message or topic that breaks this contract. `reason` says how, for logs and dead letters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Channel(StrEnum):
    STATUS = "status"
    READINGS = "readings"
    EVENTS = "events"
    TELEMETRY = "telemetry"
    COMMANDS = "commands"
    COMMAND_RESULTS = "command_results"
    BATCH = "batch"
    ACKS = "acks"


# Channels whose topic has a last level naming the kind, type or request id.
_NAMED_CHANNELS: Final = {
    Channel.READINGS,
    Channel.EVENTS,
    Channel.COMMANDS,
    Channel.COMMAND_RESULTS,
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
    def telemetry(self) -> str:
        return f"{self.root}/{Channel.TELEMETRY}"

    @property
    def acks(self) -> str:
        return f"{self.root}/{Channel.ACKS}"

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
    if channel in (Channel.COMMANDS, Channel.COMMAND_RESULTS) and not _REQUEST_ID_RE.match(str(name)):
        raise ContractError(f"topic {topic!r}: request id {name!r} is not 1-64 letters, digits, '-' or '_'")
    return ParsedTopic(topics.site, topics.kiosk, channel, name)


class _Strict(BaseModel):
    # Unknown fields are an error, not silently dropped: a producer with a typo or a newer
    # schema must be noticed, not half-stored. Floats are finite: JSON has no NaN or infinity
    # (RFC 8259, 6), yet Python's parser reads NaN, Infinity and 1e400, and PostgreSQL's json
    # refuses them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- What the bridge's database can hold ----------------------------------------------------
#
# The models' own types keep a typed field storable as it is validated: floats finite (_Strict),
# every integer field bounded within 64 bits, every aware time a StorableTime. What they cannot
# see is a NUL inside a string (it is checked on the body, see _refuse_nul) and what free-form
# JSON holds (StorableJson).


def _unstorable(value: Any, where: str = "") -> tuple[str, str] | None:
    """Where (a dotted path, "" for `value` itself) and what the first value is inside `value`
    (parsed JSON, or a model's dump) that a store cannot hold: NUL in a string or a key
    (PostgreSQL's text and jsonb refuse it), a float that is not finite, an integer past 64 bits."""
    if isinstance(value, str):
        if "\x00" in value:
            return where, "a NUL character in a string"
    elif isinstance(value, bool) or value is None:
        return None
    elif isinstance(value, int):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            return where, "an integer past 64 bits"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return where, "a number that is not finite"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable(key, where) or _unstorable(item, f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _unstorable(item, f"{where}.{index}" if where else str(index))
            if found is not None:
                return found
    return None


def check_storable(value: Any, where: str) -> None:
    """Raise ContractError for the first value inside `value` that a store cannot hold (see
    _unstorable); `where` names `value` in the reason."""
    found = _unstorable(value, where)
    if found is not None:
        raise ContractError(f"{found[0] or 'body'}: {found[1]}")


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    found = _unstorable(value)
    if found is not None:
        where, what = found
        # The text goes in as context: a key of the JSON may hold braces.
        raise PydanticCustomError("not_storable", "{problem}", {"problem": f"{what} at {where}" if where else what})
    return value


# A free-form JSON object (a command result's `data`): its values have no type to bound them,
# so they are walked, once, as they are validated.
StorableJson = Annotated[dict[str, Any], AfterValidator(_storable_json)]


class DeviceIdentity(_Strict):
    model: str = Field(min_length=1, max_length=64)
    address: str = Field(min_length=1, max_length=64, description="BLE MAC or Modbus unit")
    firmware: str | None = Field(default=None, max_length=64)


# --- Reading payloads, one model per ReadingKind -------------------------------------------


class ReadingPayload(_Strict):
    """What every reading payload carries besides its values."""

    # A field sent as an IEEE-11073 special value is null and named here ("nan", "nres", ...).
    special_values: dict[str, str] = Field(default_factory=dict)
    # Why the kiosk judged the reading implausible (drivers/plausibility.py); [] = plausible.
    # A suspect reading is still delivered and stored, marked, never silently taken as good.
    suspect: list[str] = Field(default_factory=list)
    subject: Pseudonym | None = Field(default=None, description="resident pseudonym; null = anonymous")

    def _require(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) is None and name not in self.special_values:
                raise ValueError(f"{name} is null but not named in special_values")


class BloodPressurePayload(ReadingPayload):
    """Bluetooth SIG Blood Pressure Measurement (0x2A35), decoded; absent fields are null."""

    unit: Literal["mmHg", "kPa"]
    systolic: float | None
    diastolic: float | None
    mean_arterial_pressure: float | None
    pulse_rate: float | None = None
    user_id: int | None = Field(default=None, ge=0, le=255)
    status: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pressures_present(self) -> BloodPressurePayload:
        self._require("systolic", "diastolic")
        return self


class GlucosePayload(ReadingPayload):
    """Glucose Measurement (0x2A18), in mmol/L as Chinese clinics read it, or mg/dL."""

    glucose_concentration: float | None
    unit: Literal["mg/dL", "mmol/L"]
    sequence_number: int | None = Field(default=None, ge=0, le=0xFFFF, description="the meter's record number")
    sample_location: str | None = None

    @model_validator(mode="after")
    def _value_present(self) -> GlucosePayload:
        self._require("glucose_concentration")
        return self


class TemperaturePayload(ReadingPayload):
    temperature: float | None
    unit: Literal["Cel", "degF"]
    temperature_type: str | None = None

    @model_validator(mode="after")
    def _value_present(self) -> TemperaturePayload:
        self._require("temperature")
        return self


class WeightPayload(ReadingPayload):
    weight: float | None
    unit: Literal["kg", "lb"]
    bmi: float | None = None

    @model_validator(mode="after")
    def _value_present(self) -> WeightPayload:
        self._require("weight")
        return self


class Spo2Payload(ReadingPayload):
    spo2: float | None
    pulse_rate: float | None

    @model_validator(mode="after")
    def _value_present(self) -> Spo2Payload:
        self._require("spo2")
        return self


READING_PAYLOADS: Final[dict[ReadingKind, type[BaseModel]]] = {
    ReadingKind.BLOOD_PRESSURE: BloodPressurePayload,
    ReadingKind.GLUCOSE: GlucosePayload,
    ReadingKind.TEMPERATURE: TemperaturePayload,
    ReadingKind.WEIGHT: WeightPayload,
    ReadingKind.SPO2: Spo2Payload,
}


# --- Event payloads, one model per EventType ---------------------------------------------


class EventType(StrEnum):
    LAUNDRY_MACHINE = "laundry_machine"  # a machine's state, fault or link changed
    LAUNDRY_VEND = "laundry_vend"  # a start transaction moved: started (charged), refused, done, ...
    RELAY_CHECKIN = "relay_checkin"  # a worker checked in at a 24-hour love relay station
    RELAY_CHECKOUT = "relay_checkout"  # ... and out (or the visit expired unclosed)


_EVENT_TYPES: Final = frozenset(event.value for event in EventType)


ModbusUnit = Annotated[int, Field(ge=1, le=247)]  # Modbus over Serial Line v1.02, 2.2


class LaundryMachineEvent(_Strict):
    """Sent when a machine's state, error code or link state changes (not on every poll)."""

    unit: ModbusUnit
    state: Literal["idle", "ready", "running", "paused", "done", "fault", "service", "unknown"] = Field(
        description="'unknown' until the machine has answered once"
    )
    link: Literal["online", "degraded", "offline"]
    # Each from a register of the machine's map: 16 or 32 bits.
    program: int | None = Field(default=None, ge=0, le=U16_MAX)
    remaining_seconds: int | None = Field(default=None, ge=0, le=U32_MAX)
    error_code: int | None = Field(default=None, ge=1, le=U16_MAX)
    error_text: dict[Literal["zh", "en"], str] | None = Field(default=None, description="the map's text for the code")
    link_error: str | None = Field(default=None, max_length=200, description="why the link is not online")
    cycle_count: int | None = Field(default=None, ge=0, le=U32_MAX)


class LaundryVendEvent(_Strict):
    """One step of a start transaction. Points are charged in exactly one event per transaction:
    outcome 'started', on the machine's own confirmation."""

    transaction_id: uuid.UUID
    unit: ModbusUnit
    program: int = Field(ge=0, le=0xFFFF)
    outcome: Literal["started", "refused", "not_started", "cycle_done", "faulted", "collected"]
    points_charged: int = Field(default=0, ge=0, le=INT32_MAX)
    free_reason: Literal["over_80"] | None = None
    reason: str | None = Field(default=None, max_length=200, description="why it was refused or did not start")
    subject: Pseudonym | None = Field(default=None, description="the resident's pseudonym")


RelayMethod = Literal["phone_last4", "qr"]


class RelayCheckinEvent(_Strict):
    """A courier, rider or sanitation worker checked in at a love relay station. Who is a
    pseudonym of their phone's last four digits or their QR code, never the digits."""

    visit_id: uuid.UUID
    subject: Pseudonym
    method: RelayMethod
    inside: int = Field(ge=0, le=INT64_MAX, description="people inside after this check-in")


class RelayCheckoutEvent(_Strict):
    """A visit ended: checked out by the worker, or `expired` (never checked out within the
    station's maximum stay; it no longer counts as inside)."""

    visit_id: uuid.UUID = Field(description="the visit_id of its relay_checkin")
    subject: Pseudonym
    method: RelayMethod
    reason: Literal["checked_out", "expired"]
    stay_s: float = Field(ge=0, description="how long the visit lasted, by the kiosk's clock")
    inside: int = Field(ge=0, le=INT64_MAX, description="people inside after this check-out")


EVENT_PAYLOADS: Final[dict[EventType, type[BaseModel]]] = {
    EventType.LAUNDRY_MACHINE: LaundryMachineEvent,
    EventType.LAUNDRY_VEND: LaundryVendEvent,
    EventType.RELAY_CHECKIN: RelayCheckinEvent,
    EventType.RELAY_CHECKOUT: RelayCheckoutEvent,
}


# --- Telemetry ------------------------------------------------------------------------------


class OutboxDepth(_Strict):
    records: int = Field(ge=0, le=INT32_MAX, description="undelivered records of this class")
    oldest_age_s: float | None = Field(default=None, ge=0, description="age of the oldest; null if none")


class DeviceTelemetry(_Strict):
    address: str = Field(min_length=1, max_length=64, description="BLE address, or modbus-unit-{n}")
    model: str = Field(min_length=1, max_length=64)
    link: Literal["online", "degraded", "offline", "unknown"] = "unknown"
    battery_percent: int | None = Field(default=None, ge=0, le=100)
    last_reading_at: StorableTime | None = None
    clock_offset_s: float | None = Field(
        default=None, description="the device's clock minus the kiosk's when last connected, before the kiosk set it"
    )
    last_seen_at: StorableTime | None = Field(
        default=None,
        description="a Bluetooth device's last connection (it is reachable only while it measures, "
        "so its link stays 'unknown' and this is what tells a silent device from a lost one)",
    )


class KioskTelemetry(_Strict):
    """The kiosk's own health, on a schedule (telemetry topic)."""

    uptime_s: float = Field(ge=0)
    outbox: dict[Literal["health", "event", "telemetry"], OutboxDepth]
    outbox_bytes: int = Field(ge=0, le=INT64_MAX)
    outbox_budget_bytes: int = Field(ge=0, le=INT64_MAX)
    health_over_budget: bool = Field(description="only health readings left, over the budget: kept, and alarming")
    refused_records: int = Field(default=0, ge=0, le=INT64_MAX, description="records the bridge refused as breaking the contract: kept, not sent")
    disk_free_bytes: int | None = Field(default=None, ge=0, le=INT64_MAX)
    cpu_temperature_c: float | None = None
    clock_synchronised: bool = Field(description="false until NTP has set the kiosk's clock (a Pi has no RTC)")
    devices: list[DeviceTelemetry] = Field(default_factory=list, max_length=256)


# --- Remote commands ------------------------------------------------------------------------


class CommandName(StrEnum):
    PING = "ping"
    STATUS = "status"  # the kiosk's telemetry, now
    RELOAD_CONFIG = "reload_config"  # re-read the configuration file; a bad one is refused, the old one kept
    RECONNECT_DEVICE = "reconnect_device"  # args: address
    LAUNDRY_START = "laundry_start"  # args: unit, program, subject
    LAUNDRY_STOP = "laundry_stop"  # args: unit
    LAUNDRY_CLEAR_FAULT = "laundry_clear_fault"  # args: unit
    FLUSH_OUTBOX = "flush_outbox"  # send everything unconfirmed again, now
    EXPORT_DIAGNOSTICS = "export_diagnostics"


class NoArgs(_Strict):
    pass


class DeviceArgs(_Strict):
    address: str = Field(min_length=1, max_length=64, description="the device's address at the kiosk")


class LaundryStartArgs(_Strict):
    unit: ModbusUnit
    program: int = Field(ge=0, le=0xFFFF)
    subject: Pseudonym = Field(description="the resident charged (or started free), as a pseudonym")


class LaundryUnitArgs(_Strict):
    unit: ModbusUnit


# The arguments each command takes: the bridge refuses a command whose arguments do not fit
# before it goes anywhere (the kiosk checks them again).
COMMAND_ARGS: Final[dict[CommandName, type[BaseModel]]] = {
    CommandName.PING: NoArgs,
    CommandName.STATUS: NoArgs,
    CommandName.RELOAD_CONFIG: NoArgs,
    CommandName.RECONNECT_DEVICE: DeviceArgs,
    CommandName.LAUNDRY_START: LaundryStartArgs,
    CommandName.LAUNDRY_STOP: LaundryUnitArgs,
    CommandName.LAUNDRY_CLEAR_FAULT: LaundryUnitArgs,
    CommandName.FLUSH_OUTBOX: NoArgs,
    CommandName.EXPORT_DIAGNOSTICS: NoArgs,
}


REQUEST_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_REQUEST_ID_RE: Final = re.compile(REQUEST_ID_PATTERN)
RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]


class KioskCommand(_Strict):
    """Downstream on …/commands/{request_id}, QoS 1. The request id makes it idempotent: a kiosk
    acts on a request id once, however often it is delivered."""

    schema_version: Literal[1] = SCHEMA_VERSION
    command: CommandName
    args: dict[str, Any] = Field(default_factory=dict, description="per command; checked by the kiosk")
    issued_by: str = Field(min_length=1, max_length=64, description="who asked: for the kiosk's audit log")
    issued_at: AwareDatetime
    expires_at: AwareDatetime | None = Field(
        default=None, description="not acted on after this: a machine must not start a day late"
    )


class CommandOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # tried, and it did not work (or the kiosk restarted mid-way)
    REFUSED = "refused"  # not tried: malformed, expired, unknown device, a bad configuration, ...
    TIMED_OUT = "timed_out"  # no answer within the kiosk's command timeout; it may still finish


class CommandResultPayload(_Strict):
    """Upstream on …/command_results/{request_id}, in an Envelope, through the outbox."""

    request_id: RequestId
    command: str = Field(max_length=64, description="as received (it may have been unknown)")
    outcome: CommandOutcome
    detail: str | None = Field(default=None, max_length=2000)
    data: StorableJson = Field(default_factory=dict)


# --- The envelope ---------------------------------------------------------------------------


class SealedPayload(_Strict):
    """A payload sealed for the bridge (doorstep/sealing.py): libsodium's sealed box of its JSON."""

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="which of the bridge's keys opens it")
    box: str = Field(min_length=1, max_length=MAX_MESSAGE_BYTES, description="base64")


class EnvelopeHeader(_Strict):
    """What an envelope carries besides its payload: all the bridge reads to route, deduplicate
    and store a message."""

    schema_version: Literal[1] = SCHEMA_VERSION
    message_id: uuid.UUID = Field(description="minted when the record is first cached; the cloud dedupes on it")
    # At most INT32_MAX, the bridge's column: at 300 records a day a kiosk reaches it in 19,000 years.
    seq: int = Field(ge=0, le=INT32_MAX, description="per-kiosk sequence number, from 1, no gaps")
    kiosk_time: StorableTime = Field(description="the kiosk's clock when the record was cached")
    kiosk_clock_trusted: bool = Field(
        default=True, description="false while the kiosk's clock is not synchronised (a Pi has no RTC)"
    )
    device_time: NaiveDatetime | None = Field(
        default=None, description="the device's own clock, no zone (cuffs' clocks drift); null if unsent"
    )
    device: DeviceIdentity | None = None


def _one_of(payload: object, sealed: SealedPayload | None) -> None:
    if (payload is None) == (sealed is None):
        raise ValueError("exactly one of payload and sealed")


class Envelope(EnvelopeHeader):
    """What every upstream reading, event and telemetry message carries, as the kiosk builds it."""

    payload: dict[str, Any] | None = Field(default=None, description="the payload, or null when it is sealed")
    sealed: SealedPayload | None = Field(default=None, description="the payload sealed for the bridge (readings)")

    @model_validator(mode="after")
    def _payload_or_sealed(self) -> Envelope:
        _one_of(self.payload, self.sealed)
        return self


PayloadT = TypeVar("PayloadT", bound=BaseModel)


class TypedEnvelope(EnvelopeHeader, Generic[PayloadT]):
    """An Envelope as the bridge reads it: the same JSON, its payload typed for its topic, so that
    one pass over the body validates all of it."""

    payload: PayloadT | None = None
    sealed: SealedPayload | None = None

    @model_validator(mode="after")
    def _payload_or_sealed(self) -> TypedEnvelope[PayloadT]:
        _one_of(self.payload, self.sealed)
        return self


@dataclass(frozen=True, slots=True)
class UpstreamMessage:
    """An upstream message that passed validation, with its payload typed for its topic."""

    topic: ParsedTopic
    envelope: EnvelopeHeader  # the whole envelope as it came (encode gives its body back)
    payload: BaseModel  # opened, if it came sealed


# The channels whose messages are envelopes (everything a kiosk sends but its status and batches).
ENVELOPE_CHANNELS: Final = frozenset({Channel.READINGS, Channel.EVENTS, Channel.TELEMETRY, Channel.COMMAND_RESULTS})
# Everything a kiosk publishes: its broker role must let it write each (doorstep/broker_access.py).
UPSTREAM_CHANNELS: Final = frozenset({Channel.STATUS, *ENVELOPE_CHANNELS, Channel.BATCH})


def _typed_envelope(payload_model: type[BaseModel]) -> type[TypedEnvelope[Any]]:
    return TypedEnvelope[payload_model]  # type: ignore[valid-type]  # parametrised at run time, per topic


# The payload model of each envelope topic but command results (any request id), by channel and
# last level (None for telemetry).
_PAYLOAD_MODELS: Final[dict[tuple[Channel, str | None], type[BaseModel]]] = {
    **{(Channel.READINGS, kind.value): model for kind, model in READING_PAYLOADS.items()},
    **{(Channel.EVENTS, event.value): model for event, model in EVENT_PAYLOADS.items()},
    (Channel.TELEMETRY, None): KioskTelemetry,
}
# The envelope model that validates the body of a topic with that payload in one pass.
_ENVELOPE_PAYLOADS: Final[list[type[BaseModel]]] = [*_PAYLOAD_MODELS.values(), CommandResultPayload]
_ENVELOPE_MODELS: Final = {model: _typed_envelope(model) for model in _ENVELOPE_PAYLOADS}


def payload_model_of(topic: ParsedTopic) -> type[BaseModel]:
    """The model of the payload an envelope topic carries."""
    if topic.channel is Channel.COMMAND_RESULTS:
        return CommandResultPayload
    return _PAYLOAD_MODELS[(topic.channel, topic.name)]

# How JSON writes a NUL in a string: the parser refuses a raw control character in one.
_JSON_NUL: Final = b"\\u0000"


def validate_upstream(
    topic: str, body: bytes, open_sealed: Callable[[SealedPayload], bytes] | None = None
) -> UpstreamMessage:
    """Parse and validate one upstream message; raise ContractError with the reason. A sealed
    payload is opened with `open_sealed` (the bridge's keys: the payload's JSON) and validated
    like any other."""
    return validate_envelope(parse_topic(topic), body, open_sealed)


def validate_envelope(
    topic: ParsedTopic, body: bytes, open_sealed: Callable[[SealedPayload], bytes] | None = None
) -> UpstreamMessage:
    """validate_upstream for a topic already parsed."""
    if topic.channel not in ENVELOPE_CHANNELS:
        raise ContractError(f"channel {topic.channel} does not carry an envelope")
    if len(body) > MAX_MESSAGE_BYTES:
        raise ContractError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    model = payload_model_of(topic)
    try:
        envelope = _ENVELOPE_MODELS[model].model_validate_json(body)
    except ValidationError as error:
        raise ContractError(_describe(error)) from None
    if _JSON_NUL in body:
        _refuse_nul(envelope, "")
    payload = envelope.payload
    if envelope.sealed is not None:
        if open_sealed is None:
            raise ContractError("sealed: this reader holds no key to open payloads")
        plain = open_sealed(envelope.sealed)
        try:
            payload = model.model_validate_json(plain)
        except ValidationError as error:
            raise ContractError(_describe(error, "payload")) from None
        if _JSON_NUL in plain:
            _refuse_nul(payload, "payload")
    assert payload is not None
    if isinstance(payload, CommandResultPayload) and payload.request_id != topic.name:
        raise ContractError(f"payload.request_id does not match the topic's {topic.name!r}")
    return UpstreamMessage(topic, envelope, payload)


def _refuse_nul(model: BaseModel, where: str) -> None:
    """Raise ContractError naming the field if a string of `model` holds a NUL. Called only for
    a body that writes the escape (a NUL is refused wherever it is, so this is rare), which may
    also be a literal backslash before "u0000": that is no NUL, and passes."""
    check_storable(model.model_dump(), where)


def _describe(error: ValidationError, within: str = "") -> str:
    """One line naming each bad field, e.g. "seq: Input should be >= 0", and a payload's fields
    within it, "payload: systolic: …" (as kiosks log and report a refusal); `within` names what
    was validated if it was not the body."""
    problems = []
    for item in error.errors(include_url=False):
        loc = [*([within] if within else []), *(str(part) for part in item["loc"])]
        if len(loc) > 1 and loc[0] == "payload":
            where = "payload: " + ".".join(loc[1:])
        else:
            where = ".".join(loc) or "body"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


# --- Batches --------------------------------------------------------------------------------

# A kiosk with a backlog sends its QoS 1 records many to a message, on its …/batch topic:
#     {"schema_version": 1, "records": [{"channel": "readings/blood_pressure", "envelope": {…}}, …]}
# one record per MQTT message drained a backlog at 0.18 of raw paho's rate (benchmarks/drain.py).
# Each record is the envelope exactly as it would be sent alone on its own topic, and `channel`
# is that topic's tail: the record's topic is built from the batch topic's site and kiosk, so a
# batch cannot speak for another kiosk. Telemetry (QoS 0: lost is replaced) is never batched.
BATCHED_CHANNELS: Final = frozenset({Channel.READINGS, Channel.EVENTS, Channel.COMMAND_RESULTS})
# At most this many records a batch, so that one Ack (MAX_ACK_IDS) confirms a whole batch; the
# body stays within MAX_MESSAGE_BYTES too, whatever the count.
MAX_BATCH_RECORDS: Final = 500
# What a topic's tail below a kiosk can hold (channel, kind or type, request id): a record's
# topic is built from it, and must be one a dead letter can name (no NUL for PostgreSQL).
_CHANNEL_TAIL: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64})?$")
_BATCH_OPEN: Final = b'{"schema_version":%d,"records":[' % SCHEMA_VERSION
_BATCH_CLOSE: Final = b"]}"
# The bytes of a batch with no records: each record adds its entry and, but the first, a comma.
BATCH_CONTAINER_BYTES: Final = len(_BATCH_OPEN) + len(_BATCH_CLOSE)


def batch_entry(channel: str, envelope: bytes) -> bytes:
    """One record of a batch: its channel (the tail of its own topic) and its envelope's bytes
    as stored, not serialised again."""
    return b'{"channel":' + json.dumps(channel).encode() + b',"envelope":' + envelope + b"}"


def encode_batch(entries: Sequence[bytes]) -> bytes:
    """The body of a batch of `batch_entry`s."""
    return _BATCH_OPEN + b",".join(entries) + _BATCH_CLOSE


def batched_channel(topics: KioskTopics, topic: str) -> str | None:
    """The channel a record on `topic` has in a batch of this kiosk's, or None if it is not one
    that may travel in a batch (telemetry, another kiosk's topic)."""
    prefix = topics.root + "/"
    if not topic.startswith(prefix):
        return None
    channel = topic[len(prefix) :]
    return channel if channel.partition("/")[0] in BATCHED_CHANNELS else None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    channel: str  # the tail of its own topic
    topic: str  # its own topic, under the batch topic's kiosk
    body: bytes  # its envelope, as it would be sent alone on that topic
    message_id: uuid.UUID | None  # as far as it can be read, for telling the kiosk of a refusal


class BatchRefused(ContractError):
    """A batch whose container breaks the contract: refused as a whole. `message_ids` are its
    records' ids when every record could be identified (the kiosk is told they are refused),
    else empty (the kiosk is told nothing and sends them again)."""

    def __init__(self, reason: str, message_ids: tuple[uuid.UUID, ...] = ()) -> None:
        super().__init__(reason)
        self.message_ids = message_ids


def split_batch(topic: str, body: bytes) -> list[BatchRecord]:
    """The records of a batch, each as the topic and body it would have alone, to be validated
    like any message on that topic (validate_upstream) once `check_batched`. Raises
    BatchRefused for a container that breaks the contract: not JSON, not exactly
    `schema_version` 1 and 1 to MAX_BATCH_RECORDS `records`, each exactly a string `channel`
    and an `envelope`."""
    parsed = parse_topic(topic)
    if parsed.channel is not Channel.BATCH:
        raise ContractError(f"topic {topic!r} is not a batch topic")
    if len(body) > MAX_MESSAGE_BYTES:
        raise BatchRefused(f"batch of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        container = json.loads(body)
    except RecursionError:
        raise BatchRefused("batch: nested too deeply") from None
    except ValueError as error:  # UnicodeDecodeError too
        raise BatchRefused(f"batch: not JSON: {str(error)[:200]}") from None
    records = container.get("records") if isinstance(container, dict) else None
    if not isinstance(records, list):
        raise BatchRefused("batch: not an object with a list of records")
    ids = tuple(_record_id(record) for record in records)
    known = tuple(i for i in ids if i is not None) if None not in ids else ()
    if set(container) != {"schema_version", "records"}:
        raise BatchRefused("batch: its fields must be exactly schema_version and records", known)
    version = container["schema_version"]
    if not (type(version) is int and version == SCHEMA_VERSION):
        raise BatchRefused(f"batch: schema_version must be {SCHEMA_VERSION}", known)
    if not 1 <= len(records) <= MAX_BATCH_RECORDS:
        raise BatchRefused(f"batch of {len(records)} records: from 1 to {MAX_BATCH_RECORDS}", known)
    found = []
    for index, record in enumerate(records):
        if not (isinstance(record, dict) and set(record) == {"channel", "envelope"}
                and isinstance(record["channel"], str) and _CHANNEL_TAIL.match(record["channel"])):
            raise BatchRefused(f"batch: records.{index} must be exactly a channel (its topic's tail) and an envelope", known)
        try:
            # Serialised again (the original bytes are not kept by json), as compactly: a record
            # is validated as it would be alone, refused with the reasons it would have alone.
            envelope = json.dumps(record["envelope"], ensure_ascii=False, separators=(",", ":"))
        except RecursionError:
            raise BatchRefused("batch: nested too deeply", known) from None
        # A lone surrogate (from a "\ud800" escape) stays the invalid UTF-8 it is, refused as alone.
        channel = record["channel"]
        found.append(BatchRecord(channel, f"{parsed.kiosk_topics.root}/{channel}",
                                 envelope.encode("utf-8", "surrogatepass"), ids[index]))
    return found


def check_batched(record: BatchRecord) -> None:
    """Raise ContractError if a record of a batch is on a channel that may not travel in one
    (its topic as a whole is validated with its envelope)."""
    channel = record.channel.partition("/")[0]
    if channel not in BATCHED_CHANNELS:
        raise ContractError(f"topic {record.topic!r}: channel {channel} is not sent in a batch")


def _record_id(record: Any) -> uuid.UUID | None:
    envelope = record.get("envelope") if isinstance(record, dict) else None
    message_id = envelope.get("message_id") if isinstance(envelope, dict) else None
    try:
        return uuid.UUID(message_id) if isinstance(message_id, str) else None
    except ValueError:
        return None


# --- Status, acks ---------------------------------------------------------------------------


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


class KioskState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Status(_Strict):
    """Retained on …/status: "online" when the agent connects, "offline" as its Last Will."""

    state: KioskState
    at: StorableTime | None = Field(default=None, description="null in the Last Will, set long before it fires")


def decode_status(body: bytes) -> Status:
    """A retained status as the bridge takes it; ContractError ("status: …") for anything else."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise ContractError(f"status of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        status = Status.model_validate_json(body)
    except ValidationError as error:
        raise ContractError(f"status: {error.errors(include_url=False)[0]['msg']}") from None
    return status


# The bridge confirms at most this many ids per Ack so one message stays far below MAX_MESSAGE_BYTES.
MAX_ACK_IDS: Final = 500


class RefusedMessage(_Strict):
    message_id: uuid.UUID
    reason: str = Field(max_length=500, description="why it breaks this contract, e.g. 'payload.systolic: …'")


class Ack(_Strict):
    """Sent by the bridge on a kiosk's …/acks after its database commit. `message_ids` are
    stored. `refused` were refused for breaking this contract and kept as dead letters: sending
    them again cannot help, so the kiosk stops, keeps them for a technician, and reports them."""

    message_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_ACK_IDS)
    refused: list[RefusedMessage] = Field(default_factory=list, max_length=MAX_ACK_IDS)

    @model_validator(mode="after")
    def _not_empty(self) -> Ack:
        if not self.message_ids and not self.refused:
            raise ValueError("an ack confirms or refuses at least one message")
        return self


def encode(model: BaseModel) -> bytes:
    """The canonical JSON body of a message."""
    return model.model_dump_json().encode()


def decode_command(body: bytes) -> KioskCommand:
    if len(body) > MAX_MESSAGE_BYTES:
        raise ContractError(f"command of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return KioskCommand.model_validate_json(body)
    except ValidationError as error:
        raise ContractError(_describe(error)) from None


def decode_ack(body: bytes) -> Ack:
    try:
        return Ack.model_validate_json(body)
    except ValidationError as error:
        raise ContractError(_describe(error)) from None

