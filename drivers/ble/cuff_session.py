"""One blood-pressure session with a BLS cuff over ``bleak.BleakClient``.

The I/O adapter: the cuff-specific subscriptions and outcome rules live here; the
connection, bonding, clock and waiting plumbing is shared with the other sessions
(:mod:`drivers.ble.measurement_session`); all byte-level decoding is delegated to
:mod:`drivers.ble.blood_pressure`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient

from drivers.ble import uuids
from drivers.ble.blood_pressure import (
    SIG_COMPLIANT,
    BloodPressureDialect,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
    decode_blood_pressure_measurement,
    decode_intermediate_cuff_pressure,
)
from drivers.ble.errors import (
    DeviceDisconnectedError,
    MissingServiceError,
    MeasurementTimeoutError,
)
from drivers.ble.measurement_session import (
    LinkWatch,
    DeviceSession,
    set_device_clock,
    subscribe,
)

logger = logging.getLogger(__name__)

# The cuff's pressure while it inflates (0x2A36), for the screen; never a measurement.
CuffPressureCallback = Callable[[IntermediateCuffPressure], None]
MeasurementCallback = Callable[[BloodPressureMeasurement], None]


class BloodPressureCuffSession(DeviceSession):
    """Connect to one cuff, follow one measurement cycle, return its readings."""

    def __init__(
        self,
        address: str,
        *,
        backend: type[BaseBleakClient] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 5.0,
        dialect: BloodPressureDialect = SIG_COMPLIANT,
        needs_bonding: bool = False,
        forgets_bond: bool = False,
        now: Callable[[], datetime | None] = datetime.now,
    ) -> None:
        super().__init__(address, backend=backend, connect_timeout=connect_timeout, needs_bonding=needs_bonding,
                         forgets_bond=forgets_bond)
        self._idle_timeout = idle_timeout
        self._dialect = dialect
        self._now = now  # the kiosk's local wall clock, written to the cuff's Current Time

    async def collect(
        self, on_cuff_pressure: CuffPressureCallback | None = None
    ) -> list[BloodPressureMeasurement]:
        """Gather the 0x2A35 measurements of one connection.

        Returns when the cuff disconnects, or when ``idle_timeout`` passes with no
        notification (the timer restarts on every 0x2A35/0x2A36 value). Raises
        DeviceNotFoundError if connecting fails, DeviceNotBondedError if the cuff
        refuses access for want of a bond, DeviceDisconnectedError if the link drops
        after inflation began but before any 0x2A35 arrived, and
        MeasurementTimeoutError if the cuff stays silent on 0x2A35 for
        ``idle_timeout``. Undecodable values are logged and skipped.
        """
        watch = LinkWatch(self._address, logger)
        measurements: list[BloodPressureMeasurement] = []
        async with self._open_link(watch) as client:
            # Before subscribing: the cuff stamps the measurement it is about to send with its clock.
            await set_device_clock(client, self._address, self._now, self._note_clock_offset)
            await self._subscribe(client, watch, measurements.append, on_cuff_pressure)
            await watch.wait_idle(self._idle_timeout)
        return self._outcome(watch, measurements)

    async def _subscribe(
        self,
        client: BleakClient,
        watch: LinkWatch,
        on_measurement: MeasurementCallback,
        on_cuff_pressure: CuffPressureCallback | None,
    ) -> None:
        def on_intermediate(reading: IntermediateCuffPressure) -> None:
            if on_cuff_pressure is None:
                return
            try:
                on_cuff_pressure(reading)
            except Exception:
                # A display callback bug must not abort the patient's measurement.
                logger.exception("on_cuff_pressure callback failed")

        services = client.services
        if services.get_characteristic(uuids.BLOOD_PRESSURE_MEASUREMENT) is None:
            raise MissingServiceError(f"{self._address} has no Blood Pressure Measurement (0x2A35)")
        # 0x2A36 is optional in BLS (3.2), so only subscribe when it exists.
        if services.get_characteristic(uuids.INTERMEDIATE_CUFF_PRESSURE) is not None:
            decode_icp = partial(decode_intermediate_cuff_pressure, dialect=self._dialect)
            await subscribe(client, watch, uuids.INTERMEDIATE_CUFF_PRESSURE, watch.handler(decode_icp, on_intermediate))
        decode_bpm = partial(decode_blood_pressure_measurement, dialect=self._dialect)
        await subscribe(client, watch, uuids.BLOOD_PRESSURE_MEASUREMENT, watch.handler(decode_bpm, on_measurement))

    def _outcome(self, watch: LinkWatch, measurements: list[BloodPressureMeasurement]) -> list[BloodPressureMeasurement]:
        if uuids.BLOOD_PRESSURE_MEASUREMENT in watch.seen:  # any 0x2A35 bytes, decodable or not
            return list(measurements)
        if watch.disconnected.is_set():
            if uuids.INTERMEDIATE_CUFF_PRESSURE in watch.seen:
                raise DeviceDisconnectedError(
                    f"{self._address}: connection dropped mid-measurement (after inflation, before 0x2A35)"
                )
            # Connected and left without measuring: nothing to report, not a failure.
            return []
        raise MeasurementTimeoutError(
            f"{self._address}: no Blood Pressure Measurement within {self._idle_timeout} s"
        )
