"""Golden and property tests for the Record Access Control Point 0x2A52 (GSS 3.178; GLS 3.4)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.errors import DecodeError
from drivers.ble.racp import (
    FilterType,
    NumberOfRecords,
    RacpOpCode,
    RacpOperator,
    RacpRequest,
    ResponseCode,
    ResponseCodeValue,
    decode_racp_request,
    decode_racp_response,
    encode_racp_request,
    encode_racp_response,
    report_all_records,
    report_number_of_records_after,
    report_records_after,
    to_json_dict,
)

OP = RacpOpCode
OPR = RacpOperator
SEQ = FilterType.SEQUENCE_NUMBER


def req(hex_payload: str) -> RacpRequest:
    return decode_racp_request(bytes.fromhex(hex_payload))


def resp(hex_payload: str) -> NumberOfRecords | ResponseCode:
    return decode_racp_response(bytes.fromhex(hex_payload))


# -- helpers a kiosk writes ------------------------------------------------------


def test_report_records_after() -> None:
    # Op Code 0x01 report stored records, Operator 0x03 >=, Filter Type 0x01 sequence number, uint16 42+1.
    assert report_records_after(42) == bytes.fromhex("01" "03" "01" "2b00")
    assert report_records_after(0x01FF) == bytes.fromhex("01" "03" "01" "0002")


def test_report_all_records() -> None:
    assert report_all_records() == bytes.fromhex("01" "01")  # report stored records, all records


def test_report_number_of_records_after() -> None:
    assert report_number_of_records_after(0) == bytes.fromhex("04" "03" "01" "0100")


@pytest.mark.parametrize("sequence_number", [-1, 0xFFFF, 0x10000])
def test_no_uint16_after(sequence_number: int) -> None:
    with pytest.raises(ValueError):
        report_records_after(sequence_number)
    with pytest.raises(ValueError):
        report_number_of_records_after(sequence_number)


# -- requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("0101", RacpRequest(OP.REPORT_STORED_RECORDS, OPR.ALL_RECORDS)),
        ("0105", RacpRequest(OP.REPORT_STORED_RECORDS, OPR.FIRST_RECORD)),
        ("0106", RacpRequest(OP.REPORT_STORED_RECORDS, OPR.LAST_RECORD)),
        ("0102" "01" "0a00", RacpRequest(OP.REPORT_STORED_RECORDS, OPR.LESS_THAN_OR_EQUAL_TO, SEQ, (10,))),
        ("0103" "01" "0a00", RacpRequest(OP.REPORT_STORED_RECORDS, OPR.GREATER_THAN_OR_EQUAL_TO, SEQ, (10,))),
        ("0104" "01" "0a00" "1400", RacpRequest(OP.REPORT_STORED_RECORDS, OPR.WITHIN_RANGE_OF, SEQ, (10, 20))),
        ("0104" "01" "0a00" "0a00", RacpRequest(OP.REPORT_STORED_RECORDS, OPR.WITHIN_RANGE_OF, SEQ, (10, 10))),
        ("0201", RacpRequest(OP.DELETE_STORED_RECORDS, OPR.ALL_RECORDS)),
        ("0300", RacpRequest(OP.ABORT_OPERATION, OPR.NULL)),
        ("0401", RacpRequest(OP.REPORT_NUMBER_OF_STORED_RECORDS, OPR.ALL_RECORDS)),
        ("0403" "01" "ffff", RacpRequest(OP.REPORT_NUMBER_OF_STORED_RECORDS, OPR.GREATER_THAN_OR_EQUAL_TO, SEQ, (0xFFFF,))),
    ],
)
def test_request_vectors(payload: str, expected: RacpRequest) -> None:
    assert req(payload) == expected
    assert encode_racp_request(expected) == bytes.fromhex(payload)


def test_request_trailing_bytes_are_ignored() -> None:
    assert req("0101" "deadbeef") == RacpRequest(OP.REPORT_STORED_RECORDS, OPR.ALL_RECORDS)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("", "op_code"),
        ("00" "01", "op_code"),  # reserved
        ("07" "01", "op_code"),  # reserved 7-255
        ("ff" "01", "op_code"),
        ("05" "00" "0100", "op_code"),  # a response written as a request
        ("06" "00" "0101", "op_code"),
        ("01", "operator"),
        ("01" "07", "operator"),  # reserved
        ("01" "00", "operator"),  # null is only for abort
        ("03" "01", "operator"),  # abort requires null
        ("01" "03", "filter_type"),
        ("01" "03" "02" "0a00", "filter_type"),  # user facing time: not supported
        ("01" "03" "00" "0a00", "filter_type"),
        ("01" "03" "01", "operand"),
        ("01" "03" "01" "0a", "operand"),
        ("01" "04" "01" "0a00", "operand"),
        ("01" "04" "01" "1400" "0a00", "operand"),  # min > max
    ],
)
def test_bad_requests_name_the_field(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        req(payload)
    assert (info.value.characteristic, info.value.field) == ("2a52", field)


@pytest.mark.parametrize(
    "request_",
    [
        RacpRequest(OP.RESPONSE_CODE, OPR.NULL),
        RacpRequest(OP.ABORT_OPERATION, OPR.ALL_RECORDS),
        RacpRequest(OP.ABORT_OPERATION, OPR.NULL, SEQ, (1,)),
        RacpRequest(OP.REPORT_STORED_RECORDS, OPR.NULL),
        RacpRequest(OP.REPORT_STORED_RECORDS, OPR.ALL_RECORDS, SEQ, (1,)),
        RacpRequest(OP.REPORT_STORED_RECORDS, OPR.GREATER_THAN_OR_EQUAL_TO),
        RacpRequest(OP.REPORT_STORED_RECORDS, OPR.GREATER_THAN_OR_EQUAL_TO, None, (1,)),
        RacpRequest(OP.REPORT_STORED_RECORDS, OPR.GREATER_THAN_OR_EQUAL_TO, SEQ, (0x10000,)),
        RacpRequest(OP.REPORT_STORED_RECORDS, OPR.WITHIN_RANGE_OF, SEQ, (5, 4)),
    ],
)
def test_encoding_an_invalid_request_raises(request_: RacpRequest) -> None:
    with pytest.raises(ValueError):
        encode_racp_request(request_)


# -- responses ------------------------------------------------------------------


def test_number_of_records_response() -> None:
    # Op Code 0x05, Operator 0x00 null, uint16 count 263.
    assert resp("05" "00" "0701") == NumberOfRecords(count=263)
    assert encode_racp_response(NumberOfRecords(263)) == bytes.fromhex("0500" "0701")


@pytest.mark.parametrize("value", list(ResponseCodeValue))
def test_each_response_code_value(value: ResponseCodeValue) -> None:
    # Op Code 0x06, Operator 0x00, Request Op Code 0x01, Response Code Value.
    payload = bytes([0x06, 0x00, 0x01, value])
    assert decode_racp_response(payload) == ResponseCode(OP.REPORT_STORED_RECORDS, value)
    assert encode_racp_response(ResponseCode(OP.REPORT_STORED_RECORDS, value)) == payload


def test_response_golden_values() -> None:
    assert resp("06" "00" "01" "01") == ResponseCode(request_op_code=OP.REPORT_STORED_RECORDS, response=ResponseCodeValue.SUCCESS)
    assert resp("06" "00" "01" "06") == ResponseCode(OP.REPORT_STORED_RECORDS, ResponseCodeValue.NO_RECORDS_FOUND)
    assert resp("06" "00" "03" "07") == ResponseCode(OP.ABORT_OPERATION, ResponseCodeValue.ABORT_UNSUCCESSFUL)


def test_response_trailing_bytes_are_ignored() -> None:
    assert resp("0500" "0100" "ff") == NumberOfRecords(1)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("", "op_code"),
        ("00" "00", "op_code"),
        ("09" "00", "op_code"),
        ("01" "01", "op_code"),  # a request is not a response
        ("04" "01", "op_code"),
        ("05", "operator"),
        ("05" "01" "0100", "operator"),  # responses use the null operator
        ("05" "07" "0100", "operator"),
        ("05" "00", "number_of_records"),
        ("05" "00" "01", "number_of_records"),
        ("06" "00", "request_op_code"),
        ("06" "00" "00" "01", "request_op_code"),  # reserved op code echoed
        ("06" "00" "01", "response_code_value"),
        ("06" "00" "01" "00", "response_code_value"),  # reserved
        ("06" "00" "01" "0a", "response_code_value"),  # reserved 10-255
    ],
)
def test_bad_responses_name_the_field(payload: str, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        resp(payload)
    assert (info.value.characteristic, info.value.field) == ("2a52", field)


def test_encode_number_of_records_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_racp_response(NumberOfRecords(0x10000))


# -- JSON -----------------------------------------------------------------------


def test_json_dicts() -> None:
    assert to_json_dict(req("0103012b00")) == {
        "op_code": "report_stored_records",
        "operator": "greater_than_or_equal_to",
        "filter_type": "sequence_number",
        "operand": [43],
    }
    assert to_json_dict(req("0101")) == {
        "op_code": "report_stored_records",
        "operator": "all_records",
        "filter_type": None,
        "operand": [],
    }
    assert to_json_dict(NumberOfRecords(5)) == {"op_code": "number_of_stored_records_response", "number_of_records": 5}
    assert to_json_dict(ResponseCode(OP.DELETE_STORED_RECORDS, ResponseCodeValue.OPERATOR_NOT_SUPPORTED)) == {
        "op_code": "response_code",
        "request_op_code": "delete_stored_records",
        "response_code_value": "operator_not_supported",
    }
    with pytest.raises(TypeError):
        to_json_dict(object())  # type: ignore[arg-type]


# -- properties -------------------------------------------------------------------

_seq = st.integers(min_value=0, max_value=0xFFFF)
_REQUEST_OPS = [OP.REPORT_STORED_RECORDS, OP.DELETE_STORED_RECORDS, OP.ABORT_OPERATION, OP.REPORT_NUMBER_OF_STORED_RECORDS]


@st.composite
def requests(draw: st.DrawFn) -> RacpRequest:
    op_code = draw(st.sampled_from(_REQUEST_OPS))
    if op_code is OP.ABORT_OPERATION:
        return RacpRequest(op_code, OPR.NULL)
    operator = draw(st.sampled_from([o for o in RacpOperator if o is not OPR.NULL]))
    if operator in (OPR.LESS_THAN_OR_EQUAL_TO, OPR.GREATER_THAN_OR_EQUAL_TO):
        return RacpRequest(op_code, operator, SEQ, (draw(_seq),))
    if operator is OPR.WITHIN_RANGE_OF:
        low, high = sorted((draw(_seq), draw(_seq)))
        return RacpRequest(op_code, operator, SEQ, (low, high))
    return RacpRequest(op_code, operator)


_responses = st.one_of(
    st.builds(NumberOfRecords, _seq),
    st.builds(ResponseCode, st.sampled_from(RacpOpCode), st.sampled_from(ResponseCodeValue)),
)


@given(requests())
def test_request_round_trip(request_: RacpRequest) -> None:
    assert decode_racp_request(encode_racp_request(request_)) == request_


@given(_responses)
def test_response_round_trip(response: NumberOfRecords | ResponseCode) -> None:
    assert decode_racp_response(encode_racp_response(response)) == response


@given(_seq.filter(lambda s: s < 0xFFFF))
def test_report_records_after_decodes_to_next_sequence_number(sequence_number: int) -> None:
    assert decode_racp_request(report_records_after(sequence_number)) == RacpRequest(
        OP.REPORT_STORED_RECORDS, OPR.GREATER_THAN_OR_EQUAL_TO, SEQ, (sequence_number + 1,)
    )


@given(st.binary(max_size=12))
def test_arbitrary_bytes_only_raise_decode_error(data: bytes) -> None:
    for decode in (decode_racp_request, decode_racp_response):
        try:
            message = decode(data)
        except DecodeError as exc:
            assert exc.characteristic == "2a52"
            assert exc.field
        else:
            json.dumps(to_json_dict(message))
