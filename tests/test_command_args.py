"""The kiosk checks a command's arguments with the contract's models (COMMAND_ARGS), as the bridge
does before it sends one: every set of arguments the bridge sends is accepted as it was when the
kiosk checked them by hand, what the hand checks refused is still refused, and what the kiosk
refuses now and did not before is what the bridge never sends (it refuses it first).

The kiosk here runs the real runner and handlers over a real outbox. It has no laundry room and
no devices, so a command whose arguments pass reaches its handler and is refused for that, in
the handler's words; a command whose arguments do not pass is refused with "args.<field>"."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud_bridge.commands import CommandArgsError, check_args
from contract.commands import CommandName, CommandOutcome
from contract.telemetry import KioskTelemetry
from contract.topics import KioskTopics
from edge_agent.kiosk_commands import kiosk_handlers
from edge_agent.remote import Answer, RemoteCommands
from edge_agent.status_file import JobState
from edge_agent.store.outbox import Outbox
from edge_agent.uplink import ReceivedCommand

SUBJECT = "0123456789abcdef" * 4  # a resident's pseudonym: 64 hex digits
NO_LAUNDRY = "this kiosk has no laundry room, or its line is not open"


class KioskWithNothing:
    """A RunningKiosk with no laundry room and no devices."""

    settings: Any = None
    laundry = None
    outbox = None
    uplink = None
    remote = None

    def __init__(self) -> None:
        self.restarted: list[str] = []

    async def snapshot(self) -> KioskTelemetry:
        raise AssertionError("not asked for here")

    def job_states(self) -> list[JobState]:
        return []

    def check_new_config(self) -> list[str]:
        return ["not started from a file"]

    def request_reload(self) -> None:
        raise AssertionError("not asked for here")

    def restart_device(self, address: str) -> bool:
        self.restarted.append(address)
        return False


async def answer(tmp_path: Path, command: CommandName, args: dict[str, Any]) -> tuple[Answer, KioskWithNothing]:
    kiosk = KioskWithNothing()
    runner = RemoteCommands(Outbox(tmp_path / "outbox.sqlite3"), KioskTopics("site-a", "kiosk-1"), kiosk_handlers(kiosk),
                            timeout_s=5)
    body = {"command": command, "args": args, "issued_by": "tech", "issued_at": datetime.now(UTC).isoformat()}
    received = await runner.handle(ReceivedCommand("request-1", json.dumps(body).encode()))
    assert received is not None
    return received, kiosk


# What the bridge sends (its check_args gives them back unchanged), and what the kiosk's handler
# then answers: the arguments were accepted.
SENT_BY_THE_BRIDGE = [
    (CommandName.PING, {}, CommandOutcome.SUCCEEDED, "pong"),
    (CommandName.RELOAD_CONFIG, {}, CommandOutcome.REFUSED,
     "the configuration file has problems; the running one is kept:\nnot started from a file"),
    (CommandName.RECONNECT_DEVICE, {"address": "AA:BB:CC:DD:EE:FF"}, CommandOutcome.REFUSED,
     "no device 'AA:BB:CC:DD:EE:FF' at this kiosk"),
    (CommandName.RECONNECT_DEVICE, {"address": "a" * 64}, CommandOutcome.REFUSED, f"no device '{'a' * 64}' at this kiosk"),
    (CommandName.RECONNECT_DEVICE, {"address": " "}, CommandOutcome.REFUSED, "no device ' ' at this kiosk"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": SUBJECT}, CommandOutcome.REFUSED, NO_LAUNDRY),
    (CommandName.LAUNDRY_START, {"unit": 1, "program": 0, "subject": SUBJECT}, CommandOutcome.REFUSED, NO_LAUNDRY),
    (CommandName.LAUNDRY_START, {"unit": 247, "program": 65535, "subject": SUBJECT}, CommandOutcome.REFUSED, NO_LAUNDRY),
    (CommandName.LAUNDRY_STOP, {"unit": 3}, CommandOutcome.REFUSED, NO_LAUNDRY),
    (CommandName.LAUNDRY_CLEAR_FAULT, {"unit": 7}, CommandOutcome.REFUSED, NO_LAUNDRY),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("command", "args", "outcome", "detail"), SENT_BY_THE_BRIDGE)
async def test_what_the_bridge_sends_reaches_the_handler(
    tmp_path: Path, command: CommandName, args: dict[str, Any], outcome: CommandOutcome, detail: str
) -> None:
    assert check_args(command, args) == args
    got, kiosk = await answer(tmp_path, command, args)
    assert (got.outcome, got.detail) == (outcome, detail)
    if command is CommandName.RECONNECT_DEVICE:
        assert kiosk.restarted == [args["address"]]


# What the kiosk's own checks refused before the contract's models did, by the field named.
REFUSED_AS_BEFORE = [
    (CommandName.RECONNECT_DEVICE, {}, "address"),
    (CommandName.RECONNECT_DEVICE, {"address": ""}, "address"),
    (CommandName.RECONNECT_DEVICE, {"address": 5}, "address"),
    (CommandName.RECONNECT_DEVICE, {"address": None}, "address"),
    (CommandName.RECONNECT_DEVICE, {"address": ["a"]}, "address"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2}, "subject"),
    (CommandName.LAUNDRY_START, {"unit": 3, "subject": SUBJECT}, "program"),
    (CommandName.LAUNDRY_START, {"program": 2, "subject": SUBJECT}, "unit"),
    (CommandName.LAUNDRY_START, {"unit": "3", "program": 2, "subject": SUBJECT}, "unit"),
    (CommandName.LAUNDRY_START, {"unit": 3.0, "program": 2, "subject": SUBJECT}, "unit"),
    (CommandName.LAUNDRY_START, {"unit": True, "program": 2, "subject": SUBJECT}, "unit"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": "2", "subject": SUBJECT}, "program"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": False, "subject": SUBJECT}, "program"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": None, "subject": SUBJECT}, "program"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": SUBJECT.upper()}, "subject"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": SUBJECT[:-1]}, "subject"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": SUBJECT + "0"}, "subject"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": ""}, "subject"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": 5}, "subject"),
    (CommandName.LAUNDRY_STOP, {}, "unit"),
    (CommandName.LAUNDRY_STOP, {"unit": "3"}, "unit"),
    (CommandName.LAUNDRY_STOP, {"unit": True}, "unit"),
    (CommandName.LAUNDRY_STOP, {"unit": 3.5}, "unit"),
    (CommandName.LAUNDRY_CLEAR_FAULT, {"unit": None}, "unit"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("command", "args", "field"), REFUSED_AS_BEFORE)
async def test_what_the_kiosk_refused_it_still_refuses(
    tmp_path: Path, command: CommandName, args: dict[str, Any], field: str
) -> None:
    got, kiosk = await answer(tmp_path, command, args)
    assert got.outcome is CommandOutcome.REFUSED
    assert got.detail is not None and got.detail.startswith(f"args.{field}: ")
    assert kiosk.restarted == []


# Refused by the kiosk now, and not by its hand checks before: out of the contract's bounds, an
# argument the command does not take, a pseudonym with a line break after it (a `$` in Python's
# re matches before a final newline). The bridge refuses each before it is sent, so no command
# the bridge sends has another fate than before.
REFUSED_BY_THE_BRIDGE_FIRST = [
    (CommandName.PING, {"x": 1}, "x"),
    (CommandName.RELOAD_CONFIG, {"x": 1}, "x"),
    (CommandName.RECONNECT_DEVICE, {"address": "a" * 65}, "address"),
    (CommandName.RECONNECT_DEVICE, {"address": "AA", "x": 1}, "x"),
    (CommandName.LAUNDRY_START, {"unit": 0, "program": 2, "subject": SUBJECT}, "unit"),
    (CommandName.LAUNDRY_START, {"unit": 248, "program": 2, "subject": SUBJECT}, "unit"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": -1, "subject": SUBJECT}, "program"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 65536, "subject": SUBJECT}, "program"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": SUBJECT + "\n"}, "subject"),
    (CommandName.LAUNDRY_START, {"unit": 3, "program": 2, "subject": SUBJECT, "x": 1}, "x"),
    (CommandName.LAUNDRY_STOP, {"unit": 0}, "unit"),
    (CommandName.LAUNDRY_STOP, {"unit": 3, "x": 1}, "x"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("command", "args", "field"), REFUSED_BY_THE_BRIDGE_FIRST)
async def test_what_the_kiosk_refuses_now_the_bridge_never_sends(
    tmp_path: Path, command: CommandName, args: dict[str, Any], field: str
) -> None:
    with pytest.raises(CommandArgsError, match=f"^args.{field}: "):
        check_args(command, args)
    got, _ = await answer(tmp_path, command, args)
    assert got.outcome is CommandOutcome.REFUSED
    assert got.detail is not None and got.detail.startswith(f"args.{field}: ")
