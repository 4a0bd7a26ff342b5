"""Decoding goldens per profile: a whole status block to a whole normalised status."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.laundry.status import MachineStatus, StatusDecodeError, decode_status
from firmware_configs.laundry import LocalizedText, MachineState, load_laundry_profiles

PROFILES = load_laundry_profiles()
WASHER = PROFILES["washer-retrofit-a"]
DRYER = PROFILES["dryer-retrofit-b"]


def test_a_running_washer() -> None:
    registers = [
        2,  # 0 state: running
        3,  # 1 phase: rinse
        1,  # 2 program 1
        0x0000, 0x04B0,  # 3-4 remaining 1200 s, high word first
        0b11,  # 5 door closed and locked
        0,  # 6 no error
        5,  # 7 credit
        0x0001, 0x0002,  # 8-9 cycle count 65538, high word first
        812,  # 10 heartbeat
        41, 0,  # 11-12 command 41 done
        0x5631, 0x2E32, 0x0000,  # 13-15 firmware "V1.2"
    ]
    assert decode_status(WASHER, registers) == MachineStatus(
        state=MachineState.RUNNING,
        phase="rinse",
        program=1,
        remaining_seconds=1200,
        door_closed=True,
        door_locked=True,
        error_code=None,
        error_text=None,
        credit=5,
        cycle_count=65538,
        heartbeat=812,
        command_echo_sequence=41,
        command_echo_result=0,
        firmware="V1.2",
    )


def test_a_faulted_dryer_of_the_other_layout() -> None:
    registers = [
        77,  # 100 heartbeat
        8,  # 101 state: fault
        10,  # 102 program 10
        600,  # 103 remaining 600 s, one register
        0b1000,  # 104 door closed (bit 3)
        3,  # 105 error 3: lint filter
        0x0002, 0x0001,  # 106-107 cycle count 65538, low word first
        9, 0,  # 108-109 command 9 done
        0,  # 110 credit
        0,  # 111 unused
    ]
    assert decode_status(DRYER, registers) == MachineStatus(
        state=MachineState.FAULT,
        phase=None,
        program=10,
        remaining_seconds=600,
        door_closed=True,
        door_locked=None,
        error_code=3,
        error_text=LocalizedText(zh="滤网堵塞，请清理滤网", en="Lint filter blocked - clean the filter"),
        credit=0,
        cycle_count=65538,
        heartbeat=77,
        command_echo_sequence=9,
        command_echo_result=0,
        firmware=None,
    )


def test_an_error_code_missing_from_the_map_is_still_reported() -> None:
    registers = [0] * 16
    registers[0], registers[6] = 5, 99
    status = decode_status(WASHER, registers)
    assert (status.state, status.error_code, status.error_text) == (MachineState.FAULT, 99, None)


@pytest.mark.parametrize(
    ("registers", "problem"),
    [
        ([0] * 15, "status_block: expected 16 registers, got 15"),
        ([9] + [0] * 15, "state: unknown state code 9"),
        ([0, 9] + [0] * 14, "phase: unknown phase code 9"),
        ([0] * 15 + [70000], "outside 0..65535"),
    ],
)
def test_registers_that_break_the_map_are_a_typed_error(registers: list[int], problem: str) -> None:
    with pytest.raises(StatusDecodeError, match=problem):
        decode_status(WASHER, registers)


@given(st.sampled_from(sorted(PROFILES)), st.lists(st.integers(0, 0xFFFF), max_size=20))
def test_no_registers_make_the_decoder_raise_anything_but_its_typed_error(model: str, registers: list[int]) -> None:
    try:
        decode_status(PROFILES[model], registers)
    except StatusDecodeError:
        pass


@st.composite
def status_blocks(draw: st.DrawFn) -> tuple[str, list[int]]:
    """A block of the right length for its map, so decoding goes past the length check: its
    state and phase registers mostly codes the map knows (to reach every later field), every
    other register anything a controller could send, and now and then a value no 16-bit
    register holds (a driver bug must still be the typed error, not an IndexError or a crash)."""
    model = draw(st.sampled_from(sorted(PROFILES)))
    profile = PROFILES[model]
    block = profile.status_block
    registers = draw(st.lists(st.integers(0, 0xFFFF), min_size=block.count, max_size=block.count))
    fields = profile.fields
    if draw(st.booleans()):
        registers[fields.state.address - block.start] = draw(st.sampled_from(sorted(profile.states)))
        if fields.phase is not None and profile.phases:
            registers[fields.phase.address - block.start] = draw(st.sampled_from(sorted(profile.phases)))
    if draw(st.integers(0, 9)) == 0:
        registers[draw(st.integers(0, block.count - 1))] = draw(st.sampled_from([-1, 0x10000, 2**63]))
    return model, registers


@settings(max_examples=500)
@given(status_blocks())
def test_a_block_of_the_right_length_decodes_or_is_the_typed_error_never_anything_else(case: tuple[str, list[int]]) -> None:
    model, registers = case
    try:
        status = decode_status(PROFILES[model], registers)
    except StatusDecodeError as error:
        assert error.model == model and error.field and error.reason
        return
    # What decodes is what the rest of the kiosk expects: registers' ranges, text that is text.
    assert status.state in set(PROFILES[model].states.values())
    assert status.remaining_seconds is None or 0 <= status.remaining_seconds <= 0xFFFF_FFFF
    assert status.firmware is None or status.firmware.isprintable()  # U+FFFD for what is not printable ASCII
    assert 0 <= status.heartbeat <= 0xFFFF
