"""A serial reader's session: open its port through pyserial, split what it sends into frames,
yield each number it read, and reconnect when the port goes (a USB reader unplugged).

The faults say whose they are (STYLE.md, "Errors say whose fault it is"): the reader is gone
(its port cannot be opened, or went away), or it sent something that is not a frame of its
profile (garbage: a wrong baud rate, a half-read card). Neither ever carries what was read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import serial

from drivers.readers.framing import FrameSplitter, UnreadableFrame, number_in
from firmware_configs.readers import ReaderProfile

# How long one read waits for bytes: the longest a stop waits for the reading thread, and small
# enough to cost a Pi nothing (four wake-ups a second).
READ_WAIT_S = 0.25
READ_SIZE = 256


@dataclass(frozen=True, slots=True, repr=False)
class Read:
    """What a reader read: its profile's identifier kind and the number. repr=False: never shown."""

    kind: Literal["card", "qr"]
    number: str


@dataclass(frozen=True, slots=True)
class ReaderFault:
    """`gone`: the port cannot be opened or went away (the reader's cable, or its USB adapter).
    `garbage`: bytes that are no frame of its profile."""

    kind: Literal["gone", "garbage"]
    message: str


@dataclass(frozen=True, slots=True)
class ReaderConnected:
    port: str


ReaderEvent = Read | ReaderFault | ReaderConnected


class SerialReaderSession:
    def __init__(self, port: str, profile: ReaderProfile, *, baudrate: int | None = None,
                 reconnect_s: float = 2.0) -> None:
        self.port = port
        self.profile = profile
        self.baudrate = baudrate or profile.baudrate
        self.reconnect_s = reconnect_s

    async def events(self) -> AsyncIterator[ReaderEvent]:
        """For ever, until cancelled: a connection, the reads and faults on it; after the port
        went, a fault every `reconnect_s` until it opens again."""
        splitter = FrameSplitter(self.profile.framing)
        # Its own thread: a reader waits in read() nearly all the time, and in the loop's shared
        # pool it would hold a thread the outbox's writes need.
        thread = ThreadPoolExecutor(1, thread_name_prefix=f"reader {self.port}")
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    link = await loop.run_in_executor(thread, self._open)
                except (serial.SerialException, OSError) as error:
                    yield ReaderFault("gone", f"cannot open {self.port}: {_reason(error)}")
                    await asyncio.sleep(self.reconnect_s)
                    continue
                splitter.reset()
                yield ReaderConnected(self.port)
                try:
                    async for event in self._read(link, splitter, thread):
                        yield event
                finally:
                    link.cancel_read()  # the thread may be in read(): let it return before the close
                    await loop.run_in_executor(thread, link.close)
                await asyncio.sleep(self.reconnect_s)
        finally:
            thread.shutdown(wait=False)

    def _open(self) -> serial.Serial:
        return serial.Serial(self.port, self.baudrate, timeout=READ_WAIT_S)

    async def _read(self, link: serial.Serial, splitter: FrameSplitter,
                    thread: ThreadPoolExecutor) -> AsyncIterator[ReaderEvent]:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.run_in_executor(thread, link.read, READ_SIZE)
            except (serial.SerialException, OSError) as error:
                yield ReaderFault("gone", f"{self.port} went away: {_reason(error)}")
                return
            for frame in splitter.feed(data):
                try:
                    yield Read(self.profile.identifier, number_in(frame, self.profile))
                except UnreadableFrame as error:
                    yield ReaderFault("garbage", str(error))
            if noise := splitter.take_noise():
                yield ReaderFault("garbage", f"{noise} byte(s) outside any frame (a wrong baud rate, or a card "
                                             f"half read)")


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
