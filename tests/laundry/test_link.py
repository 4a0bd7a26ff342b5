"""The link rules of drivers/laundry/link.py, enumerated: every error kind, every state, every count."""

from __future__ import annotations

import itertools

import pytest

from contract.device_errors import DeviceErrorCode
from drivers.laundry.link import ERROR_CODES, ERROR_EFFECTS, ERROR_WORDS, BusError, ErrorKind, LinkEffect, LinkRules, LinkState

RULES = LinkRules(offline_after=3, backoff_initial_s=1.0, backoff_max_s=30.0)


def test_every_error_a_poll_can_end_in_has_an_effect() -> None:
    assert set(ERROR_EFFECTS) == set(ErrorKind) - {ErrorKind.NOT_CONFIRMED}
    # Only a Modbus exception is an answer: the unit is there. Everything else counts to offline.
    assert {k for k, e in ERROR_EFFECTS.items() if e is not LinkEffect.FAILED} == {ErrorKind.EXCEPTION}


@pytest.mark.parametrize(("effect", "failures"), list(itertools.product(LinkEffect, range(6))))
def test_each_effect_and_failure_count_follows_the_rules(effect: LinkEffect, failures: int) -> None:
    state, after = RULES.after(effect, failures)
    match effect:
        case LinkEffect.ANSWERED:
            assert (state, after) == (LinkState.ONLINE, 0)
        case LinkEffect.ANSWERED_WITHOUT_STATUS:
            assert (state, after) == (LinkState.DEGRADED, 0)
        case LinkEffect.FAILED:
            assert after == failures + 1
            assert state is (LinkState.OFFLINE if after >= 3 else LinkState.DEGRADED)


def test_a_run_of_failures_goes_degraded_then_offline_and_one_answer_brings_it_back() -> None:
    state, failures, seen = LinkState.ONLINE, 0, []
    for _ in range(5):
        state, failures = RULES.after(LinkEffect.FAILED, failures)
        seen.append(state)
    assert seen == [LinkState.DEGRADED, LinkState.DEGRADED, LinkState.OFFLINE, LinkState.OFFLINE, LinkState.OFFLINE]
    assert RULES.after(LinkEffect.ANSWERED, failures) == (LinkState.ONLINE, 0)


def test_backoff_doubles_from_going_offline_and_is_capped() -> None:
    assert [RULES.backoff_s(f) for f in range(3, 11)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert RULES.backoff_s(10_000) == 30  # a unit dead for days: no overflow, still capped


@pytest.mark.parametrize("bad", [dict(offline_after=0), dict(backoff_initial_s=0), dict(backoff_max_s=0.5)])
def test_rules_that_make_no_sense_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LinkRules(**bad)  # type: ignore[arg-type]


def test_every_error_kind_has_its_own_code_on_the_wire_and_words() -> None:
    assert set(ERROR_CODES) == set(ERROR_WORDS) == set(ErrorKind)
    assert len(set(ERROR_CODES.values())) == len(ErrorKind)
    assert all(code.startswith("modbus_") for code in ERROR_CODES.values())
    crc = BusError(ErrorKind.CRC, "bytes without a valid frame")
    assert crc.code is DeviceErrorCode.MODBUS_CRC
    assert crc.message == "garbled reply (CRC or framing error: wiring, termination, interference): bytes without a valid frame"
