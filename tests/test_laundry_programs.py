"""A room's own programs and prices over its register maps (laundry.programs): refused with
file-field-problem lines when they cannot be, and followed by the screen's list, the start's
check and the ledger's charge when they can (docs/laundry.md, "Programs and prices")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from doorstep.cli import app
from edge_agent.settings import LaundrySettings
from firmware_configs.laundry import load_laundry_profiles
from kiosk_config.fleet import fleet_problems
from kiosk_config.sections import LaundryRoomSettings
from tests.kiosk_support import ROOM, acall
from tests.support import running_agent
from tests.test_kiosk_laundry_api import CARD, FAST, by_unit, laundry_kiosk, open_account, room_read

WASHER = load_laundry_profiles()["washer-retrofit-a"]  # programs 1 (5 points), 2 (3), 3 (6)
runner = CliRunner()


def test_a_room_sells_the_maps_programs_at_its_own_prices_and_leaves_out_those_withdrawn() -> None:
    room = LaundryRoomSettings(machines={1: "washer-retrofit-a"},
                               programs={"washer-retrofit-a": {1: {"price_points": 2}, 3: {"offered": False}}})
    assert [(p.code, p.price_points) for p in room.offered(WASHER)] == [(1, 2), (2, 3)]
    # The map's own program, name and duration kept: only the price is the room's.
    assert room.offered(WASHER)[0] == WASHER.programs[0].model_copy(update={"price_points": 2})
    assert LaundryRoomSettings(machines={1: "washer-retrofit-a"}).offered(WASHER) == tuple(WASHER.programs)


def test_programs_that_cannot_be_sold_are_refused_field_by_field_from_the_fleet() -> None:
    problems = fleet_problems({"laundry": {"machines": {"1": "washer-retrofit-a"}, "programs": {
        "washer-9000": {1: {"price_points": 1}},
        "washer-retrofit-a": {9: {"price_points": 1}, 1: {"offered": False}, 2: {"offered": False},
                              3: {"offered": False}},
    }}}, "site s")
    assert problems == [
        "site s: laundry.programs: washer-9000: no register map 'washer-9000' in firmware_configs/laundry/; "
        "known: dryer-retrofit-b, washer-retrofit-a",
        "site s: laundry.programs: washer-retrofit-a: program 9: washer-retrofit-a has no such program; "
        "its programs: 1, 2, 3",
        "site s: laundry.programs: washer-retrofit-a: every program withdrawn: its machines could not be sold",
    ]
    assert fleet_problems({"laundry": {"machines": {"1": "washer-retrofit-a"}, "programs": {
        "dryer-retrofit-b": {10: {"price_points": -1, "price": 2}}}}}, "site s") == [
        "site s: laundry.programs.dryer-retrofit-b.10.price_points: Input should be greater than or equal to 0",
        "site s: laundry.programs.dryer-retrofit-b.10.price: Extra inputs are not permitted",
    ]


def test_config_validate_refuses_a_negative_price_in_a_kiosks_file(tmp_path: Path) -> None:
    bad = tmp_path / "agent.yaml"
    bad.write_text("site: s\nkiosk: k\nlaundry:\n  port: /dev/ttyUSB0\n  machines: {1: washer-retrofit-a}\n"
                   "  programs: {washer-retrofit-a: {2: {price_points: -3}}}\n")
    result = runner.invoke(app, ["config", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: laundry.programs.washer-retrofit-a.2.price_points: Input should be greater than or equal to 0" \
        in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text("site: s\nkiosk: k\nlaundry:\n  port: /dev/ttyUSB0\n  machines: {1: washer-retrofit-a}\n"
                    "  programs: {washer-retrofit-a: {2: {price_points: 0}, 3: {offered: false}}}\n")
    assert runner.invoke(app, ["config", "validate", str(good)]).exit_code == 0


@pytest.mark.asyncio
async def test_the_screen_lists_and_charges_the_rooms_price_and_refuses_a_withdrawn_program(
    tmp_path: Path, broker: Any
) -> None:
    settings = laundry_kiosk(tmp_path, broker)
    settings = settings.model_copy(update={"laundry": LaundrySettings(
        port="simulated", machines=ROOM, poll=FAST,
        programs={"washer-retrofit-a": {1: {"price_points": 2}, 3: {"offered": False}}})})
    async with running_agent(settings) as agent:
        url, room, sim = await room_read(agent)
        listed = by_unit((await acall(url, "GET", "/api/laundry")).body)
        assert [(p["code"], p["price_points"]) for p in listed[2]["programs"]] == [(1, 2), (2, 3)]
        assert [(p["code"], p["price_points"]) for p in listed[8]["programs"]] == [(10, 4), (11, 4)]  # untouched
        await open_account(url, CARD, balance=20)
        withdrawn = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": 2, "program": 3})
        assert withdrawn.body == {"outcome": "refused", "reason": "program_not_offered", "points_charged": 0,
                                  "balance": 20}
        assert sim.machines[2].executed == []
        started = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": 2, "program": 1})
        assert started.body == {"outcome": "started", "reason": None, "points_charged": 2, "balance": 18}
        assert [c.points for c in room.ledger.charges()] == [2]
