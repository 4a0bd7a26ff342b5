"""The alarms message (contract/alarms.py): a kiosk's current conditions, as the bridge takes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contract.alarms import Alarm, AlarmCondition, Alarms, decode_alarms
from contract.codec import MAX_MESSAGE_BYTES, encode
from contract.errors import ContractError
from contract.topics import Channel, KioskTopics, parse_topic

AT = datetime(2026, 11, 25, 9, 5, tzinfo=UTC)


def test_the_set_goes_and_comes_back_the_same_and_names_its_conditions() -> None:
    alarms = Alarms(at=AT, alarms=[Alarm(condition=AlarmCondition.DISK_FULL, since=AT, message="0 bytes free"),
                                   Alarm(condition=AlarmCondition.CANNOT_SAVE, since=AT, message="disk full")])
    assert decode_alarms(encode(alarms)) == alarms
    assert alarms.conditions == {AlarmCondition.DISK_FULL, AlarmCondition.CANNOT_SAVE}
    assert decode_alarms(b'{"at": "2026-11-25T09:05:00Z", "alarms": []}').conditions == frozenset()


@pytest.mark.parametrize("body", [
    b'{"at": "2026-11-25T09:05:00Z", "alarms": [{"condition": "on_fire", "since": "2026-11-25T09:00:00Z", "message": ""}]}',
    b'{"at": "2026-11-25T09:05:00Z", "alarms": [' + b", ".join(
        [b'{"condition": "disk_full", "since": "2026-11-25T09:00:00Z", "message": "x"}'] * 2) + b"]}",
    b'{"at": "2026-11-25T09:05:00", "alarms": []}',  # a time without its zone
    b'{"alarms": []}',
    b'{"at": "2026-11-25T09:05:00Z", "alarms": [], "extra": 1}',
    b"not json",
    b" " * (MAX_MESSAGE_BYTES + 1),
])
def test_anything_else_breaks_the_contract(body: bytes) -> None:
    with pytest.raises(ContractError):
        decode_alarms(body)


def test_the_topic_is_a_kiosk_channel_of_the_tree() -> None:
    topics = KioskTopics("pudong-lujiazui", "kiosk-07")
    assert topics.alarms == "doorstep/v1/pudong-lujiazui/kiosk-07/alarms"
    assert parse_topic(topics.alarms).channel is Channel.ALARMS
    with pytest.raises(ContractError):
        parse_topic(topics.alarms + "/more")
