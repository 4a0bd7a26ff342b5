"""Frames out of a reader's byte stream, and the number out of a frame: no I/O.

A reader's stream is split at `framing.end`; with `framing.start`, what comes before a start is
line noise (a reader powering up, a card half in the field) and is dropped. A frame longer than
`framing.max_bytes` is dropped whole, and the splitter waits for the next start or end: a wrong
baud rate gives an endless run of garbage, which must neither grow memory nor become a number.
A start inside a frame restarts it: what came before was a frame cut short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from firmware_configs.readers import Framing, ReaderProfile


class UnreadableFrame(ValueError):
    """A frame the profile's pattern does not match: the reader's fault (or the wire's). The
    message never holds the frame: it may be most of a card number."""


@dataclass
class FrameSplitter:
    framing: Framing
    noise_bytes: int = 0  # dropped since the last `take_noise`: outside frames, or in overlong ones
    _buffer: bytearray = field(default_factory=bytearray)
    _in_frame: bool = False

    def feed(self, data: bytes) -> list[bytes]:
        """The frames `data` completes, without their start and end bytes."""
        self._buffer += data
        frames: list[bytes] = []
        while True:
            if self.framing.start is not None and not self._in_frame and not self._find_start():
                return frames
            end = self._buffer.find(self.framing.end)
            if self._restarted_before(end):
                continue
            if end < 0:
                self._drop_overlong()
                return frames
            frame = bytes(self._buffer[:end])
            del self._buffer[: end + len(self.framing.end)]
            self._in_frame = False
            if len(frame) > self.framing.max_bytes:
                self.noise_bytes += len(frame)
            else:
                frames.append(frame)

    def take_noise(self) -> int:
        noise, self.noise_bytes = self.noise_bytes, 0
        return noise

    def reset(self) -> None:
        """A new connection: a frame half-read before a reader was unplugged is no frame."""
        self._buffer.clear()
        self._in_frame = False

    def _find_start(self) -> bool:
        assert self.framing.start is not None
        start = self._buffer.find(self.framing.start)
        if start < 0:
            # Keep a tail that may be the first bytes of a start split across two reads.
            keep = len(self.framing.start) - 1
            self.noise_bytes += max(0, len(self._buffer) - keep)
            del self._buffer[: max(0, len(self._buffer) - keep)]
            return False
        self.noise_bytes += start
        del self._buffer[: start + len(self.framing.start)]
        self._in_frame = True
        return True

    def _restarted_before(self, end: int) -> bool:
        """A start inside a frame, before its end: the frame was cut short (a card pulled away
        mid-read and tapped again) and the new one begins there. The cut part is noise."""
        if self.framing.start is None:
            return False
        restart = self._buffer.find(self.framing.start, 0, None if end < 0 else end)
        if restart < 0:
            return False
        self.noise_bytes += restart
        del self._buffer[: restart + len(self.framing.start)]
        return True

    def _drop_overlong(self) -> None:
        if len(self._buffer) > self.framing.max_bytes + len(self.framing.end):
            self.noise_bytes += len(self._buffer)
            self._buffer.clear()
            self._in_frame = False


def number_in(frame: bytes, profile: ReaderProfile) -> str:
    """The number a frame holds, by the profile's pattern. Raises UnreadableFrame."""
    try:
        text = frame.decode("ascii")
    except UnicodeDecodeError:
        raise UnreadableFrame(f"a {len(frame)}-byte frame that is not ASCII text") from None
    match = re.search(profile.pattern, text)
    if match is None or not match["number"]:
        raise UnreadableFrame(f"a {len(frame)}-byte frame that does not match the {profile.model} pattern")
    return match["number"]
