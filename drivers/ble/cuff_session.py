"""One blood-pressure session with a BLS cuff over ``bleak.BleakClient``.

The I/O adapter: connection, subscriptions, timeouts and error mapping live
here; all byte-level decoding is delegated to :mod:`drivers.ble.blood_pressure`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.exc import BleakError

from drivers.ble import uuids
from drivers.ble.blood_pressure import (
    SIG_COMPLIANT,
    BloodPressureDialect,
    BloodPressureMeasurement,
    decode_blood_pressure_measurement,
    decode_intermediate_cuff_pressure,
)
from drivers.ble.errors import (
    DecodeError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    DeviceUnavailableError,
    MeasurementTimeoutError,
)

logger = logging.getLogger(__name__)

CuffPressureCallback = Callable[[BloodPressureMeasurement], None]


@dataclass
class _Progress:
    """What one connection has seen so far (per collect() call, never shared)."""

    measurements: list[BloodPressureMeasurement]
    wake: asyncio.Event  # set on every notification and on link loss
    disconnected: asyncio.Event
    inflation_seen: bool = False
    measurement_seen: bool = False  # any 0x2A35 bytes, decodable or not


class BloodPressureCuffSession:
    """Connect to one cuff, follow one measurement cycle, return its readings."""

    def __init__(
        self,
        address: str,
        *,
        backend: type[BaseBleakClient] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 5.0,
        dialect: BloodPressureDialect = SIG_COMPLIANT,
    ) -> None:
        self._address = address
        self._backend = backend
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._dialect = dialect

    async def collect(
        self, on_cuff_pressure: CuffPressureCallback | None = None
    ) -> list[BloodPressureMeasurement]:
        """Gather the 0x2A35 measurements of one connection.

        Returns when the cuff disconnects, or when ``idle_timeout`` passes with no
        notification (the timer restarts on every 0x2A35/0x2A36 value). Raises
        DeviceNotFoundError if connecting fails, DeviceDisconnectedError if the
        link drops after inflation began but before any 0x2A35 arrived, and
        MeasurementTimeoutError if the cuff stays silent on 0x2A35 for
        ``idle_timeout``. Undecodable values are logged and skipped.
        """
        progress = _Progress(measurements=[], wake=asyncio.Event(), disconnected=asyncio.Event())

        def on_disconnect(_client: BleakClient) -> None:
            progress.disconnected.set()
            progress.wake.set()

        client = BleakClient(
            self._address,
            disconnected_callback=on_disconnect,
            timeout=self._connect_timeout,
            backend=self._backend,
        )
        try:
            await client.connect()
        except (BleakError, TimeoutError, OSError) as exc:
            raise DeviceNotFoundError(f"could not connect to {self._address}: {exc}") from exc
        try:
            await self._subscribe(client, progress, on_cuff_pressure)
            await self._wait_until_done(progress)
        finally:
            await self._disconnect_quietly(client)
        return self._outcome(progress)

    async def _subscribe(
        self,
        client: BleakClient,
        progress: _Progress,
        on_cuff_pressure: CuffPressureCallback | None,
    ) -> None:
        def on_measurement(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            progress.measurement_seen = True
            progress.wake.set()
            reading = self._decode_or_warn(decode_blood_pressure_measurement, data)
            if reading is not None:
                progress.measurements.append(reading)

        def on_intermediate(_char: BleakGATTCharacteristic, data: bytearray) -> None:
            progress.inflation_seen = True
            progress.wake.set()
            reading = self._decode_or_warn(decode_intermediate_cuff_pressure, data)
            if reading is not None and on_cuff_pressure is not None:
                try:
                    on_cuff_pressure(reading)
                except Exception:
                    # A display callback bug must not abort the patient's measurement.
                    logger.exception("on_cuff_pressure callback failed")

        services = client.services
        if services.get_characteristic(uuids.BLOOD_PRESSURE_MEASUREMENT) is None:
            raise DeviceNotFoundError(f"{self._address} has no Blood Pressure Measurement (0x2A35)")
        try:
            # 0x2A36 is optional in BLS (3.2), so only subscribe when it exists.
            if services.get_characteristic(uuids.INTERMEDIATE_CUFF_PRESSURE) is not None:
                await client.start_notify(uuids.INTERMEDIATE_CUFF_PRESSURE, on_intermediate)
            await client.start_notify(uuids.BLOOD_PRESSURE_MEASUREMENT, on_measurement)
        except BleakError as exc:
            if progress.disconnected.is_set() or not client.is_connected:
                raise DeviceDisconnectedError(f"{self._address} dropped while subscribing") from exc
            raise DeviceUnavailableError(f"{self._address}: subscribing failed: {exc}") from exc

    def _decode_or_warn(
        self, decode: Callable[[bytes, BloodPressureDialect], BloodPressureMeasurement], data: bytearray
    ) -> BloodPressureMeasurement | None:
        try:
            return decode(bytes(data), self._dialect)
        except DecodeError as exc:
            # The device's fault, not ours: keep the session alive, leave evidence.
            logger.warning("skipping undecodable value from %s: %s (bytes: %s)", self._address, exc, bytes(data).hex())
            return None

    async def _wait_until_done(self, progress: _Progress) -> None:
        while not progress.disconnected.is_set():
            # No await between clear() and wait(), so no notification can slip in between.
            progress.wake.clear()
            try:
                async with asyncio.timeout(self._idle_timeout):
                    await progress.wake.wait()
            except TimeoutError:
                return

    def _outcome(self, progress: _Progress) -> list[BloodPressureMeasurement]:
        if progress.measurement_seen:
            return list(progress.measurements)
        if progress.disconnected.is_set():
            if progress.inflation_seen:
                raise DeviceDisconnectedError(
                    f"{self._address}: connection dropped mid-measurement (after inflation, before 0x2A35)"
                )
            # Connected and left without measuring: nothing to report, not a failure.
            return []
        raise MeasurementTimeoutError(
            f"{self._address}: no Blood Pressure Measurement within {self._idle_timeout} s"
        )

    async def _disconnect_quietly(self, client: BleakClient) -> None:
        if not client.is_connected:
            return
        try:
            await client.disconnect()
        except BleakError as exc:
            # We are done with the device either way; a failed goodbye is not worth raising.
            logger.warning("disconnecting from %s failed: %s", self._address, exc)
