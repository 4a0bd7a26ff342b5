"""A null-modem cable made of two pseudo-terminals, with a relay that can damage the wire.

No socat, no hardware: two `os.openpty()` pairs; a thread copies bytes between the two masters.
The simulator opens one slave path, the driver's pyserial port the other. Replies going back to
the driver (simulator -> driver) can be corrupted or dropped to exercise the bus's error paths.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from types import TracebackType
from typing import Self

# Modbus over Serial Line v1.02, 2.5.1.1: an RTU character is 11 bits (start, 8 data, parity or
# a second stop bit, stop). Used only when the relay paces bytes like a real line.
BITS_PER_CHARACTER = 11
# Modbus over Serial Line v1.02, 2.5.1.1: frames are separated by a silent interval of at least
# 3.5 character times. On a pty one frame usually arrives in one read; a gap this long (or longer,
# see _FRAME_GAP_FLOOR_S) between reads marks the start of the next frame.
SILENT_INTERVAL_CHARACTERS = 3.5
_FRAME_GAP_FLOOR_S = 0.002  # a pty delivers in bursts; below this two reads are one frame
_READ_SIZE = 512


class PtyLink:
    """Two slave device paths joined by a relay thread. `close()` stops it and closes every fd."""

    def __init__(self, *, line_baudrate: int | None = None) -> None:
        """line_baudrate: if set, the relay delays each chunk by its time on a real line at that
        rate, so poll rates measured over the link look like RS-485 rather than memory copies."""
        self._line_baudrate = line_baudrate
        self._sim_master, self._sim_slave = os.openpty()
        self._drv_master, self._drv_slave = os.openpty()
        # Raw mode now, before anyone opens the slaves: a cooked pty echoes and rewrites bytes.
        for fd in (self._sim_slave, self._drv_slave):
            tty.setraw(fd)
        self.simulator_path: str = os.ttyname(self._sim_slave)
        self.driver_path: str = os.ttyname(self._drv_slave)
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._corrupt_next = False
        self._dropped_units: set[int] = set()
        self._dropping_frame = False
        self._last_reply_read = 0.0
        self.replies_corrupted = 0
        self.replies_dropped = 0
        self._closed = False
        self._thread = threading.Thread(target=self._relay, name="pty-link-relay", daemon=True)
        self._thread.start()

    # -- wire faults (simulator -> driver direction only) --

    def corrupt_next_reply(self) -> None:
        """Flip one byte of the next reply so its CRC-16 fails (Serial Line v1.02, 2.5.1.2)."""
        with self._lock:
            self._corrupt_next = True

    def drop_replies(self, unit: int) -> None:
        """Swallow every reply frame from `unit` until `restore_replies(unit)`."""
        with self._lock:
            self._dropped_units.add(unit)

    def restore_replies(self, unit: int) -> None:
        with self._lock:
            self._dropped_units.discard(unit)

    # -- relay --

    def _pace(self, nbytes: int) -> None:
        if self._line_baudrate:
            time.sleep(nbytes * BITS_PER_CHARACTER / self._line_baudrate)

    def _frame_gap_s(self) -> float:
        if not self._line_baudrate:
            return _FRAME_GAP_FLOOR_S
        return max(_FRAME_GAP_FLOOR_S, SILENT_INTERVAL_CHARACTERS * BITS_PER_CHARACTER / self._line_baudrate)

    def _reply_chunk(self, chunk: bytes) -> bytes:
        """Apply the injected faults to a chunk read from the simulator."""
        # Measured from the end of the previous chunk's forwarding, so pacing is not a "gap".
        starts_frame = time.monotonic() - self._last_reply_read >= self._frame_gap_s()
        with self._lock:
            if starts_frame:
                self._dropping_frame = chunk[0] in self._dropped_units
            if self._dropping_frame:
                self.replies_dropped += starts_frame
                return b""
            if self._corrupt_next:
                self._corrupt_next = False
                self.replies_corrupted += 1
                damaged = bytearray(chunk)
                damaged[-1] ^= 0xFF  # the last byte of a whole frame is the CRC's high byte
                return bytes(damaged)
        return chunk

    def _relay(self) -> None:
        peers = {self._sim_master: self._drv_master, self._drv_master: self._sim_master}
        while True:
            readable, _, _ = select.select([self._sim_master, self._drv_master, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            for fd in readable:
                try:
                    chunk = os.read(fd, _READ_SIZE)
                except OSError:  # EIO: the slave side went away; nothing more will come
                    return
                if not chunk:
                    continue
                from_simulator = fd == self._sim_master
                if from_simulator:
                    chunk = self._reply_chunk(chunk)
                if chunk:
                    self._pace(len(chunk))
                    os.write(peers[fd], chunk)
                if from_simulator:
                    self._last_reply_read = time.monotonic()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._sim_master, self._sim_slave, self._drv_master, self._drv_slave, self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
