"""Requests refused before anything parses them: a body too large, a JSON body not in UTF-8,
JSON nested too deeply, or NUL (U+0000) anywhere in the path, the query or a JSON body
(PostgreSQL's text cannot hold it, so a query comparing with it, or a login audited with it,
would fail with a 500).

JSON bodies must be UTF-8, with no byte order mark (RFC 8259, 8.1: "JSON text exchanged
between systems that are not part of a closed ecosystem MUST be encoded using UTF-8"; our API's
clients are ours). Python's parser, which FastAPI uses, also reads UTF-16 and UTF-32, detected
from the first bytes (json.detect_encoding): there a NUL escape's bytes are interleaved with
zero bytes, and a scan of UTF-8 bytes missed it (issue 16, finding 6: a 500 on PostgreSQL, a
NUL stored on SQLite). Refusing every other encoding, by the very function the parser uses to
choose one, leaves the scan below reading every body the app will parse, as the app will.

An ASGI middleware, so it runs before FastAPI reads the body: a request declaring a body over
the limit is answered 413 without its body being read at all, one sending more than it
declared (or no length, chunked) is stopped at the limit, and a JSON body is scanned once,
linearly, for its nesting depth before Python's json parser (recursive, as is pydantic's
validation of nested values) sees it. The bridge's largest legitimate body is a command with
its arguments, well under a kilobyte.

Both answers are the API's usual JSON error: {"error": ..., "reason": ...}.
"""

from __future__ import annotations

import email.message
import json
import re
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES: Final = 64 * 1024  # the same bound as an MQTT message (contract/codec.py)
MAX_JSON_DEPTH: Final = 32  # the deepest body the API takes (a command's args) is 3
# A body sent past the limit is read and thrown away up to this much before the answer, so the
# client, still sending, reads a 413 rather than a reset connection; beyond it, the connection
# is simply closed.
DRAIN_AT_MOST: Final = 1024 * 1024
NUL_REASON: Final = "a NUL character (U+0000) in the request: no field may contain one"


def not_utf8_reason(encoding: str) -> str:
    return (f"the JSON body is encoded as {encoding}, not UTF-8: JSON is exchanged in UTF-8, "
            "without a byte order mark (RFC 8259, section 8.1)")


def parsed_as_json(content_type: bytes | None) -> bool:
    """Whether FastAPI parses a body with this Content-Type as JSON, by its own rule
    (fastapi/routing.py): application/json or application/…+json, parameters and case aside,
    and no Content-Type at all (parsed unless the app is strict about content types)."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


@dataclass(frozen=True, slots=True)
class JsonShape:
    depth: int  # the deepest nesting of arrays and objects
    nul: bool  # a string holds U+0000 (the escape \u0000: JSON cannot carry the raw byte)


def scan_json(body: bytes) -> JsonShape:
    """Measure `body` without parsing it (strings and their escapes are skipped, so a
    malformed body is measured too): linear, with no recursion whatever it holds."""
    depth = deepest = 0
    in_string = escaped = nul = False
    for index, byte in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
                if byte == 0x75 and body[index + 1 : index + 5] == b"0000":  # \u0000
                    nul = True
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return JsonShape(deepest, nul)


def json_depth(body: bytes) -> int:
    return scan_json(body).depth


class RequestLimits:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES, max_json_depth: int = MAX_JSON_DEPTH,
        refuse_nul: bool = True, streamed: re.Pattern[str] | None = None,
    ) -> None:
        """`refuse_nul`: for an app whose store cannot hold U+0000 (the bridge's PostgreSQL); the
        kiosk's SQLite can, and its routes name what a NUL makes wrong (a bad QR code).
        `streamed`: the paths of PUT requests whose body is a file the route streams to disk and
        bounds itself (the bridge's release bundles, tens of megabytes): passed on unread."""
        self.app = app
        self.streamed = streamed
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.refuse_nul = refuse_nul

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.refuse_nul and ("\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
                                or b"\x00" in scope.get("query_string", b"")):
            await _refuse(send, 422, "invalid_request", NUL_REASON)
            return
        if self.streamed is not None and scope.get("method") == "PUT" and self.streamed.fullmatch(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _refuse(send, 400, "invalid_request", "the Content-Length header is not a number")
                return
            if length > self.max_body_bytes:
                await _refuse(send, 413, "payload_too_large",
                              f"the body of {length} bytes exceeds {self.max_body_bytes} bytes")
                return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                drained = len(body)
                while more and drained <= DRAIN_AT_MOST:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    drained += len(message.get("body", b""))
                    more = message.get("more_body", False)
                await _refuse(send, 413, "payload_too_large", f"the body exceeds {self.max_body_bytes} bytes")
                return
        if body and parsed_as_json(headers.get(b"content-type")):
            encoding = json.detect_encoding(bytes(body))
            if encoding != "utf-8":  # UTF-16 or UTF-32 (either order), or a UTF-8 byte order mark
                await _refuse(send, 400, "invalid_request", not_utf8_reason(encoding))
                return
            shape = scan_json(bytes(body))
            if shape.depth > self.max_json_depth:
                await _refuse(send, 422, "invalid_request",
                              f"the JSON body is nested {shape.depth} levels deep, more than {self.max_json_depth}")
                return
            if shape.nul and self.refuse_nul:
                await _refuse(send, 422, "invalid_request", NUL_REASON)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


async def _refuse(send: Send, status: int, error: str, reason: str) -> None:
    content = json.dumps({"error": error, "reason": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": content})
