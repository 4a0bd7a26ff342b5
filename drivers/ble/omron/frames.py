"""Omron's command/response frames over its vendor service, without I/O.

Source: userx14/omblepy omblepy.py (commit 708c13e), class bluetoothTxRxHandler; the same frames
in eigger/hass-omron omron_ble/omron_driver.py (commit d6758ed), open/close_memory_session and
read/write_memory_block. A frame is

    [length][type, 2 bytes][address, 2 bytes big-endian][data length][data ...][0x00][xor]

where ``length`` counts the whole frame and the last byte makes the XOR of every byte 0.
Frames travel in 16-byte pieces: on the older four-channel service piece i goes to channel i
(channel 0 first), on the newer single-channel service the whole frame goes to one channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import reduce
from operator import xor
from typing import Final

from drivers.ble.errors import DecodeError

CHARACTERISTIC = "omron-frame"
HEADER_SIZE: Final = 6  # length, type (2), address (2), data length
TRAILER_SIZE: Final = 2  # 0x00, xor
PIECE_SIZE: Final = 16  # bytes per channel write or notification (omblepy: commandCopy[:16])

# Fixed frames (omblepy startTransmission / endTransmission).
START_TRANSMISSION: Final = bytes.fromhex("0800000000100018")
END_TRANSMISSION: Final = bytes.fromhex("080f000000000007")

_READ_TYPE: Final = bytes.fromhex("0100")
_WRITE_TYPE: Final = bytes.fromhex("01c0")


class ResponseType(Enum):
    """The type field of the cuff's answers (the command's type with bit 7 set)."""

    STARTED = bytes.fromhex("8000")
    READ = bytes.fromhex("8100")
    WRITTEN = bytes.fromhex("81c0")
    ENDED = bytes.fromhex("8f00")


@dataclass(frozen=True, slots=True)
class Response:
    type: ResponseType
    address: int
    data: bytes  # the data of a read; for STARTED/ENDED the status byte (0 = success)


def checksum(frame: bytes) -> int:
    return reduce(xor, frame, 0)


def _frame(type_: bytes, address: int, length_field: int, data: bytes) -> bytes:
    body = bytes([HEADER_SIZE + len(data) + TRAILER_SIZE]) + type_ + address.to_bytes(2, "big")
    body += bytes([length_field]) + data + b"\x00"
    return body + bytes([checksum(body)])


def read_command(address: int, size: int) -> bytes:
    """Ask for ``size`` bytes at ``address`` (omblepy _readBlockEeprom)."""
    return _frame(_READ_TYPE, address, size, b"")


def write_command(address: int, data: bytes) -> bytes:
    """Write ``data`` at ``address`` (omblepy _writeBlockEeprom)."""
    return _frame(_WRITE_TYPE, address, len(data), data)


def read_response(address: int, data: bytes) -> bytes:
    """The cuff's answer to a read (the simulator's side)."""
    return _frame(ResponseType.READ.value, address, len(data), data)


def control_response(type_: ResponseType, address: int = 0, status: int = 0) -> bytes:
    """The cuff's answer to start, end or a write (the simulator's side)."""
    return _frame(type_.value, address, 0, bytes([status]) if type_ in (ResponseType.STARTED, ResponseType.ENDED) else b"")


def pieces(frame: bytes) -> list[bytes]:
    """The 16-byte pieces of a frame for the four-channel service, piece i on channel i."""
    return [frame[i:i + PIECE_SIZE] for i in range(0, len(frame), PIECE_SIZE)]


def decode_response(frame: bytes) -> Response:
    """The cuff's answer, checked: length, checksum, type, and that a read carries all it promised
    (omblepy pads a short block with 0xff; we refuse it, so a record is never made up)."""
    if len(frame) < HEADER_SIZE + TRAILER_SIZE:
        raise DecodeError(CHARACTERISTIC, "length", f"{len(frame)} bytes is shorter than an empty frame")
    length = frame[0]
    if length > len(frame):
        raise DecodeError(CHARACTERISTIC, "length", f"promises {length} bytes, {len(frame)} arrived")
    frame = frame[:length]
    if checksum(frame) != 0:
        raise DecodeError(CHARACTERISTIC, "checksum", f"xor of the frame is {checksum(frame):#04x}, not 0")
    try:
        type_ = ResponseType(bytes(frame[1:3]))
    except ValueError:
        raise DecodeError(CHARACTERISTIC, "type", f"{frame[1:3].hex()} is not an answer we know") from None
    address = int.from_bytes(frame[3:5], "big")
    promised = frame[5]
    body = bytes(frame[HEADER_SIZE:length - TRAILER_SIZE])
    if type_ in (ResponseType.STARTED, ResponseType.ENDED):
        # The status byte sits where data would (omblepy: "need special case for end of transmission").
        return Response(type_, address, frame[HEADER_SIZE:HEADER_SIZE + 1])
    if type_ is ResponseType.READ and len(body) < promised:
        raise DecodeError(CHARACTERISTIC, "data", f"short block: {promised} bytes promised, {len(body)} sent")
    return Response(type_, address, body[:promised] if type_ is ResponseType.READ else b"")


class FrameAssembler:
    """Notifications in, whole frames out. On the single-channel service each notification is a
    frame; on the four-channel one channel 0 starts a frame whose first byte says how many
    channels it spans (omblepy _callbackForRxChannels)."""

    def __init__(self, channels: int) -> None:
        self._channels = channels
        self._pieces: list[bytes | None] = [None] * channels

    def feed(self, channel: int, piece: bytes) -> bytes | None:
        if self._channels == 1:
            return bytes(piece)
        if channel == 0:
            self._pieces = [None] * self._channels  # a new frame; stale pieces are dropped
        self._pieces[channel] = bytes(piece)
        first = self._pieces[0]
        if not first:
            return None
        parts = self._pieces[:max(1, min(self._channels, -(-first[0] // PIECE_SIZE)))]
        if any(part is None for part in parts):
            return None
        self._pieces = [None] * self._channels
        return b"".join(part for part in parts if part is not None)


# -- unlocking the memory (before start) --

TOKEN_UNLOCK: Final = 0x11  # + 4 bytes of our choosing + 15 zero bytes (hass-omron _token_unlock)
TOKEN_UNLOCKED: Final = 0x91  # + status 0x00 + the 4 bytes echoed
KEY_UNLOCK: Final = 0x01  # + the 16-byte key programmed at pairing (omblepy unlockWithUnlockKey)
KEY_UNLOCKED: Final = bytes.fromhex("8100")
# Programming the key, only while the cuff is in pairing mode ("-P-"): omblepy omblepy.py
# writeNewUnlockKey (commit 0dddc07) first asks for key programming with 0x02 + 16 zero bytes,
# answered 0x82 0x00 ("Has the device been started in pairing mode?" otherwise), then sends
# 0x00 + the 16-byte key, answered 0x80 0x00.
KEY_PROGRAMMING: Final = 0x02
KEY_PROGRAMMING_OPEN: Final = bytes.fromhex("8200")
KEY_STORE: Final = 0x00
KEY_STORED: Final = bytes.fromhex("8000")
KEY_SIZE: Final = 16


def token_unlock(token: bytes) -> bytes:
    if len(token) != 4:
        raise ValueError("an unlock token is 4 bytes")
    return bytes([TOKEN_UNLOCK]) + token + bytes(15)


def is_token_unlocked(answer: bytes, token: bytes) -> bool:
    return len(answer) >= 6 and answer[0] == TOKEN_UNLOCKED and answer[1] == 0 and answer[2:6] == token


def key_unlock(key: bytes) -> bytes:
    return bytes([KEY_UNLOCK]) + _checked(key)


def key_programming() -> bytes:
    return bytes([KEY_PROGRAMMING]) + bytes(KEY_SIZE)


def key_store(key: bytes) -> bytes:
    return bytes([KEY_STORE]) + _checked(key)


def _checked(key: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise ValueError(f"an unlock key is {KEY_SIZE} bytes")
    return key


def is_key_unlocked(answer: bytes) -> bool:
    return answer[:2] == KEY_UNLOCKED
