"""The start transaction, enumerated: points are taken once, and only for a machine that started."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.laundry.vend import TRANSITIONS, Effect, IllegalVendTransition, VendEvent, VendState, next_state


@pytest.mark.parametrize(("state", "event"), list(itertools.product(VendState, VendEvent)))
def test_every_pair_is_either_in_the_table_or_refused(state: VendState, event: VendEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) == TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalVendTransition, match=f"{event} is not allowed in state {state}"):
            next_state(state, event)


def test_the_only_charge_is_the_machine_confirming_a_start() -> None:
    charging = [pair for pair, t in TRANSITIONS.items() if t.effect is Effect.CHARGE]
    assert charging == [(VendState.STARTING, VendEvent.CONFIRMED)]


def test_every_effect_is_used_and_the_only_refund_is_an_early_fault_of_a_charged_wash() -> None:
    assert {t.effect for t in TRANSITIONS.values()} == set(Effect)
    refunding = [pair for pair, t in TRANSITIONS.items() if t.effect is Effect.REFUND]
    assert refunding == [(VendState.IN_USE, VendEvent.EARLY_FAULT)]
    # Told to the cloud as the fault it is: the laundry is inside either way.
    assert TRANSITIONS[(VendState.IN_USE, VendEvent.EARLY_FAULT)].tells == "faulted"


def test_a_start_whose_reply_was_lost_is_read_back_not_resent_nor_charged() -> None:
    lost = next_state(VendState.STARTING, VendEvent.NO_REPLY)
    # Stays STARTING with no effect: the read back is the agent's next status read
    # (tests/laundry/test_laundry_room.py, a lost start reply is read back).
    assert (lost.to, lost.effect) == (VendState.STARTING, Effect.NONE)
    with pytest.raises(IllegalVendTransition):
        next_state(VendState.STARTING, VendEvent.SEND_START)  # never a second start command


def test_every_state_can_return_to_available() -> None:
    reachable = {VendState.AVAILABLE}
    frontier = [VendState.AVAILABLE]
    while frontier:
        state = frontier.pop()
        for (source, _event), transition in TRANSITIONS.items():
            if source is state and transition.to not in reachable:
                reachable.add(transition.to)
                frontier.append(transition.to)
    assert reachable == set(VendState)
    for state in VendState:
        assert any(t.to is VendState.AVAILABLE for (s, _), t in TRANSITIONS.items() if s is state) or state in {
            VendState.AVAILABLE,
            VendState.IN_USE,  # leaves through AWAITING_PICKUP
        }


@given(st.lists(st.sampled_from(list(VendEvent)), max_size=40))
def test_any_sequence_of_events_charges_at_most_once_per_start(events: list[VendEvent]) -> None:
    state, charges, starts, refunds = VendState.AVAILABLE, 0, 0, 0
    for event in events:
        try:
            transition = next_state(state, event)
        except IllegalVendTransition:
            continue
        if event is VendEvent.SEND_START:
            starts += 1
        if transition.effect is Effect.CHARGE:
            charges += 1
            assert state is VendState.STARTING
        if transition.effect is Effect.REFUND:
            refunds += 1
            assert state is VendState.IN_USE  # only a wash that was charged for
        state = transition.to
    assert refunds <= charges <= starts
