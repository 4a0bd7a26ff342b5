"""The laundry room through the kiosk screen's API, against the agent's own simulated room: what
a resident can tell before any tap, and what a failed start tells her (issue 18, item 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from drivers.laundry.bus import FROZEN_AFTER_S
from drivers.laundry.simulator import LaundryRoomSimulator
from edge_agent.laundry import LaundryRoom
from edge_agent.store.laundry_ledger import VendTransaction
from edge_agent.settings import AgentSettings, LaundrySettings, PollCadence
from tests.kiosk_support import PIN, PSEUDONYMS, ROOM, acall, kiosk_settings
from tests.support import running_agent, wait_until

CARD = "310101195801011234"
# Polled often, so that a deaf machine goes offline (3 failed reads) within a second or two.
FAST = PollCadence(tick_s=0.05, idle_s=0.3, running_s=0.3, finishing_s=0.1, finishing_within_s=600)


def laundry_kiosk(tmp_path: Path, broker: Any) -> AgentSettings:
    return kiosk_settings(tmp_path, broker, laundry=True).model_copy(
        update={"laundry": LaundrySettings(port="simulated", machines=ROOM, poll=FAST)}
    )


async def room_read(agent: Any) -> tuple[str, LaundryRoom, LaundryRoomSimulator]:
    """The screen's address, the room and its simulated machines, once every machine was read."""
    await wait_until(lambda: agent.screen is not None and agent.laundry is not None, what="the room open")
    url, room = agent.screen.url, agent.laundry
    sim = room.simulator
    assert sim is not None
    await wait_until(lambda: all(m.status is not None for m in room.machines()), what="every machine read")
    return url, room, sim


async def open_account(url: str, card: str, *, balance: int) -> None:
    opened = await acall(url, "PUT", "/api/admin/residents", {"card_number": card, "birth_year": 1958, "balance": balance},
                         headers={"x-technician-pin": PIN})
    assert opened.status == 200


def by_unit(machines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {m["unit"]: m for m in machines}


@pytest.mark.asyncio
async def test_machines_that_cannot_start_are_listed_unavailable_with_their_reason_before_any_tap(
    tmp_path: Path, broker
) -> None:
    async with running_agent(laundry_kiosk(tmp_path, broker)) as agent:
        url, room, sim = await room_read(agent)
        # The demo room: 5 has a drain fault. Now 2's door jams open, 3's controller hangs, 6 goes deaf.
        sim.door_open(2)
        sim.freeze(3)
        sim.inject(6, unresponsive=True)
        latest: dict[int, dict[str, Any]] = {}

        async def listed(unit: int, shown: str, reason: str) -> bool:
            latest.update(by_unit((await acall(url, "GET", "/api/laundry")).body))
            return (latest[unit]["shown"], latest[unit]["reason"]) == (shown, reason)

        for unit, shown, reason, within in (
            (2, "unavailable", "door_open", 5),
            (5, "fault", "machine_fault", 5),
            (6, "offline", "machine_offline", 10),
            (3, "unavailable", "machine_frozen", FROZEN_AFTER_S + 10),
        ):
            deadline = 0.0
            while not await listed(unit, shown, reason):
                deadline += 0.1
                assert deadline < within, f"unit {unit}: {latest[unit]}"
                await asyncio.sleep(0.1)
        assert latest[4]["shown"] == "done" and latest[8] == {**latest[8], "shown": "free", "reason": None}
        # The screen's words for each reason exist (the page turns a code into them).
        assert latest[5]["error"] == {"zh": "排水故障，请联系工作人员", "en": "Drain error - please call staff"}

        # Asked anyway (the list does not let her), a start of each is refused with the same reason.
        await open_account(url, CARD, balance=20)
        for unit, reason in ((2, "door_open"), (3, "machine_frozen"), (5, "machine_fault"), (6, "machine_offline")):
            started = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": unit, "program": 1})
            assert started.body == {"outcome": "refused", "reason": reason, "points_charged": 0, "balance": 20}
        assert all(sim.machines[u].executed == [] for u in (2, 3, 5, 6))


@pytest.mark.asyncio
async def test_a_start_of_a_controller_that_just_froze_is_refused_with_its_reason_code_and_no_points(
    tmp_path: Path, broker
) -> None:
    async with running_agent(laundry_kiosk(tmp_path, broker)) as agent:
        url, room, sim = await room_read(agent)
        await open_account(url, CARD, balance=20)
        # It hangs now, still listed free: its heartbeat has not stood still long enough to tell.
        sim.freeze(8)
        started = await acall(url, "POST", "/api/laundry/start", {"card_number": CARD, "unit": 8, "program": 10})
        # Its echo shows the start never arrived: the code, not a sentence, so the screen has words.
        assert started.body == {"outcome": "refused", "reason": "not_started", "points_charged": 0, "balance": 20}
        with agent.outbox.unit_of_work() as session:
            [transaction] = session.exec(select(VendTransaction).where(VendTransaction.unit == 8)).all()
        assert (transaction.reason_code, transaction.subject) == ("not_started", PSEUDONYMS.of_card(CARD))
        assert room.ledger.charges() == []

