"""Reading an Omron cuff's stored records over ``bleak.BleakClient``, through Omron's vendor service.

One connection: unlock, start, read the read pointer and the clock, read each user's unread
records, hand them to ``save``, and only once ``save`` returned mark them read on the cuff; set
its clock; end. A connection lost or a garbled frame before the mark leaves the cuff's pointer
as it was, so the next connection reads the same records again and the kiosk saved none of them
yet: nothing is lost and nothing read twice. Lost between ``save`` and the mark (a fraction of a
second), they come once more and the outbox's replay fingerprint keeps them single.
The bytes are the pure modules' business (frames, memory, records).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.exc import BleakError

from drivers.ble.blood_pressure import BloodPressureMeasurement
from drivers.ble.bonding import DeviceBondLostError, DeviceNotBondedError
from drivers.ble.errors import DecodeError, DeviceDisconnectedError, MeasurementTimeoutError, MissingServiceError
from drivers.ble.measurement_session import DeviceSession, LinkWatch, subscribe
from drivers.ble.omron import frames, memory, records, service
from firmware_configs.omron_memory import OmronMemory

logger = logging.getLogger(__name__)

# omblepy waits 1 s per answer (_waitForRxOrRetry); a little more for a busy kiosk radio.
REPLY_TIMEOUT_S: Final = 2.0

SaveReadings = Callable[[list[BloodPressureMeasurement]], Awaitable[None]]


class KeyNotProgrammedError(Exception):
    """The cuff did not take our unlock key: not in pairing mode, or it refused the key. A
    failure of pairing (the pairing screen says it), not of a reading session: no device code."""


def unlock_key_refused(address: str, detail: str) -> DeviceBondLostError:
    """The cuff's unlock key is not this kiosk's: programmed by omblepy or another kiosk, or the
    cuff was reset. Like a lost bond (and reported as one, so the screen offers to pair again),
    only pairing it again at the kiosk helps; bluetoothctl bonds but programs no key."""
    refused = DeviceBondLostError(address, detail)
    refused.args = (f"{address} refused access ({detail}): the cuff holds an unlock key that is not this kiosk's. "
                    f"Put the cuff in pairing mode (\"-P-\") and pair it again on the kiosk's technician screen "
                    f"(配对新血压计), which programs the kiosk's key.",)
    return refused


class _Conversation:
    """Frames out on the TX channel(s), whole answers back from the RX channel(s)."""

    def __init__(self, client: BleakClient, watch: LinkWatch, mem: OmronMemory, address: str) -> None:
        self._client = client
        self._watch = watch
        self._memory = mem
        self._address = address
        self._channels = service.channels(mem.transport)
        self._assembler = frames.FrameAssembler(len(self._channels.rx))
        self._answers: asyncio.Queue[bytes] = asyncio.Queue()
        self._unlock_answers: asyncio.Queue[bytes] | None = None

    async def open(self) -> None:
        if self._client.services.get_characteristic(self._channels.tx[0]) is None:
            raise MissingServiceError(f"{self._address} has no Omron vendor service {self._channels.service}")
        for index, uuid in enumerate(self._channels.rx):
            await subscribe(self._client, self._watch, uuid, self._on_piece(index))

    def _on_piece(self, channel: int) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        def on_notify(_characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
            frame = self._assembler.feed(channel, bytes(data))
            if frame is not None:
                self._answers.put_nowait(frame)

        return on_notify

    async def unlock(self, key: bytes | None) -> None:
        if self._memory.unlock == "token":
            token = secrets.token_bytes(4)
            unlocked = frames.is_token_unlocked(await self._on_unlock_channel(frames.token_unlock(token), "unlock"), token)
        else:
            assert key is not None  # OmronMemorySession refuses a key model without one
            unlocked = frames.is_key_unlocked(await self._on_unlock_channel(frames.key_unlock(key), "unlock"))
        if not unlocked and self._memory.unlock == "key":
            raise unlock_key_refused(self._address, "Omron key unlock refused")
        if not unlocked:
            # Its bond is not ours: only pairing again in "-P-" mode helps.
            raise DeviceNotBondedError(self._address, "Omron token unlock refused")

    async def program_key(self, key: bytes) -> None:
        """Make ``key`` the cuff's unlock key, in two steps (frames.KEY_PROGRAMMING); the cuff
        opens key programming only in pairing mode."""
        opened = await self._on_unlock_channel(frames.key_programming(), "key programming")
        if opened[:2] != frames.KEY_PROGRAMMING_OPEN:
            raise KeyNotProgrammedError(f"{self._address} refused key programming (answer {opened.hex()}): "
                                        "it is not in pairing mode")
        stored = await self._on_unlock_channel(frames.key_store(key), "the new key")
        if stored[:2] != frames.KEY_STORED:
            raise KeyNotProgrammedError(f"{self._address} did not store the unlock key (answer {stored.hex()})")

    async def _on_unlock_channel(self, frame: bytes, what: str) -> bytes:
        """Write ``frame`` to the unlock characteristic and wait for its answer there."""
        if self._unlock_answers is None:
            answers = self._unlock_answers = asyncio.Queue()
            await subscribe(self._client, self._watch, service.UNLOCK, lambda _c, data: answers.put_nowait(bytes(data)))
        await self._write(service.UNLOCK, frame)
        return await self._wait(self._unlock_answers, what)

    async def request(self, command: bytes, expect: frames.ResponseType, address: int = 0) -> frames.Response:
        pieces = [command] if len(self._channels.tx) == 1 else frames.pieces(command)
        for uuid, piece in zip(self._channels.tx, pieces, strict=False):
            await self._write(uuid, piece)
        answer = frames.decode_response(await self._wait(self._answers, expect.name.lower()))
        if answer.type is not expect or answer.address != address:
            raise DecodeError(frames.CHARACTERISTIC, "type",
                                     f"{answer.type.name} at {answer.address:#06x} for {expect.name} at {address:#06x}")
        if expect in (frames.ResponseType.STARTED, frames.ResponseType.ENDED) and answer.data[:1] != b"\x00":
            raise DecodeError(frames.CHARACTERISTIC, "status", f"{expect.name}: error {answer.data.hex()}")
        return answer

    async def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at ``address``, in reads of at most the model's block size."""
        data = b""
        for read in memory.reads_for_range(address, size, self._memory.block_size):
            answer = await self.request(frames.read_command(read.address, read.size), frames.ResponseType.READ, read.address)
            if len(answer.data) != read.size:
                raise DecodeError(frames.CHARACTERISTIC, "data", f"{len(answer.data)} bytes for {read.size} asked")
            data += answer.data
        return data

    async def write(self, address: int, data: bytes) -> None:
        await self.request(frames.write_command(address, data), frames.ResponseType.WRITTEN, address)

    async def _write(self, uuid: str, data: bytes) -> None:
        try:
            await self._client.write_gatt_char(uuid, data, response=True)
        except BleakError as exc:
            raise self._watch.failure(self._client, "writing to the Omron service", exc) from exc

    async def _wait(self, answers: asyncio.Queue[bytes], what: str) -> bytes:
        getter = asyncio.ensure_future(answers.get())
        dropped = asyncio.ensure_future(self._watch.disconnected.wait())
        try:
            done, _ = await asyncio.wait({getter, dropped}, timeout=REPLY_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            getter.cancel()
            dropped.cancel()
        if getter in done:
            return getter.result()
        if dropped in done:
            raise DeviceDisconnectedError(f"{self._address} dropped while waiting for {what}")
        raise MeasurementTimeoutError(f"{self._address}: no answer to {what} within {REPLY_TIMEOUT_S} s")


class OmronMemorySession(DeviceSession):
    """Connect to one Omron cuff and hand over the records it has not given yet."""

    def __init__(
        self,
        address: str,
        memory_map: OmronMemory,
        *,
        backend: type[BaseBleakClient] | None = None,
        connect_timeout: float = 10.0,
        needs_bonding: bool = False,
        forgets_bond: bool = False,
        unlock_key: bytes | None = None,
        now: Callable[[], datetime | None] = datetime.now,
    ) -> None:
        """``unlock_key``: the 16 bytes this kiosk programs into cuffs that unlock with a key
        (``program_key``) and unlocks them with; required for those models."""
        super().__init__(address, backend=backend, connect_timeout=connect_timeout, needs_bonding=needs_bonding,
                         forgets_bond=forgets_bond)
        if memory_map.unlock == "key" and unlock_key is None:
            raise ValueError(f"{address}: its model unlocks with a key, and none was given")
        self._memory = memory_map
        self._key = unlock_key
        self._now = now  # the kiosk's wall clock; None while it is not to be trusted

    async def collect(self, save: SaveReadings) -> list[BloodPressureMeasurement]:
        """The unread records of every user, oldest first, after ``save`` kept them.

        Raises DeviceNotFoundError, DeviceNotBondedError, MissingServiceError,
        DeviceDisconnectedError (link lost), MeasurementTimeoutError (no answer), DecodeError
        (a garbled frame or pointer, or an answer out of turn); in every case the
        cuff's pointer is unchanged unless ``save`` returned. An exception from ``save``
        propagates, the pointer unchanged.
        """
        mem = self._memory
        watch = LinkWatch(self._address, logger)
        async with self._open_link(watch) as client:
            talk = _Conversation(client, watch, mem, self._address)
            await talk.open()
            await talk.unlock(self._key)
            await talk.request(frames.START_TRANSMISSION, frames.ResponseType.STARTED)
            pointer_address = mem.settings_read + mem.read_pointer.offset
            region = await talk.read(pointer_address, mem.read_pointer.size)
            pointers = memory.decode_read_pointer(region, mem)
            readings = []
            for user in pointers:
                readings += await self._read_user(talk, user)
            # Oldest first across users too: the agent shows the newest as the measurement at hand.
            readings.sort(key=lambda reading: reading.timestamp or datetime.min)
            if readings:
                await save(readings)
            if any(user.unread for user in pointers):
                await talk.write(mem.settings_write + mem.read_pointer.offset, memory.pointer_marked_read(region, mem))
            await self._set_clock(talk)
            await talk.request(frames.END_TRANSMISSION, frames.ResponseType.ENDED)
        return readings

    async def program_key(self) -> None:
        """Program this kiosk's unlock key into the cuff, which must be in pairing mode and
        bonded already; then start and end a transmission, as omblepy does after programming
        ("neccesary when the device has not been paired to any device", omblepy.py main).
        Raises KeyNotProgrammedError, or the link's errors as ``collect`` does."""
        assert self._key is not None and self._memory.unlock == "key", "only key-unlock models take a key"
        watch = LinkWatch(self._address, logger)
        async with self._open_link(watch) as client:
            talk = _Conversation(client, watch, self._memory, self._address)
            await talk.open()
            await talk.program_key(self._key)
            await talk.request(frames.START_TRANSMISSION, frames.ResponseType.STARTED)
            await talk.request(frames.END_TRANSMISSION, frames.ResponseType.ENDED)

    async def _read_user(self, talk: _Conversation, user: memory.UserPointer) -> list[BloodPressureMeasurement]:
        mem = self._memory
        size = mem.record.size
        slots = memory.unread_slots(user, mem.users[user.user - 1].records)
        data = b""
        for read in memory.reads_for(slots, mem, user.user):
            data += await talk.read(read.address, read.size)
        readings = []
        for index in range(0, len(data), size):
            record = data[index:index + size]
            try:
                readings.append(records.decode_record(record, mem.record, user_id=user.user))
            except DecodeError as exc:
                # One bad slot is the cuff's, not the others': skip it, keep the evidence.
                logger.warning("skipping record of user %d from %s: %s (bytes: %s)", user.user, self._address,
                               exc, record.hex())
        return readings

    async def _set_clock(self, talk: _Conversation) -> None:
        """Best effort, like the SIG cuffs' Current Time: compare, then write the kiosk's time."""
        kiosk_time = self._now()
        if kiosk_time is None:
            logger.info("not setting the clock of %s: the kiosk's own clock is not synchronised", self._address)
            return
        clock = self._memory.clock
        block = await talk.read(self._memory.settings_read + clock.offset, clock.size)
        try:
            self._note_clock_offset((memory.decode_clock(block, clock) - kiosk_time.replace(tzinfo=None)).total_seconds())
        except DecodeError as exc:
            logger.info("the clock of %s was not set: %s", self._address, exc)
        await talk.write(self._memory.settings_write + clock.offset, memory.clock_set_to(block, clock, kiosk_time))
