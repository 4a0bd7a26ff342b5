"""The frame splitter and number extractor of drivers/readers/framing.py, on byte streams as
readers send them: whole frames, frames split across reads, noise, overlong runs."""

from __future__ import annotations

import pytest

from drivers.readers.framing import FrameSplitter, UnreadableFrame, number_in
from firmware_configs.readers import ReaderProfile, load_reader_profiles

PROFILES = load_reader_profiles()
RDM6300 = PROFILES["rdm6300"]
QR = PROFILES["serial-qr-scanner"]
# An RDM6300 frame: version 0x01, card 0x4A3B2C1D, checksum 01^4A^3B^2C^1D = 0x43 (data sheet's format).
CARD_FRAME = b"\x02014A3B2C1D43\x03"


def test_a_whole_frame_gives_its_number_without_the_checksum() -> None:
    splitter = FrameSplitter(RDM6300.framing)
    assert [number_in(f, RDM6300) for f in splitter.feed(CARD_FRAME)] == ["014A3B2C1D"]
    assert splitter.take_noise() == 0


def test_a_frame_split_byte_by_byte_across_reads_is_one_frame() -> None:
    splitter = FrameSplitter(RDM6300.framing)
    frames = [frame for byte in CARD_FRAME for frame in splitter.feed(bytes([byte]))]
    assert frames == [CARD_FRAME[1:-1]]


def test_noise_before_a_start_is_counted_and_dropped() -> None:
    splitter = FrameSplitter(RDM6300.framing)
    assert splitter.feed(b"\xff\x00garbage" + CARD_FRAME) == [CARD_FRAME[1:-1]]
    assert splitter.take_noise() == 9


def test_a_frame_cut_short_by_a_new_start_is_noise_and_the_new_frame_is_read() -> None:
    # A card pulled away mid-frame, then tapped again: the first frame never ended.
    splitter = FrameSplitter(RDM6300.framing)
    assert splitter.feed(b"\x02014A3B" + CARD_FRAME) == [CARD_FRAME[1:-1]]
    assert splitter.take_noise() == 6


def test_a_frame_that_does_not_match_is_unreadable_and_the_error_holds_none_of_it() -> None:
    with pytest.raises(UnreadableFrame) as caught:
        number_in(b"014A3B", RDM6300)
    assert "4A3B" not in str(caught.value)


def test_an_endless_run_without_an_end_is_dropped_and_the_next_frame_read() -> None:
    splitter = FrameSplitter(RDM6300.framing)
    assert splitter.feed(b"\x02" + b"7" * 1000) == []
    assert splitter.take_noise() >= 1000 - 40
    assert splitter.feed(CARD_FRAME) == [CARD_FRAME[1:-1]]


def test_lines_from_a_qr_scanner_each_give_their_text() -> None:
    splitter = FrameSplitter(QR.framing)
    frames = splitter.feed(b"DOORSTEP-R1:jingan-01:" + b"ab" * 32 + b"\r\nRIDER-123\r")
    assert [number_in(f, QR) for f in frames] == ["DOORSTEP-R1:jingan-01:" + "ab" * 32, "RIDER-123"]


def test_a_frame_that_is_not_ascii_is_unreadable() -> None:
    with pytest.raises(UnreadableFrame):
        number_in(b"\xc3\xa9\xff", RDM6300)


def test_a_profile_without_a_number_group_is_refused_with_its_field() -> None:
    data = RDM6300.model_dump()
    data["pattern"] = "^[0-9]+$"
    with pytest.raises(ValueError, match="(?s)pattern.*no group named 'number'"):
        ReaderProfile.model_validate(data)
