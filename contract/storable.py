"""What the bridge's database can hold: integer and time bounds, the strict base of every
message model, and the check for what a model's types cannot see (a NUL, free-form JSON)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from contract.errors import ContractError


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


class StrictModel(BaseModel):
    # Unknown fields are an error, not silently dropped: a producer with a typo or a newer
    # schema must be noticed, not half-stored. Floats are finite: JSON has no NaN or infinity
    # (RFC 8259, 6), yet Python's parser reads NaN, Infinity and 1e400, and PostgreSQL's json
    # refuses them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- What the bridge's database can hold ----------------------------------------------------
#
# The models' own types keep a typed field storable as it is validated: floats finite (StrictModel),
# every integer field bounded within 64 bits, every aware time a StorableTime. What they cannot
# see is a NUL inside a string (envelope.py checks the body for one, _refuse_nul) and what free-form
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
