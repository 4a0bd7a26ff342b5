"""A simulated glucose meter answering Record Access Control Point requests (GLS 1.0)."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

from bleak.exc import (
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from drivers.ble import racp, uuids
from drivers.ble.errors import DecodeError
from drivers.ble.glucose import (
    encode_glucose_measurement,
    encode_glucose_measurement_context,
)
from drivers.ble.glucose_session import GlucoseRecord
from drivers.ble.simulated.peripheral import (
    Link,
    SimCharacteristic,
    SimService,
    SimulatedPeripheral,
)


@dataclass(kw_only=True)
class SimulatedGlucoseMeter(SimulatedPeripheral):
    """Glucose Service 0x1808 (GLS 1.0.1): stored ``records`` reported over RACP 0x2A52.

    Per GLS 3.4 / GLP: a RACP write is acknowledged at once; the meter then notifies
    each matching record on 0x2A18 (and 0x2A34 when it has context) and finally
    indicates the RACP response. Records are kept (replayed) unless deleted by RACP.
    ``drop_mid_transfer``: the link drops after half the matching records (at least one).
    ``garbage``: sent instead of the first matching record's 0x2A18 value.
    """

    address: str = "SIM:GL:UC:00:00:01"
    name: str = "SIM-GLUCOSE"
    records: list[GlucoseRecord] = field(default_factory=list)
    features: int = 0x0000  # Glucose Feature (GLS 3.3), uint16: no optional features claimed
    record_interval: float = 0.01
    in_progress: bool = field(default=False, init=False)

    def gatt(self) -> list[SimService]:
        return [
            SimService(
                uuids.GLUCOSE_SERVICE,
                (
                    SimCharacteristic(uuids.GLUCOSE_MEASUREMENT, ("notify",)),  # GLS 3.1
                    SimCharacteristic(uuids.GLUCOSE_MEASUREMENT_CONTEXT, ("notify",)),  # GLS 3.2
                    SimCharacteristic(
                        uuids.GLUCOSE_FEATURE, ("read",), read=lambda: self.features.to_bytes(2, "little")
                    ),  # GLS 3.3
                    SimCharacteristic(
                        uuids.RECORD_ACCESS_CONTROL_POINT, ("write", "indicate"), write=self._on_racp
                    ),  # GLS 3.4
                ),
            )
        ]

    def matching(self, request: racp.RacpRequest) -> list[GlucoseRecord]:
        """Stored records selected by ``request``'s operator (GSS 3.178.2), oldest first."""
        stored = sorted(self.records, key=lambda r: r.measurement.sequence_number)
        op, operand = request.operator, request.operand
        if op is racp.RacpOperator.ALL_RECORDS:
            return stored
        if op is racp.RacpOperator.FIRST_RECORD:
            return stored[:1]
        if op is racp.RacpOperator.LAST_RECORD:
            return stored[-1:]
        low, high = {
            racp.RacpOperator.LESS_THAN_OR_EQUAL_TO: lambda: (0, operand[0]),
            racp.RacpOperator.GREATER_THAN_OR_EQUAL_TO: lambda: (operand[0], 0xFFFF),
            racp.RacpOperator.WITHIN_RANGE_OF: lambda: (operand[0], operand[1]),
        }[op]()
        return [r for r in stored if low <= r.measurement.sequence_number <= high]

    def _on_racp(self, data: bytes, link: Link) -> None:
        # GSS 3.178 / GLS 3.4: ATT errors for the write itself, response codes for the procedure.
        if self.in_progress and data[:1] != bytes([racp.RacpOpCode.ABORT_OPERATION]):
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS)
        try:
            request = racp.decode_racp_request(data)
        except DecodeError:
            # Answer as GSS 3.178.4 says for a request we cannot parse; echo the raw op code.
            link.send(uuids.RECORD_ACCESS_CONTROL_POINT, bytes([0x06, 0x00, data[0] if data else 0, 0x03]))
            return
        selected = self.matching(request) if request.operator is not racp.RacpOperator.NULL else []
        op = request.op_code
        if op is racp.RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
            self._respond(link, racp.NumberOfRecords(len(selected)))
        elif op is racp.RacpOpCode.ABORT_OPERATION:
            self.in_progress = False
            self._respond(link, racp.ResponseCode(op, racp.ResponseCodeValue.SUCCESS))
        elif not selected:
            self._respond(link, racp.ResponseCode(op, racp.ResponseCodeValue.NO_RECORDS_FOUND))
        elif op is racp.RacpOpCode.DELETE_STORED_RECORDS:
            self.records = [r for r in self.records if r not in selected]
            self._respond(link, racp.ResponseCode(op, racp.ResponseCodeValue.SUCCESS))
        else:
            self.in_progress = True
            link.run_soon(self._report(link, selected))

    async def _report(self, link: Link, selected: list[GlucoseRecord]) -> None:
        try:
            cut = max(1, len(selected) // 2) if self.drop_mid_transfer else len(selected)
            for index, record in enumerate(selected[:cut]):
                has_context = record.context is not None
                measurement = dataclasses.replace(record.measurement, context_information_follows=has_context)
                payload = encode_glucose_measurement(measurement)
                if index == 0 and self.garbage is not None:
                    payload = self.garbage
                link.send(uuids.GLUCOSE_MEASUREMENT, payload)
                if record.context is not None:
                    link.send(uuids.GLUCOSE_MEASUREMENT_CONTEXT, encode_glucose_measurement_context(record.context))
                await asyncio.sleep(self.record_interval)
            if self.drop_mid_transfer:
                link.disconnect()
                return
            code = racp.ResponseCode(racp.RacpOpCode.REPORT_STORED_RECORDS, racp.ResponseCodeValue.SUCCESS)
            self._respond(link, code)
        finally:
            self.in_progress = False

    @staticmethod
    def _respond(link: Link, response: racp.RacpResponse) -> None:
        link.send(uuids.RECORD_ACCESS_CONTROL_POINT, racp.encode_racp_response(response))


# -- The bleak backend ----------------------------------------------------------


