"""A simulated Omron cuff that keeps readings in memory and gives them up over Omron's vendor
service (drivers/ble/omron/), read by the production session through bleak.

Its memory is a 64 KiB array laid out by a model's YAML (firmware_configs/ble/hem-*.yaml):
``measure()`` stores a reading as the cuff does (next slot of the user's ring, one more unread),
and a write into the settings write area lands in the settings read area at the same offset,
which is how omblepy's reads after a write see it (sharedDriver.py writes the time and the
pointer there).

A model that unlocks with a key (``unlock: key``) holds none until one is programmed, and takes
one only while ``pairing_mode`` is set (the technician holding its Bluetooth button until "-P-"
blinks); from then on it unlocks with that key alone, so a wrong key is a real refusal.

Misbehaviours, each one-shot (the next connection behaves), so tests can show a resume:
``drop_mid_transfer`` drops the link instead of answering the first record read;
``short_block`` answers it with one record fewer than asked; ``bad_checksum`` flips a byte of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from operator import xor

from drivers.ble.blood_pressure import BloodPressureMeasurement
from drivers.ble.omron import frames, records, service
from drivers.ble.omron.memory import NO_UNREAD, clock_set_to
from drivers.ble.simulated.peripheral import Link, SimCharacteristic, SimService, SimulatedPeripheral
from firmware_configs.omron_memory import OmronMemory

MEMORY_SIZE = 0x10000
_START, _READ, _WRITE, _END = (bytes.fromhex(t) for t in ("0000", "0100", "01c0", "0f00"))


def _refusal(request: int) -> bytes:
    """A refusal: the answer type (request | 0x80) with a non-zero status. The status a real cuff
    sends is not documented (omblepy only checks for 0x00); any non-zero one is a refusal."""
    return bytes([request | 0x80, 0x01])


@dataclass(kw_only=True)
class SimulatedOmronCuff(SimulatedPeripheral):
    memory_map: OmronMemory
    address: str = "SIM:OM:RO:N0:00:01"
    name: str = "HEM-7142T2"
    requires_bonding: bool = True
    unlock_key: bytes | None = None  # the key programmed into it; None: never paired
    pairing_mode: bool = False
    short_block: bool = False
    bad_checksum: bool = False
    memory: bytearray = field(default_factory=lambda: bytearray(b"\xff" * MEMORY_SIZE), init=False)
    record_reads: int = field(default=0, init=False)  # answered record reads, for tests
    # Per connection: the connection number it was unlocked on, and the TX frame assembler.
    _unlocked_on: int = field(default=0, init=False)
    _programming_on: int = field(default=0, init=False)  # key programming opened on this connection
    _assembler: tuple[int, frames.FrameAssembler] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        mem = self.memory_map
        pointer = mem.read_pointer
        start = mem.settings_read + pointer.offset
        self.memory[start:start + pointer.size] = bytes(pointer.size)
        for words in pointer.users:
            self._set_word(start + words.unread, NO_UNREAD)
        clock = mem.clock
        block = bytes(clock.size)
        at = mem.settings_read + clock.offset
        self.memory[at:at + clock.size] = clock_set_to(block, clock, datetime.now() + (self.clock_offset or timedelta()))

    # -- the cuff's own behaviour --

    def measure(self, reading: BloodPressureMeasurement, user: int = 1) -> None:
        """Store ``reading`` for ``user`` (1-based) as the cuff does after measuring."""
        mem = self.memory_map
        area, words = mem.users[user - 1], mem.read_pointer.users[user - 1]
        base = mem.settings_read + mem.read_pointer.offset
        slot = self._word(base + words.write_slot) & 0xFF
        unread = self._word(base + words.unread) & 0xFF
        size = mem.record.size
        at = area.start + (slot % area.records) * size
        self.memory[at:at + size] = records.encode_record(reading, mem.record)
        self._set_word(base + words.write_slot, slot % area.records + 1)
        self._set_word(base + words.unread, min(unread + 1, area.records))

    def unread(self, user: int = 1) -> int:
        mem = self.memory_map
        return self._word(mem.settings_read + mem.read_pointer.offset + mem.read_pointer.users[user - 1].unread) & 0xFF

    def _word(self, at: int) -> int:
        return int.from_bytes(self.memory[at:at + 2], self.memory_map.read_pointer.byte_order)

    def _set_word(self, at: int, value: int) -> None:
        self.memory[at:at + 2] = value.to_bytes(2, self.memory_map.read_pointer.byte_order)

    # -- GATT --

    def gatt(self) -> list[SimService]:
        chans = service.channels(self.memory_map.transport)
        characteristics = [SimCharacteristic(uuid, ("notify",)) for uuid in chans.rx]
        characteristics += [SimCharacteristic(uuid, ("write",), write=self._on_tx(i)) for i, uuid in enumerate(chans.tx)]
        characteristics.append(SimCharacteristic(service.UNLOCK, ("write", "notify"), write=self._on_unlock))
        return [SimService(chans.service, tuple(characteristics))]

    def _on_unlock(self, data: bytes, link: Link) -> None:
        if data[0] == frames.TOKEN_UNLOCK and self.memory_map.unlock == "token":
            self._unlocked_on = self.connections
            link.send(service.UNLOCK, bytes([frames.TOKEN_UNLOCKED, 0]) + data[1:5])
        elif self.memory_map.unlock != "key":
            return
        elif data[0] == frames.KEY_UNLOCK:
            matches = self.unlock_key is not None and data[1:] == self.unlock_key
            self._unlocked_on = self.connections if matches else 0
            link.send(service.UNLOCK, frames.KEY_UNLOCKED if matches else _refusal(frames.KEY_UNLOCK))
        elif data[0] == frames.KEY_PROGRAMMING:
            self._programming_on = self.connections if self.pairing_mode else 0
            link.send(service.UNLOCK, frames.KEY_PROGRAMMING_OPEN if self.pairing_mode
                      else _refusal(frames.KEY_PROGRAMMING))
        elif data[0] == frames.KEY_STORE:
            if self._programming_on != self.connections or len(data) != 1 + frames.KEY_SIZE:
                link.send(service.UNLOCK, _refusal(frames.KEY_STORE))
                return
            # omblepy reads the memory right after programming, with no unlock: the key opens it.
            self.unlock_key, self._unlocked_on, self._programming_on = data[1:], self.connections, 0
            link.send(service.UNLOCK, frames.KEY_STORED)

    def _on_tx(self, channel: int) -> Callable[[bytes, Link], None]:
        def on_write(data: bytes, link: Link) -> None:
            if self._assembler is None or self._assembler[0] != self.connections:
                channels = len(service.channels(self.memory_map.transport).tx)
                self._assembler = (self.connections, frames.FrameAssembler(channels))
            command = self._assembler[1].feed(channel, data)
            if command is not None:
                self._answer(command, link)

        return on_write

    def _answer(self, command: bytes, link: Link) -> None:
        if reduce(xor, command, 0) != 0 or self._unlocked_on != self.connections:
            return  # a real cuff stays silent; the session times out
        kind, address, size = command[1:3], int.from_bytes(command[3:5], "big"), command[5]
        if kind == _START:
            self._send(link, frames.control_response(frames.ResponseType.STARTED))
        elif kind == _END:
            self._send(link, frames.control_response(frames.ResponseType.ENDED))
        elif kind == _WRITE:
            self._store(address, command[6:6 + size])
            self._send(link, frames.control_response(frames.ResponseType.WRITTEN, address))
        elif kind == _READ:
            self._answer_read(address, size, link)

    def _answer_read(self, address: int, size: int, link: Link) -> None:
        data = bytes(self.memory[address:address + size])
        is_record = any(a.start <= address < a.start + a.records * self.memory_map.record.size for a in self.memory_map.users)
        if is_record and self.drop_mid_transfer:
            self.drop_mid_transfer = False
            link.disconnect()
            return
        answer = frames.read_response(address, data)
        if is_record and self.short_block:
            self.short_block = False
            cut = data[:max(0, size - self.memory_map.record.size)]
            answer = bytes([len(answer) - len(data) + len(cut)]) + answer[1:6] + cut + b"\x00"
            answer += bytes([frames.checksum(answer)])
        elif is_record and self.bad_checksum:
            self.bad_checksum = False
            answer = answer[:-1] + bytes([answer[-1] ^ 0x5A])
        if is_record:
            self.record_reads += 1
        self._send(link, answer)

    def _store(self, address: int, data: bytes) -> None:
        mem = self.memory_map
        window = mem.settings_write - mem.settings_read
        if mem.settings_write <= address < mem.settings_write + window:
            address -= window  # the write area mirrors the read area (module docstring)
        self.memory[address:address + len(data)] = data

    def _send(self, link: Link, frame: bytes) -> None:
        chans = service.channels(self.memory_map.transport)
        for uuid, piece in zip(chans.rx, [frame] if len(chans.rx) == 1 else frames.pieces(frame), strict=False):
            link.send(uuid, piece)
