"""drivers/readers/session.py over real serial I/O: pyserial on a pseudo-terminal, with the
reader sending whole frames, garbage and partial frames, and unplugged and plugged in again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.readers.session import Read, ReaderConnected, ReaderEvent, ReaderFault, SerialReaderSession
from firmware_configs.readers import load_reader_profiles
from tests.pty_device import PtyDevice

RDM6300 = load_reader_profiles()["rdm6300"]
CARD_FRAME = b"\x02014A3B2C1D43\x03"


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[PtyDevice]:
    device = PtyDevice(tmp_path / "ttyUSB-reader")
    yield device
    device.close()


async def _next(events: AsyncIterator[ReaderEvent], timeout_s: float = 5.0) -> ReaderEvent:
    return await asyncio.wait_for(anext(events), timeout_s)


@pytest.mark.asyncio
async def test_reads_garbage_and_partial_frames_and_comes_back_after_an_unplug(reader: PtyDevice) -> None:
    session = SerialReaderSession(str(reader.port), RDM6300, reconnect_s=0.1)
    events = session.events()
    try:
        assert await _next(events) == ReaderConnected(str(reader.port))
        reader.send(CARD_FRAME)
        assert await _next(events) == Read("card", "014A3B2C1D")
        # Noise, then a card pulled away mid-frame and tapped again: the number, and the noise
        # and the cut frame reported as garbage, holding nothing of what was read.
        reader.send(b"\xfe\xfe" + b"\x02014A3B" + CARD_FRAME)
        assert await _next(events) == Read("card", "014A3B2C1D")
        fault = await _next(events)
        assert isinstance(fault, ReaderFault) and fault.kind == "garbage" and fault.message.startswith("8 byte(s)")
        # A frame that is no card number: garbage, its bytes not in the message.
        reader.send(b"\x02ZZ4A3B2C1D\x03")
        fault = await _next(events)
        assert isinstance(fault, ReaderFault) and fault.kind == "garbage" and "4A3B" not in fault.message
        # Half a frame, then the reader is unplugged: the half is never a number.
        reader.send(b"\x02014A")
        await asyncio.sleep(0.3)
        reader.unplug()
        gone = await _next(events)
        assert isinstance(gone, ReaderFault) and gone.kind == "gone"
        again = await _next(events)  # the port's path is gone too: it cannot be opened
        assert isinstance(again, ReaderFault) and again.kind == "gone" and "cannot open" in again.message
        reader.plug()
        while not isinstance(event := await _next(events), ReaderConnected):
            assert isinstance(event, ReaderFault) and event.kind == "gone"
        reader.send(b"3B2C1D43\x03" + CARD_FRAME)  # the rest of the half frame first: noise now
        assert await _next(events) == Read("card", "014A3B2C1D")
    finally:
        await events.aclose()
