"""Omron's own protocol, the pure part: frames, records per model layout, read pointer, clock,
advertisement. Goldens are public captures (source named at each) or worked by hand."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit, MeasurementStatus
from drivers.ble.errors import DecodeError
from drivers.ble.omron import frames, memory
from drivers.ble.omron.advertisement import OmronAdvertisement, decode_omron_advertisement
from drivers.ble.omron.records import decode_record, encode_record
from firmware_configs.omron_memory import OmronMemory
from firmware_configs.profiles import load_ble_profiles

PROFILES = load_ble_profiles()


def memory_map(model: str) -> OmronMemory:
    found = PROFILES[model].omron_memory
    assert found is not None
    return found


HEM_7142T2 = memory_map("hem-7142t2")
HEM_7361T = memory_map("hem-7361t")


def bp(sys: int, dia: int, pulse: int, when: datetime, *status: MeasurementStatus, user: int | None = None
       ) -> BloodPressureMeasurement:
    return BloodPressureMeasurement(unit=BloodPressureUnit.MMHG, systolic=float(sys), diastolic=float(dia),
                                    mean_arterial_pressure=None, timestamp=when, pulse_rate=float(pulse),
                                    user_id=user, status=status)


@pytest.mark.parametrize(("hex_record", "expected"), [
    # eigger/hass-omron tests/test_record_parsers.py (d6758ed): a real HEM-7142T2's slots 13 and 7.
    ("6558541a331ade1800004c00ba00", bp(126, 88, 84, datetime(2026, 6, 17, 19, 35, 30))),
    ("6457431a7316161c000046001900", bp(125, 87, 67, datetime(2026, 5, 19, 19, 48, 22))),
    # userx14/omblepy issue #39 (HEM-7140T1, same family), first record at 0x02e8, worked by hand:
    # 0x58+25, 0x4e, 0x44, 2000+0x19; word 0x0dac = hour 12, day 13, month 3; 0x161e = 24 min 30 s.
    ("584e4419ac0d1e16000014000400", bp(113, 78, 68, datetime(2025, 3, 13, 12, 24, 30))),
    # Hand-made: word 0xda33 sets body movement (bit 15) and irregular heartbeat (bit 14).
    ("6558541a33dade1800004c00ba00", bp(126, 88, 84, datetime(2026, 6, 17, 19, 35, 30),
                                        MeasurementStatus.BODY_MOVEMENT, MeasurementStatus.IRREGULAR_PULSE)),
])
def test_hem_7142t2_records_decode_whole(hex_record: str, expected: BloodPressureMeasurement) -> None:
    assert decode_record(bytes.fromhex(hex_record), HEM_7142T2.record) == expected


def test_hem_7361t_record_by_omblepys_bits_worked_by_hand() -> None:
    # omblepy deviceSpecific/hem-7361t.py: 128-bit little-endian; sys = byte 0 + 25, dia byte 1,
    # pulse byte 2, year byte 3 (low 6 bits), word at 4 = flags/month/day/hour, word at 6 = min/s.
    record = bytes.fromhex("6e5a481a" + (0x8000 | 12 << 10 | 24 << 5 | 7).to_bytes(2, "little").hex()
                           + (5 << 6 | 9).to_bytes(2, "little").hex() + "00" * 8)
    assert decode_record(record, HEM_7361T.record, user_id=2) == bp(
        135, 90, 72, datetime(2026, 12, 24, 7, 5, 9), MeasurementStatus.BODY_MOVEMENT, user=2)


@pytest.mark.parametrize(("hex_record", "problem"), [
    ("6558541a331ade18", "field 'record' is 8 bytes; this model's records are 14"),
    ("ff" * 14, "empty slot"),
    ("6558541a3300de1800004c00ba00", "field 'timestamp' is not a date"),  # month 0
])
def test_a_record_that_does_not_fit_is_a_decode_error(hex_record: str, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        decode_record(bytes.fromhex(hex_record), HEM_7142T2.record)


readings = st.builds(
    bp, st.integers(25, 280), st.integers(0, 255), st.integers(0, 255),
    st.datetimes(datetime(2000, 1, 1), datetime(2063, 12, 31)).map(lambda t: t.replace(microsecond=0)),
)


@settings(max_examples=200)
@given(readings, st.sampled_from(["hem-7142t2", "hem-7361t"]))
def test_records_round_trip(reading: BloodPressureMeasurement, model: str) -> None:
    layout = memory_map(model).record
    assert decode_record(encode_record(reading, layout), layout) == reading


@settings(max_examples=300)
@given(st.binary(max_size=40), st.sampled_from(["hem-7142t2", "hem-7361t"]))
def test_fuzzed_records_decode_or_raise_decode_error_only(data: bytes, model: str) -> None:
    try:
        decode_record(data, PROFILES[model].omron_memory.record)  # type: ignore[union-attr]
    except DecodeError:
        pass


# -- frames --

def test_commands_are_omblepys_bytes() -> None:
    # omblepy issue #39's log: "08 0100 0260 2c 0047" (read 0x2c bytes at 0x0260).
    assert frames.read_command(0x0260, 0x2C) == bytes.fromhex("0801000260 2c0047")
    assert frames.checksum(frames.START_TRANSMISSION) == frames.checksum(frames.END_TRANSMISSION) == 0
    write = frames.write_command(0x02A4, b"\x00\x80")
    assert write[:6] == bytes.fromhex("0a01c002a402") and frames.checksum(write) == 0


def test_a_captured_read_answer_decodes() -> None:
    # omblepy issue #39: the cuff's answer to the read of 0x18 bytes at 0x028c (its clock block).
    data = bytes.fromhex("c8a800000000000019030e0e0b10c3000000000000000000")
    answer = frames.read_response(0x028C, data)
    assert answer[:6] == bytes.fromhex("208100028c18")
    assert frames.decode_response(answer) == frames.Response(frames.ResponseType.READ, 0x028C, data)
    assert memory.decode_clock(data[:16], HEM_7142T2.clock) == datetime(2025, 3, 14, 14, 11, 16)


@pytest.mark.parametrize(("frame", "problem"), [
    (frames.read_response(0x02E8, bytes(14))[:-1] + b"\x01", "field 'checksum'"),
    (bytes.fromhex("0a81000260") + b"\x04" + b"\x00\x00" + b"\x00" + b"\x00", "short block"),
    (bytes.fromhex("10810002e8"), "shorter than an empty frame"),
    (bytes.fromhex("0a81000260020000"), "promises 10 bytes, 8 arrived"),
])
def test_a_bad_answer_is_a_decode_error(frame: bytes, problem: str) -> None:
    if problem == "short block":
        frame = frame[:-1] + bytes([frames.checksum(frame[:-1])])
    with pytest.raises(DecodeError, match=problem):
        frames.decode_response(frame)


@settings(max_examples=300)
@given(st.binary(max_size=60))
def test_fuzzed_answers_decode_or_raise_decode_error_only(data: bytes) -> None:
    try:
        frames.decode_response(data)
    except DecodeError:
        pass


def test_four_channel_pieces_reassemble() -> None:
    frame = frames.read_response(0x0098, bytes(range(0x10)) * 2)
    assembler = frames.FrameAssembler(4)
    pieces = frames.pieces(frame)
    assert len(pieces) == 3
    assert [assembler.feed(i, p) for i, p in enumerate(pieces)] == [None, None, frame]


# -- pointer and clock --

def test_the_read_pointer_gives_the_unread_slots_oldest_first_across_the_wrap() -> None:
    region = bytearray(16)
    region[0:2] = (3).to_bytes(2, "little")  # writes slot 3 next
    region[4:6] = (5).to_bytes(2, "little")  # 5 unread: slots 12, 13, 0, 1, 2
    [user] = memory.decode_read_pointer(bytes(region), HEM_7142T2)
    assert memory.unread_slots(user, 14) == [12, 13, 0, 1, 2]
    # Two runs; the second (3 records, 42 bytes) fits one 0x2c-byte read.
    assert memory.reads_for([12, 13, 0, 1, 2], HEM_7142T2, 1) == [
        memory.Read(0x02E8 + 12 * 14, 28), memory.Read(0x02E8, 42)]
    marked = memory.pointer_marked_read(bytes(region), HEM_7142T2)
    assert marked[4:6] == b"\x00\x80" and marked[0:2] == region[0:2]
    assert memory.decode_read_pointer(marked, HEM_7142T2)[0].unread == 0


def test_a_pointer_outside_the_ring_is_a_decode_error() -> None:
    region = bytes([15, 0, 0, 0, 1, 0]) + bytes(10)
    with pytest.raises(DecodeError, match="outside a ring of 14"):
        memory.decode_read_pointer(region, HEM_7142T2)


def test_setting_the_clock_matches_the_captured_block() -> None:
    # hass-omron tests/test_eeprom_time.py: a real HEM-7142T2's clock block, 2026-06-18 14:53:09.
    captured = bytes.fromhex("c8a80000000000001a06120e3509ee00")
    assert memory.decode_clock(captured, HEM_7142T2.clock) == datetime(2026, 6, 18, 14, 53, 9)
    older = memory.clock_set_to(captured, HEM_7142T2.clock, datetime(2025, 1, 1))
    assert memory.clock_set_to(older, HEM_7142T2.clock, datetime(2026, 6, 18, 14, 53, 9)) == captured


# -- advertisement --

@pytest.mark.parametrize(("hex_data", "expected"), [
    # hass-omron parser.py: HEM-7142T2 sends format 0x01, 5 bytes; status 0x08 = pairing mode.
    ("0108000000", OmronAdvertisement(0x01, 0, True, False, False)),
    ("0145aabbcc0000", OmronAdvertisement(0x01, 1, False, True, True, ("aabbcc",))),
    ("0902" + "00" * 11, OmronAdvertisement(0x09, 2, False, False, False)),
    ("030d07", OmronAdvertisement(0x03, 1, True, True, False)),
])
def test_advertisements(hex_data: str, expected: OmronAdvertisement) -> None:
    assert decode_omron_advertisement(bytes.fromhex(hex_data)) == expected


@pytest.mark.parametrize(("hex_data", "problem"), [
    ("01", "at least a format"), ("0141aa", "1 users need 7 bytes"), ("0902" + "00" * 5, "is 13 bytes"),
    ("7700", "not a format we know"),
])
def test_bad_advertisements(hex_data: str, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        decode_omron_advertisement(bytes.fromhex(hex_data))


@settings(max_examples=300)
@given(st.binary(max_size=20))
def test_fuzzed_advertisements_decode_or_raise_decode_error_only(data: bytes) -> None:
    try:
        decode_omron_advertisement(data)
    except DecodeError:
        pass
