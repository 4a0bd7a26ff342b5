"""Fetch stored records from a glucose meter (GLS 1.0.1) over ``bleak.BleakClient``.

The Record Access Control Point procedure (GLS 3.4, GSS 3.178): subscribe to
Glucose Measurement 0x2A18 and Glucose Measurement Context 0x2A34 (notify) and to
RACP 0x2A52 (indicate), write "report stored records", collect the notified
records until the RACP response indication ends the procedure. Decoding is
delegated to :mod:`drivers.ble.glucose` and :mod:`drivers.ble.racp`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.exc import BleakError

from contract.device_errors import DeviceErrorCode
from drivers.ble import racp, uuids
from drivers.ble.errors import (
    BleDriverError,
    DeviceDisconnectedError,
    MissingServiceError,
    MeasurementTimeoutError,
)
from drivers.ble.glucose import (
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    decode_glucose_measurement,
    decode_glucose_measurement_context,
)
from drivers.ble.measurement_session import DeviceSession, LinkWatch, subscribe

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    """One stored record: the measurement and, if the meter had one, its context (GLS 3.2)."""

    measurement: GlucoseMeasurement
    context: GlucoseMeasurementContext | None = None


class RacpProcedureError(BleDriverError):
    """The meter answered the RACP request with a failure Response Code (GSS 3.178.4).

    Neither the link's fault nor undecodable bytes: the meter refused the procedure
    (e.g. operator not supported), so retrying the same request will not help.
    """

    code = DeviceErrorCode.BLE_PROCEDURE_REFUSED

    def __init__(self, address: str, response: racp.ResponseCodeValue) -> None:
        self.address = address
        self.response = response
        super().__init__(f"{address}: RACP request failed with response code {response.name.lower()} ({response:#04x})")

    def __reduce__(self) -> tuple[type[RacpProcedureError], tuple[str, racp.ResponseCodeValue]]:
        return (type(self), (self.address, self.response))


@dataclass
class _Transfer:
    """What one RACP procedure has delivered so far (per fetch, never shared)."""

    measurements: dict[int, GlucoseMeasurement] = field(default_factory=dict)  # by sequence number
    contexts: dict[int, GlucoseMeasurementContext] = field(default_factory=dict)
    response: racp.ResponseCode | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set by the RACP response

    def on_response(self, response: racp.RacpResponse) -> None:
        if isinstance(response, racp.ResponseCode) and response.request_op_code is racp.RacpOpCode.REPORT_STORED_RECORDS:
            self.response = response
            self.done.set()
        else:
            # Not an answer to what we asked (GSS 3.178): note it, keep waiting for ours.
            logger.warning("ignoring unexpected RACP response %s", response)


class GlucoseMeterSession(DeviceSession):
    """Connect to one glucose meter and fetch its stored records."""

    def __init__(
        self,
        address: str,
        *,
        backend: type[BaseBleakClient] | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
        needs_bonding: bool = False,
        forgets_bond: bool = False,
    ) -> None:
        super().__init__(address, backend=backend, connect_timeout=connect_timeout, needs_bonding=needs_bonding,
                         forgets_bond=forgets_bond)
        self._timeout = timeout  # longest silence between values during the procedure

    async def fetch_since(self, last_sequence_number: int | None) -> list[GlucoseRecord]:
        """Records with a sequence number after ``last_sequence_number`` (all if None), oldest first.

        Raises DeviceNotFoundError (connect), MissingServiceError (no RACP), DeviceNotBondedError,
        DeviceDisconnectedError if the link drops before the RACP response (the partial
        list is discarded: it cannot be told from a complete one), MeasurementTimeoutError
        if the meter falls silent for ``timeout`` s, RacpProcedureError for a failure
        response code. "No records found" is an empty list. Undecodable values are
        logged and skipped.
        """
        request = racp.report_all_records() if last_sequence_number is None else racp.report_records_after(last_sequence_number)
        watch = LinkWatch(self._address, logger)
        transfer = _Transfer()
        async with self._open_link(watch) as client:
            if client.services.get_characteristic(uuids.RECORD_ACCESS_CONTROL_POINT) is None:
                raise MissingServiceError(f"{self._address} has no Record Access Control Point (0x2A52)")
            await self._subscribe(client, watch, transfer)
            try:
                # GLS 3.4: write with response; the procedure's result comes as an indication.
                await client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT, request, response=True)
            except BleakError as exc:
                raise watch.failure(client, "writing the RACP request", exc) from exc
            await watch.wait_idle(self._timeout, transfer.done)
        return self._outcome(watch, transfer)

    async def _subscribe(self, client: BleakClient, watch: LinkWatch, transfer: _Transfer) -> None:
        def keep_measurement(m: GlucoseMeasurement) -> None:
            transfer.measurements[m.sequence_number] = m

        def keep_context(c: GlucoseMeasurementContext) -> None:
            transfer.contexts[c.sequence_number] = c

        await subscribe(client, watch, uuids.GLUCOSE_MEASUREMENT, watch.handler(decode_glucose_measurement, keep_measurement))
        # 0x2A34 is optional in GLS (3.2): subscribe only when the meter has it.
        if client.services.get_characteristic(uuids.GLUCOSE_MEASUREMENT_CONTEXT) is not None:
            await subscribe(
                client,
                watch,
                uuids.GLUCOSE_MEASUREMENT_CONTEXT,
                watch.handler(decode_glucose_measurement_context, keep_context),
            )
        decode_response: Callable[[bytes], racp.RacpResponse] = racp.decode_racp_response
        await subscribe(client, watch, uuids.RECORD_ACCESS_CONTROL_POINT, watch.handler(decode_response, transfer.on_response))

    def _outcome(self, watch: LinkWatch, transfer: _Transfer) -> list[GlucoseRecord]:
        if transfer.response is None:
            if watch.disconnected.is_set():
                got = len(transfer.measurements)
                raise DeviceDisconnectedError(
                    f"{self._address}: connection dropped mid-transfer after {got} record(s), before the RACP response"
                )
            raise MeasurementTimeoutError(f"{self._address}: no RACP response within {self._timeout} s of silence")
        code = transfer.response.response
        if code is racp.ResponseCodeValue.NO_RECORDS_FOUND:
            return []
        if code is not racp.ResponseCodeValue.SUCCESS:
            raise RacpProcedureError(self._address, code)
        for orphan in transfer.contexts.keys() - transfer.measurements.keys():
            # GLS 3.2: a context belongs to the measurement with its sequence number.
            logger.warning("%s: dropping context for unknown record %d", self._address, orphan)
        return [
            GlucoseRecord(m, transfer.contexts.get(seq))
            for seq, m in sorted(transfer.measurements.items())
        ]
