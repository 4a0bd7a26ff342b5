"""A message's body: the most bytes one may have, its canonical JSON (encode), and a refusal
in one line (describe)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ValidationError


# A message body larger than this is refused before it is parsed: the biggest legitimate
# message (an ack batch of 500 ids) is ~20 KB, and parsing untrusted megabytes costs memory.
MAX_MESSAGE_BYTES: Final = 64 * 1024


def encode(model: BaseModel) -> bytes:
    """The canonical JSON body of a message."""
    return model.model_dump_json().encode()


def describe(error: ValidationError, within: str = "") -> str:
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
