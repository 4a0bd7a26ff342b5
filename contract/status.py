"""A kiosk's retained status (online, or its Last Will offline) and the bridge's Ack of what it
stored or refused."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Final

from pydantic import Field, ValidationError, model_validator

from contract.codec import MAX_MESSAGE_BYTES, describe
from contract.errors import ContractError
from contract.storable import StorableTime, StrictModel


class KioskState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Status(StrictModel):
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


class RefusedMessage(StrictModel):
    message_id: uuid.UUID
    reason: str = Field(max_length=500, description="why it breaks this contract, e.g. 'payload.systolic: …'")


class Ack(StrictModel):
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


def decode_ack(body: bytes) -> Ack:
    try:
        return Ack.model_validate_json(body)
    except ValidationError as error:
        raise ContractError(describe(error)) from None

