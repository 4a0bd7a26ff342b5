"""The envelope every upstream reading, event, telemetry and command result travels in, and
its validation: one pass over a body validates the envelope and its payload, typed for its topic
(validate_upstream); a sealed payload is opened with the bridge's keys and validated alike."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, NaiveDatetime, ValidationError, model_validator

from contract.codec import MAX_MESSAGE_BYTES, describe
from contract.commands import CommandResultPayload
from contract.errors import ContractError
from contract.payloads import EVENT_PAYLOADS, READING_PAYLOADS, DeviceIdentity
from contract.storable import INT32_MAX, StorableTime, StrictModel, check_storable
from contract.telemetry import KioskTelemetry
from contract.topics import ENVELOPE_CHANNELS, SCHEMA_VERSION, Channel, ParsedTopic, parse_topic


class SealedPayload(StrictModel):
    """A payload sealed for the bridge (contract/sealing.py): libsodium's sealed box of its JSON,
    or, with `sender`, a session box (crypto_box from the kiosk's session key, nonce first)."""
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="which of the bridge's keys opens it")
    sender: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9+/]{43}=$", exclude_if=lambda sender: sender is None,
        description="a session box's sender: the kiosk's session public key (X25519, base64); absent for a sealed box",
    )
    box: str = Field(min_length=1, max_length=MAX_MESSAGE_BYTES, description="base64")


class EnvelopeHeader(StrictModel):
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


def batched_envelope_models() -> dict[str, type[TypedEnvelope[Any]]]:
    """The envelope model of each reading's and event's topic tail ("readings/blood_pressure"):
    the records of a batch that are validated with their container (contract/batch.py)."""
    return {
        f"{channel.value}/{name}": _ENVELOPE_MODELS[model]
        for (channel, name), model in _PAYLOAD_MODELS.items()
        if channel in (Channel.READINGS, Channel.EVENTS)
    }


# How JSON writes a NUL in a string: the parser refuses a raw control character in one.
JSON_NUL: Final = b"\\u0000"


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
    try:
        envelope = envelope_model_of(topic).model_validate_json(body)
    except ValidationError as error:
        raise ContractError(describe(error)) from None
    if JSON_NUL in body:
        _refuse_nul(envelope, "")
    return open_envelope(topic, envelope, open_sealed)


def envelope_model_of(topic: ParsedTopic) -> type[TypedEnvelope[Any]]:
    """The model that validates an envelope on `topic` with its payload, in one pass."""
    return _ENVELOPE_MODELS[payload_model_of(topic)]


def open_envelope(
    topic: ParsedTopic, envelope: TypedEnvelope[Any], open_sealed: Callable[[SealedPayload], bytes] | None = None
) -> UpstreamMessage:
    """The message of an envelope validated by envelope_model_of(topic) (its body without a
    NUL): its sealed payload opened and validated, its request id checked against the topic."""
    model = payload_model_of(topic)
    payload = envelope.payload
    if envelope.sealed is not None:
        if open_sealed is None:
            raise ContractError("sealed: this reader holds no key to open payloads")
        plain = open_sealed(envelope.sealed)
        try:
            payload = model.model_validate_json(plain)
        except ValidationError as error:
            raise ContractError(describe(error, "payload")) from None
        if JSON_NUL in plain:
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
