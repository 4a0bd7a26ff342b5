"""A kiosk's alarms: the conditions at its limits that a person must act on, retained on its
…/alarms topic (docs/protocol.md, "Alarms").

The message is the current set, not an event: the agent publishes it on every connect before
any backlog, and again whenever the set changes, so the bridge learns of a full disk ahead of
the records waiting behind it, and an empty set resolves what was raised. It is never stored in
the outbox (nothing there can evict it or queue it behind a backlog).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, ValidationError, model_validator

from contract.codec import MAX_MESSAGE_BYTES, describe
from contract.errors import ContractError
from contract.storable import StorableTime, StrictModel


class AlarmCondition(StrEnum):
    OUTBOX_FULL = "outbox_full"  # only health readings left, over the outbox's budget: kept, and alarming
    DISK_FULL = "disk_full"  # the outbox's filesystem has no room for one more save
    CANNOT_SAVE = "cannot_save"  # the last save failed (a full disk, a read-only or broken database)


class Alarm(StrictModel):
    condition: AlarmCondition
    since: StorableTime = Field(description="the kiosk's time the condition began")
    message: str = Field(max_length=500, description="plain words, for a technician")


class Alarms(StrictModel):
    """Retained on …/alarms: every condition that holds now, none repeated; [] when all is well."""

    at: StorableTime = Field(description="the kiosk's time this set was taken")
    alarms: list[Alarm] = Field(default_factory=list, max_length=len(AlarmCondition))

    @model_validator(mode="after")
    def _each_once(self) -> Alarms:
        conditions = [alarm.condition for alarm in self.alarms]
        if len(set(conditions)) != len(conditions):
            raise ValueError("a condition is listed once")
        return self

    @property
    def conditions(self) -> frozenset[AlarmCondition]:
        return frozenset(alarm.condition for alarm in self.alarms)


def decode_alarms(body: bytes) -> Alarms:
    """A retained alarms message as the bridge takes it; ContractError for anything else."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise ContractError(f"alarms of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return Alarms.model_validate_json(body)
    except ValidationError as error:
        raise ContractError("alarms: " + describe(error)) from None
