"""Record Access Control Point (0x2A52) as used by the Glucose Service.

Pure codec: requests the kiosk writes (and the simulator reads back), and the
indications the meter answers with. Layout: Bluetooth SIG GATT Specification
Supplement (GSS) 3.178 "Record Access Control Point" (3.178.1 Op Code,
3.178.2 Operator, 3.178.3 Operand, 3.178.4 Response Code Values), with the
operand formats the Glucose Service (GLS) 1.0.1 section 3.4 "Record Access
Control Point" defines: Filter Type 0x01 = Sequence Number, uint16 operands;
Number of Stored Records is a uint16. Little-endian as in the GSS tables.

Verified (search of published material, not the paywalled PDF): op codes,
operators and response code values against the SIG's own characteristic XML
(oesmith/gatt-xml org.bluetooth.characteristic.record_access_control_point.xml),
Stonestreet One Bluetopia GLSTypes.h (PhaniKumarDV/APIN100A, which also gives
Filter Type 0x01 sequence number / 0x02 user facing time) and Nordic's
Android GlucoseManager (request = op code, operator, filter type, uint16
operands; Number of Stored Records Response = 05 00 + uint16; Response Code =
06 00 + request op code + response code value). The GSS section numbers are
those StanfordSpezi/SpeziBluetooth cites.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from drivers.ble.fields import FieldReader

_RACP = "2a52"

_UINT16_MAX = 0xFFFF


class RacpOpCode(IntEnum):
    """GSS 3.178.1 Op Code (uint8); 0 and 7-255 are reserved."""

    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT_OPERATION = 0x03  # operator Null, no operand
    REPORT_NUMBER_OF_STORED_RECORDS = 0x04
    NUMBER_OF_STORED_RECORDS_RESPONSE = 0x05  # server -> client; operator Null
    RESPONSE_CODE = 0x06  # server -> client; operator Null


class RacpOperator(IntEnum):
    """GSS 3.178.2 Operator (uint8); 7-255 are reserved."""

    NULL = 0x00
    ALL_RECORDS = 0x01
    LESS_THAN_OR_EQUAL_TO = 0x02
    GREATER_THAN_OR_EQUAL_TO = 0x03
    WITHIN_RANGE_OF = 0x04  # inclusive
    FIRST_RECORD = 0x05  # i.e. oldest record
    LAST_RECORD = 0x06  # i.e. most recent record


class FilterType(IntEnum):
    """GLS 3.4 operand Filter Type. Only the sequence number filter is supported.

    0x02 "User Facing Time" (Base Time + Time Offset, a Date Time operand) exists
    in GLS but is deliberately not implemented: it is optional for meters, and
    sequence numbers are what a kiosk needs to fetch "records since the last one".
    """

    SEQUENCE_NUMBER = 0x01


class ResponseCodeValue(IntEnum):
    """GSS 3.178.4 Response Code Values (uint8); 0 and 10-255 are reserved."""

    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_OPERATOR = 0x03
    OPERATOR_NOT_SUPPORTED = 0x04
    INVALID_OPERAND = 0x05
    NO_RECORDS_FOUND = 0x06
    ABORT_UNSUCCESSFUL = 0x07
    PROCEDURE_NOT_COMPLETED = 0x08
    OPERAND_NOT_SUPPORTED = 0x09


# Requests the client writes; 5 and 6 only ever travel server -> client.
_REQUEST_OP_CODES = frozenset(
    {
        RacpOpCode.REPORT_STORED_RECORDS,
        RacpOpCode.DELETE_STORED_RECORDS,
        RacpOpCode.ABORT_OPERATION,
        RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
    }
)
# GLS 3.4: how many uint16 sequence numbers follow the Filter Type, per operator.
# All / First / Last take no operand; Null is only valid for Abort.
_OPERAND_COUNT: dict[RacpOperator, int] = {
    RacpOperator.ALL_RECORDS: 0,
    RacpOperator.LESS_THAN_OR_EQUAL_TO: 1,  # maximum
    RacpOperator.GREATER_THAN_OR_EQUAL_TO: 1,  # minimum
    RacpOperator.WITHIN_RANGE_OF: 2,  # minimum, maximum
    RacpOperator.FIRST_RECORD: 0,
    RacpOperator.LAST_RECORD: 0,
}


@dataclass(frozen=True, slots=True)
class RacpRequest:
    op_code: RacpOpCode
    operator: RacpOperator
    # GLS 3.4: present exactly when ``operand`` is non-empty.
    filter_type: FilterType | None = None
    # Sequence numbers (uint16): (maximum,) for <=, (minimum,) for >=, (min, max) for a range.
    operand: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NumberOfRecords:
    """Op code 5 "Number of stored records response": 05 00 + uint16 count (GLS 3.4)."""

    count: int


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """Op code 6 "Response Code": 06 00 + Request Op Code + Response Code Value (GSS 3.178.3)."""

    request_op_code: RacpOpCode
    response: ResponseCodeValue


RacpResponse = NumberOfRecords | ResponseCode


def _check_request(req: RacpRequest) -> tuple[str, str] | None:
    """Why ``req`` breaks GLS 3.4 as (field name, reason); None if it is valid."""
    if req.op_code not in _REQUEST_OP_CODES:
        return ("op_code", f"{req.op_code.name.lower()} is a response, not a request")
    if req.op_code is RacpOpCode.ABORT_OPERATION:
        if req.operator is not RacpOperator.NULL:
            return ("operator", "abort requires the null operator")
        if req.filter_type is not None or req.operand:
            return ("operand", "abort takes no operand")
        return None
    expected = _OPERAND_COUNT.get(req.operator)
    if expected is None:
        return ("operator", f"{req.operator.name.lower()} is not valid for {req.op_code.name.lower()}")
    if len(req.operand) != expected:
        return ("operand", f"{req.operator.name.lower()} takes {expected} sequence numbers, got {len(req.operand)}")
    if (req.filter_type is None) != (expected == 0):
        return ("filter_type", "required exactly when there is an operand")
    if any(not 0 <= value <= _UINT16_MAX for value in req.operand):
        return ("operand", f"sequence numbers must be uint16, got {req.operand}")
    if req.operator is RacpOperator.WITHIN_RANGE_OF and req.operand[0] > req.operand[1]:
        return ("operand", f"range minimum {req.operand[0]} > maximum {req.operand[1]}")
    return None


def encode_racp_request(req: RacpRequest) -> bytes:
    """Bytes to write to 0x2A52; ValueError if ``req`` breaks GLS 3.4."""
    problem = _check_request(req)
    if problem is not None:
        raise ValueError(f"invalid RACP request: {problem[0]}: {problem[1]}")
    out = bytes([req.op_code, req.operator])
    if req.filter_type is not None:
        out += bytes([req.filter_type])
        out += b"".join(value.to_bytes(2, "little") for value in req.operand)
    return out


def _next_sequence_number(sequence_number: int) -> int:
    if not 0 <= sequence_number < _UINT16_MAX:
        # 0xFFFF is the last uint16: no record can come "after" it without the
        # meter wrapping its counter, which GLS leaves to the meter. The caller
        # must decide (e.g. fall back to report_all_records()).
        raise ValueError(f"no uint16 sequence number follows {sequence_number}")
    return sequence_number + 1


def report_records_after(sequence_number: int) -> bytes:
    """Report stored records with sequence number >= ``sequence_number`` + 1.

    What a kiosk writes to fetch only the records newer than the last it saw.
    """
    return encode_racp_request(
        RacpRequest(
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            FilterType.SEQUENCE_NUMBER,
            (_next_sequence_number(sequence_number),),
        )
    )


def report_all_records() -> bytes:
    """Report stored records, all records: 01 01."""
    return encode_racp_request(RacpRequest(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS))


def report_number_of_records_after(sequence_number: int) -> bytes:
    """Report number of stored records with sequence number >= ``sequence_number`` + 1."""
    return encode_racp_request(
        RacpRequest(
            RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            FilterType.SEQUENCE_NUMBER,
            (_next_sequence_number(sequence_number),),
        )
    )


def _op_code(reader: FieldReader) -> RacpOpCode:
    raw = reader.uint8("op_code", mandatory=True)
    try:
        return RacpOpCode(raw)
    except ValueError:
        raise reader.fail("op_code", f"unknown or reserved op code {raw:#04x}") from None


def _operator(reader: FieldReader) -> RacpOperator:
    raw = reader.uint8("operator", mandatory=True)
    try:
        return RacpOperator(raw)
    except ValueError:
        raise reader.fail("operator", f"unknown or reserved operator {raw:#04x}") from None


def decode_racp_request(data: bytes) -> RacpRequest:
    """Decode what a client wrote to 0x2A52 (the simulator's side)."""
    reader = FieldReader(data, _RACP)
    op_code = _op_code(reader)
    if op_code not in _REQUEST_OP_CODES:
        raise reader.fail("op_code", f"{op_code.name.lower()} is a response, not a request")
    operator = _operator(reader)
    filter_type: FilterType | None = None
    operand: tuple[int, ...] = ()
    expected = 0 if op_code is RacpOpCode.ABORT_OPERATION else _OPERAND_COUNT.get(operator, 0)
    if expected:
        raw_filter = reader.uint8("filter_type")
        try:
            filter_type = FilterType(raw_filter)
        except ValueError:
            raise reader.fail("filter_type", f"unsupported filter type {raw_filter:#04x}") from None
        operand = tuple(reader.uint16("operand") for _ in range(expected))
    # Trailing bytes are accepted and ignored (as for the measurements).
    request = RacpRequest(op_code, operator, filter_type, operand)
    problem = _check_request(request)
    if problem is not None:
        raise reader.fail(*problem)
    return request


def decode_racp_response(data: bytes) -> RacpResponse:
    """Decode an indication from 0x2A52: a record count or a response code."""
    reader = FieldReader(data, _RACP)
    op_code = _op_code(reader)
    if op_code in _REQUEST_OP_CODES:
        raise reader.fail("op_code", f"{op_code.name.lower()} is a request, not a response")
    operator = _operator(reader)
    if operator is not RacpOperator.NULL:  # GSS 3.178.1: responses use the Null operator
        raise reader.fail("operator", f"responses use the null operator, got {operator.name.lower()}")
    if op_code is RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        return NumberOfRecords(reader.uint16("number_of_records", mandatory=True))
    raw_request = reader.uint8("request_op_code", mandatory=True)
    try:
        request_op_code = RacpOpCode(raw_request)
    except ValueError:
        # We only ever send known op codes, so an unknown echo is the meter's fault.
        raise reader.fail("request_op_code", f"unknown or reserved op code {raw_request:#04x}") from None
    raw_value = reader.uint8("response_code_value", mandatory=True)
    try:
        response = ResponseCodeValue(raw_value)
    except ValueError:
        raise reader.fail("response_code_value", f"unknown or reserved value {raw_value:#04x}") from None
    return ResponseCode(request_op_code, response)


def encode_racp_response(resp: RacpResponse) -> bytes:
    """Bytes the simulator indicates on 0x2A52."""
    if isinstance(resp, NumberOfRecords):
        if not 0 <= resp.count <= _UINT16_MAX:
            raise ValueError(f"number of records must be uint16, got {resp.count}")
        return bytes([RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, RacpOperator.NULL]) + resp.count.to_bytes(
            2, "little"
        )
    return bytes([RacpOpCode.RESPONSE_CODE, RacpOperator.NULL, resp.request_op_code, resp.response])


def _name(member: IntEnum | None) -> str | None:
    return member.name.lower() if member is not None else None


def to_json_dict(message: RacpRequest | RacpResponse) -> dict[str, Any]:
    """JSON-ready dict keyed by the SIG field names in snake_case."""
    if isinstance(message, RacpRequest):
        return {
            "op_code": _name(message.op_code),
            "operator": _name(message.operator),
            "filter_type": _name(message.filter_type),
            "operand": list(message.operand),
        }
    if isinstance(message, NumberOfRecords):
        return {
            "op_code": _name(RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE),
            "number_of_records": message.count,
        }
    if isinstance(message, ResponseCode):
        return {
            "op_code": _name(RacpOpCode.RESPONSE_CODE),
            "request_op_code": _name(message.request_op_code),
            "response_code_value": _name(message.response),
        }
    raise TypeError(f"not a RACP message: {type(message).__name__}")


__all__ = [
    "FilterType",
    "NumberOfRecords",
    "RacpOpCode",
    "RacpOperator",
    "RacpRequest",
    "RacpResponse",
    "ResponseCode",
    "ResponseCodeValue",
    "decode_racp_request",
    "decode_racp_response",
    "encode_racp_request",
    "encode_racp_response",
    "report_all_records",
    "report_number_of_records_after",
    "report_records_after",
    "to_json_dict",
]
