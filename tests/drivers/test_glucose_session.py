"""GlucoseMeterSession through the real bleak.BleakClient over the simulated meter (no mocks)."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from bleak import BleakClient

from drivers.ble import racp, uuids
from drivers.ble.errors import DeviceDisconnectedError
from drivers.ble.glucose import (
    GlucoseConcentrationUnit,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseType,
    Meal,
    SampleLocation,
)
from drivers.ble.glucose_session import (
    GlucoseMeterSession,
    GlucoseRecord,
    RacpProcedureError,
)
from drivers.ble.simulated import SimulatedGlucoseMeter, simulated_backend


def record(seq: int, with_context: bool = False) -> GlucoseRecord:
    measurement = GlucoseMeasurement(
        sequence_number=seq,
        base_time=datetime(2025, 6, 1, 7, seq % 60),
        glucose_concentration=0.00095,  # kg/L = 95 mg/dL
        unit=GlucoseConcentrationUnit.KG_PER_L,
        type=GlucoseType.CAPILLARY_PLASMA,
        sample_location=SampleLocation.FINGER,
        context_information_follows=with_context,
    )
    context = GlucoseMeasurementContext(sequence_number=seq, meal=Meal.FASTING) if with_context else None
    return GlucoseRecord(measurement, context)


RECORDS = [record(1), record(2, with_context=True), record(3), record(4, with_context=True)]


def session_for(meter: SimulatedGlucoseMeter) -> GlucoseMeterSession:
    return GlucoseMeterSession(meter.address, backend=simulated_backend(meter), timeout=1.0)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_fetch_all_records_with_contexts() -> None:
    meter = SimulatedGlucoseMeter(records=list(RECORDS))
    result = await session_for(meter).fetch_since(None)
    assert result == RECORDS
    assert result[1].context is not None and result[1].context.meal is Meal.FASTING
    assert meter.writes == [(uuids.RECORD_ACCESS_CONTROL_POINT, racp.report_all_records())]


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_fetch_since_gets_only_newer_records_and_memory_is_replayed() -> None:
    meter = SimulatedGlucoseMeter(records=list(RECORDS))
    session = session_for(meter)
    assert await session.fetch_since(2) == RECORDS[2:]
    assert await session.fetch_since(None) == RECORDS  # stored records survive a report
    assert meter.writes[0] == (uuids.RECORD_ACCESS_CONTROL_POINT, racp.report_records_after(2))


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_no_records_found_is_an_empty_list() -> None:
    meter = SimulatedGlucoseMeter(records=list(RECORDS))
    assert await session_for(meter).fetch_since(4) == []
    assert await session_for(SimulatedGlucoseMeter()).fetch_since(None) == []


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_drop_mid_transfer_never_returns_a_partial_list() -> None:
    meter = SimulatedGlucoseMeter(records=list(RECORDS), drop_mid_transfer=True)
    with pytest.raises(DeviceDisconnectedError, match="mid-transfer after 2 record"):
        await session_for(meter).fetch_since(None)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_garbage_record_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    # The first record (seq 2, with context) arrives as garbage; its context is then an orphan.
    meter = SimulatedGlucoseMeter(records=list(RECORDS), garbage=b"\x10\x02")
    with caplog.at_level(logging.WARNING, logger="drivers.ble.glucose_session"):
        result = await session_for(meter).fetch_since(1)
    assert result == RECORDS[2:]
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipping undecodable value" in m and "1002" in m for m in messages)
    assert any("context for unknown record 2" in m for m in messages)


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_bonded_meter_needs_bonding() -> None:
    meter = SimulatedGlucoseMeter(records=list(RECORDS), requires_bonding=True)
    session = GlucoseMeterSession(meter.address, backend=simulated_backend(meter), timeout=1.0, needs_bonding=True)
    assert await session.fetch_since(3) == RECORDS[3:]


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_racp_number_of_records_and_failure_codes_over_plain_bleak() -> None:
    meter = SimulatedGlucoseMeter(records=list(RECORDS))
    answers: list[racp.RacpResponse] = []
    async with BleakClient(meter.address, backend=simulated_backend(meter)) as client:
        await client.start_notify(
            uuids.RECORD_ACCESS_CONTROL_POINT, lambda _c, data: answers.append(racp.decode_racp_response(bytes(data)))
        )
        await client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT, racp.report_number_of_records_after(1), response=True)
        await client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT, b"\x01\x07", response=True)  # reserved operator
    assert answers[0] == racp.NumberOfRecords(3)
    assert answers[1] == racp.ResponseCode(racp.RacpOpCode.REPORT_STORED_RECORDS, racp.ResponseCodeValue.INVALID_OPERATOR)


def test_racp_procedure_error_names_the_code() -> None:
    error = RacpProcedureError("SIM:GL", racp.ResponseCodeValue.OPERATOR_NOT_SUPPORTED)
    assert "operator_not_supported" in str(error)


class _MeterWithoutSequenceFilter(SimulatedGlucoseMeter):
    """A meter that supports only "all records" (GSS 3.178.4: operator not supported otherwise)."""

    def matching(self, request: racp.RacpRequest) -> list[GlucoseRecord]:
        if request.operator is not racp.RacpOperator.ALL_RECORDS:
            raise AssertionError("not reached")
        return super().matching(request)

    def _on_racp(self, data: bytes, link: object) -> None:  # type: ignore[override]
        request = racp.decode_racp_request(data)
        if request.operator is racp.RacpOperator.ALL_RECORDS:
            super()._on_racp(data, link)  # type: ignore[arg-type]
            return
        response = racp.ResponseCode(request.op_code, racp.ResponseCodeValue.OPERATOR_NOT_SUPPORTED)
        link.send(uuids.RECORD_ACCESS_CONTROL_POINT, racp.encode_racp_response(response))  # type: ignore[attr-defined]


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_failure_response_code_is_a_typed_error() -> None:
    meter = _MeterWithoutSequenceFilter(records=list(RECORDS))
    with pytest.raises(RacpProcedureError) as info:
        await session_for(meter).fetch_since(2)
    assert info.value.response is racp.ResponseCodeValue.OPERATOR_NOT_SUPPORTED
    assert await session_for(meter).fetch_since(None) == RECORDS
