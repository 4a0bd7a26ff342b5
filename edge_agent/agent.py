"""The kiosk agent: watches its devices, saves every reading to the outbox, keeps the uplink pumping.

It needs no network to start: readings are saved locally and leave when a broker is reachable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from bleak.backends.client import BaseBleakClient

from doorstep.wire import DeviceIdentity, KioskTopics
from drivers.ble.blood_pressure import BloodPressureDialect
from drivers.ble.cuff_session import BloodPressureCuffSession
from drivers.ble.errors import BleDriverError
from drivers.ble.simulated import SimulatedCuff, simulated_backend
from firmware_configs.profiles import load_ble_profiles
from edge_agent.outbox import Outbox, SavedRecord
from edge_agent.readings import DeviceReading, fingerprint, outgoing
from edge_agent.settings import AgentSettings, CuffSettings
from edge_agent.uplink import Uplink

log = logging.getLogger(__name__)

# How often the uplink is pumped when nothing wakes it: re-send deadlines are checked then.
PUMP_INTERVAL_S = 0.5

SavedListener = Callable[[SavedRecord, DeviceReading], None]


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        cuff_backends: Mapping[str, type[BaseBleakClient]] | None = None,
        on_saved: SavedListener | None = None,
    ) -> None:
        """`cuff_backends` maps a cuff address to a bleak backend (tests, simulations); a
        cuff marked `simulated` without one gets a default simulated cuff."""
        self.settings = settings
        self.topics = KioskTopics(settings.site, settings.kiosk)
        self._cuff_backends = dict(cuff_backends or {})
        self._on_saved = on_saved
        self._wakeup = asyncio.Event()
        self.outbox: Outbox | None = None
        self.uplink: Uplink | None = None

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.outbox = Outbox(self.settings.outbox_path)
        self.uplink = Uplink(
            self.outbox,
            self.topics,
            self.settings.broker,
            window=self.settings.inflight_window,
            ack_timeout_s=self.settings.ack_timeout_s,
            wake=lambda: loop.call_soon_threadsafe(self._wakeup.set),
        )
        self.uplink.start()
        tasks = [asyncio.create_task(self._pump_forever(), name="uplink")]
        tasks += [
            asyncio.create_task(self._watch_cuff(cuff), name=f"cuff {cuff.address}") for cuff in self.settings.cuffs
        ]
        log.info("agent %s/%s running with %d cuff(s)", self.topics.site, self.topics.kiosk, len(self.settings.cuffs))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.uplink.stop()
            self.outbox.close()

    async def _pump_forever(self) -> None:
        assert self.uplink is not None
        while True:
            self._wakeup.clear()
            try:
                await asyncio.to_thread(self.uplink.pump)
            except Exception:
                # Our bug or a failing disk: say so loudly, keep the records, try again.
                log.exception("the uplink failed; retrying")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the wake-up completes, and the agent would never stop.
            try:
                async with asyncio.timeout(PUMP_INTERVAL_S):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def _backend_for(self, cuff: CuffSettings) -> type[BaseBleakClient] | None:
        if cuff.address in self._cuff_backends:
            return self._cuff_backends[cuff.address]
        if cuff.simulated:
            return simulated_backend(SimulatedCuff(address=cuff.address))
        return None  # the platform's real Bluetooth stack

    async def _watch_cuff(self, cuff: CuffSettings) -> None:
        profile = load_ble_profiles()[cuff.model]
        session = BloodPressureCuffSession(
            cuff.address,
            backend=self._backend_for(cuff),
            idle_timeout=cuff.idle_timeout_s,
            dialect=BloodPressureDialect(**profile.blood_pressure_dialect.model_dump()),
        )
        device = DeviceIdentity(model=cuff.model, address=cuff.address)
        while True:
            try:
                measurements = await session.collect()
            except BleDriverError as error:
                # A cuff is only reachable while someone measures: not finding it is normal.
                log.debug("cuff %s: %s", cuff.address, error)
            else:
                for measurement in measurements:
                    try:
                        await self.save_reading(measurement, device)
                    except Exception:
                        # Not the device's fault (that is a DecodeError, handled in the
                        # driver): our bug or the disk. Loud, and the cuff keeps being served.
                        log.exception("could not save a reading from cuff %s: %s", cuff.address, measurement)
            await asyncio.sleep(cuff.reconnect_interval_s)

    async def save_reading(self, reading: DeviceReading, device: DeviceIdentity) -> SavedRecord | None:
        """Commit the reading durably; only then is it reported saved. None: saved before (a replay)."""
        assert self.outbox is not None
        wire = outgoing(reading)
        saved = await asyncio.to_thread(
            self.outbox.save,
            self.topics.reading(wire.kind),
            wire.payload,
            device=device,
            device_time=wire.device_time,
            fingerprint=fingerprint(device, wire),
        )
        if saved is None:
            log.info("%s replayed a reading saved before (%s); not saved again", device.address, wire.device_time)
            return None
        log.info("saved %s from %s (seq %d)%s", wire.kind, device.address, saved.seq,
                 f", suspect: {', '.join(wire.payload.suspect)}" if wire.payload.suspect else "")
        if self._on_saved is not None:
            self._on_saved(saved, reading)
        self._wakeup.set()
        return saved
