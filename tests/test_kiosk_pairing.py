"""Pairing a cuff from the kiosk's technician screen, on a real agent with no network and BlueZ
mocked on a private system bus: behind the PIN, a scan shows the cuffs with their profiles, a
tap pairs one and writes it into the kiosk's configuration (kept across a restart, not dropped
by a fleet document's device list), a failure says which, and a cuff whose bond is lost is
offered for pairing again."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from drivers.ble.blood_pressure import BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.pairing import PairingFailure
from drivers.ble.simulated import simulated_backend
from drivers.ble.simulated.omron_cuff import SimulatedOmronCuff
from drivers.ble.simulated.peripheral import SimulatedPeripheral
from edge_agent.agent import Agent
from edge_agent.desired_config import config_path, effective_settings
from edge_agent.screen import app as screen_app
from edge_agent.store.outbox import RecordState
from edge_agent.settings import AgentSettings
from edge_agent.unlock_key import unlock_key_path
from kiosk_config.sections import DeviceSettings
from firmware_configs.profiles import load_ble_profiles
from tests.bluez_mock import bluez
from tests.kiosk_support import PIN, acall, button_cuff, kiosk_settings
from tests.support import running_agent, wait_until

OMRON = "28:FF:B2:00:00:01"
PHONE = "11:22:33:44:55:66"
TECHNICIAN = {"x-technician-pin": PIN}
I18N = Path(screen_app.__file__).resolve().parent / "static" / "i18n.js"


async def technician(url: str, method: str, path: str, body: Any = None) -> Any:
    return await acall(url, method, "/api/admin/pairing" + path, body, headers=TECHNICIAN)


async def paired_or_failed(url: str) -> dict[str, Any]:
    async def ended() -> bool:
        return (await technician(url, "GET", "")).body["phase"] != "pairing"
    await wait_until(ended, what="the pairing to end")
    return (await technician(url, "GET", "")).body  # type: ignore[no-any-return]


@pytest.mark.asyncio
async def test_a_technician_scans_taps_a_cuff_and_it_is_paired_and_configured_across_a_restart(
    tmp_path: Path, broker, system_bus: str
) -> None:
    settings = kiosk_settings(tmp_path, broker)  # the broker is never started: no network
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        cuff = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        await mock.add_device(PHONE, "Someone's phone")
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.screen is not None, what="the screen serving")
            assert agent.screen is not None and agent.pairing is not None
            url = agent.screen.url
            agent.pairing.scan_s = 0.2

            assert (await acall(url, "POST", "/api/admin/pairing/scan")).status == 401  # no PIN
            scanned = await technician(url, "POST", "/scan")
            assert scanned.status == 200
            assert {(d["address"], d["model"], d["kind"], d["configured"]) for d in scanned.body} == {
                (OMRON, "omron", "blood_pressure", False), (PHONE, None, None, False),
            }
            refused = await technician(url, "POST", "/pair", {"address": PHONE})
            assert (refused.status, refused.body["error"]) == (404, "not_heard")

            started = await technician(url, "POST", "/pair", {"address": OMRON})
            assert (started.status, started.body["phase"]) == (202, "pairing")
            ended = await paired_or_failed(url)
            assert (ended["phase"], ended["failure"], ended["model"]) == ("paired", None, "omron")
            assert await mock.get(cuff, "Trusted") is True
            assert [(d.address, d.model) for d in agent.settings.devices][-1] == (OMRON, "omron")

        saved = json.loads(config_path(settings.outbox_path).read_text())
        assert saved["paired"] == [{"address": OMRON, "model": "omron"}]
        async with running_agent(settings) as again:
            assert OMRON in [d.address for d in again.settings.devices]
            # Replaced by another cuff: the technician takes it off the kiosk's devices.
            await wait_until(lambda: again.screen is not None, what="the screen serving")
            assert again.screen is not None
            assert (await technician(again.screen.url, "GET", "")).body["paired"] == [{"address": OMRON, "model": "omron"}]
            forgotten = await technician(again.screen.url, "DELETE", f"/devices/{OMRON}")
            assert (forgotten.status, forgotten.body["paired"]) == (200, [])
            assert OMRON not in [d.address for d in again.settings.devices]
            missing = await technician(again.screen.url, "DELETE", f"/devices/{OMRON}")
            assert (missing.status, missing.body["error"]) == (404, "not_paired_here")
        assert json.loads(config_path(settings.outbox_path).read_text())["paired"] == []
    # A fleet document's device list replaces the file's, and the cuff paired here stays.
    fleet = {"devices": [{"address": "A4:C1:38:00:00:09", "model": "generic"}]}
    merged = effective_settings(settings, fleet, "fleet configuration v3", saved["paired"])
    assert not isinstance(merged, list)
    assert [(d.address, d.model) for d in merged.devices] == [("A4:C1:38:00:00:09", "generic"), (OMRON, "omron")]


@pytest.mark.asyncio
async def test_a_cuff_not_in_pairing_mode_is_said_so_and_nothing_is_configured(
    tmp_path: Path, broker, system_bus: str
) -> None:
    settings = kiosk_settings(tmp_path, broker)
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        cuff = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        await mock.fail_pair(cuff, "org.bluez.Error.AuthenticationRejected", "Authentication Rejected")
        async with running_agent(settings) as agent:
            await wait_until(lambda: agent.screen is not None, what="the screen serving")
            assert agent.screen is not None and agent.pairing is not None
            agent.pairing.scan_s = 0.2
            await technician(agent.screen.url, "POST", "/scan")
            await technician(agent.screen.url, "POST", "/pair", {"address": OMRON})
            ended = await paired_or_failed(agent.screen.url)
            assert (ended["phase"], ended["failure"]) == ("failed", "not_in_pairing_mode")
            assert OMRON not in [d.address for d in agent.settings.devices]
    assert not config_path(settings.outbox_path).exists() or \
        json.loads(config_path(settings.outbox_path).read_text())["paired"] == []


def test_the_screen_has_words_for_every_failure_in_chinese_and_english() -> None:
    texts = I18N.read_text(encoding="utf-8")
    zh, en = texts.split('"en": {', 1)
    for code in [*PairingFailure, "config_refused"]:
        key = f'"pair.failure.{code}"'
        assert key in zh and key in en, code
    # Chinese first, in plain words: the not-in-pairing-mode words say how to enter it.
    assert re.search(r'"pair\.failure\.not_in_pairing_mode": "[^"]*配对模式', zh)


@pytest.mark.asyncio
async def test_a_cuff_whose_bond_is_lost_is_offered_for_pairing_again_until_it_is(
    tmp_path: Path, broker, system_bus: str
) -> None:
    # The kiosk's BlueZ holds keys for the cuff; the cuff dropped its own (batteries out).
    cuff = button_cuff(requires_bonding=True)
    cuff.address = OMRON
    cuff.central_bonded = True
    settings = kiosk_settings(tmp_path, broker)
    async with bonded_at_the_kiosk(settings, "omron", cuff, "BLEsmart_00000116", system_bus) as (agent, mock, device):
        assert agent.screen is not None
        url = agent.screen.url
        assert (await technician(url, "GET", "")).body["pair_again"] == []
        cuff.press_start()

        async def offered() -> bool:
            return bool((await technician(url, "GET", "")).body["pair_again"])
        await wait_until(offered, what="the offer to pair again")
        [again] = (await technician(url, "GET", "")).body["pair_again"]
        assert (again["address"], again["model"], again["error"]) == (OMRON, "omron", "ble_bond_lost")
        # Off between tries (not found), as a cuff is most of the day: still offered.
        cuff.advertising = False
        await wait_until(lambda: agent.device_health.telemetry(OMRON)["last_error"].code == "ble_not_found",
                         what="the cuff not found")
        assert [d["address"] for d in (await technician(url, "GET", "")).body["pair_again"]] == [OMRON]

        # The technician puts the cuff in pairing mode and taps "pair again": BlueZ's old
        # keys are removed, the cuff is heard again, and a fresh bond is made.
        started = await technician(url, "POST", "/pair", {"address": OMRON})
        assert started.status == 202
        await asyncio.sleep(0.5)
        fresh = await mock.add_device(OMRON, "BLEsmart_00000116", ["1810"])
        ended = await paired_or_failed(url)
        assert (ended["phase"], ended["pair_again"]) == ("paired", [])
        assert await mock.get(fresh, "Paired") is True
        assert [(d.address, d.model, d.reconnect_interval_s) for d in agent.settings.devices] == [
            (OMRON, "omron", device.reconnect_interval_s)
        ]


KEYED = "28:FF:B2:00:73:61"  # an HEM-7361T: unlocks with a key (omron_memory.unlock: key)


def keyed_cuff() -> SimulatedOmronCuff:
    memory = load_ble_profiles()["hem-7361t"].omron_memory
    assert memory is not None
    device = SimulatedOmronCuff(memory_map=memory, address=KEYED, name="HEM-7361T")  # fresh: holds no key
    device.measure(BloodPressureMeasurement(
        unit=BloodPressureUnit.MMHG, systolic=128.0, diastolic=84.0, mean_arterial_pressure=None,
        timestamp=datetime(2026, 12, 7, 8, 0), pulse_rate=66.0, user_id=1, status=()))
    return device


@asynccontextmanager
async def bonded_at_the_kiosk(
    base: AgentSettings, model: str, peripheral: SimulatedPeripheral, name: str, system_bus: str
) -> AsyncIterator[tuple[Agent, Any, DeviceSettings]]:
    """A running kiosk configured with `peripheral` as `model`, BlueZ holding a bond with it."""
    configured = base.devices[0].model_copy(update={"address": peripheral.address, "model": model})
    settings = base.model_copy(update={"devices": [configured]})
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        await mock.add_device(peripheral.address, name, ["1810"])
        await mock.mark_paired(peripheral.address)
        async with running_agent(settings, {peripheral.address: simulated_backend(peripheral)}) as agent:
            await wait_until(lambda: agent.screen is not None, what="the screen serving")
            yield agent, mock, configured


@asynccontextmanager
async def pairing_at_the_screen(
    settings: AgentSettings, device: SimulatedOmronCuff, system_bus: str
) -> AsyncIterator[tuple[Agent, dict[str, Any]]]:
    """A running kiosk where the technician scanned and tapped `device`: the pairing's end."""
    async with bluez(system_bus) as mock:
        await mock.add_adapter()
        await mock.add_device(device.address, device.name, ["1810"])
        async with running_agent(settings, {device.address: simulated_backend(device)}) as agent:
            await wait_until(lambda: agent.screen is not None, what="the screen serving")
            assert agent.screen is not None and agent.pairing is not None
            agent.pairing.scan_s = 0.2
            await technician(agent.screen.url, "POST", "/scan")
            await technician(agent.screen.url, "POST", "/pair", {"address": device.address})
            yield agent, await paired_or_failed(agent.screen.url)


@pytest.mark.asyncio
async def test_a_cuff_that_unlocks_with_a_key_takes_the_kiosks_own_at_pairing_and_is_read_with_it(
    tmp_path: Path, broker, system_bus: str
) -> None:
    settings = kiosk_settings(tmp_path, broker).model_copy(update={"devices": []})
    device = keyed_cuff()
    device.pairing_mode = True  # the technician holds its Bluetooth button until "-P-" blinks
    async with pairing_at_the_screen(settings, device, system_bus) as (agent, ended):
        assert (ended["phase"], ended["failure"], ended["model"]) == ("paired", None, "hem-7361t")
        # The key kept in the kiosk's state directory, and nothing else, is the cuff's now.
        kept = unlock_key_path(settings.outbox_path)
        assert device.unlock_key == bytes.fromhex(kept.read_text()) and len(device.unlock_key) == 16
        assert kept.stat().st_mode & 0o077 == 0
        device.pairing_mode = False
        await wait_until(lambda: device.unread() == 0, what="the cuff read with the kiosk's key")
        assert agent.outbox is not None and agent.outbox.counts()[RecordState.PENDING] == 1
    async with running_agent(settings) as again:
        assert again.unlock_key == device.unlock_key  # the same key after a restart


@pytest.mark.asyncio
async def test_a_cuff_that_left_pairing_mode_before_taking_the_key_is_said_so_and_not_configured(
    tmp_path: Path, broker, system_bus: str
) -> None:
    settings = kiosk_settings(tmp_path, broker).model_copy(update={"devices": []})
    device = keyed_cuff()  # bonded by BlueZ, then out of pairing mode: it refuses key programming
    async with pairing_at_the_screen(settings, device, system_bus) as (agent, ended):
        assert (ended["phase"], ended["failure"]) == ("failed", PairingFailure.KEY_NOT_PROGRAMMED.value)
        assert "not in pairing mode" in ended["detail"]
        assert device.unlock_key is None
        assert KEYED not in [d.address for d in agent.settings.devices]


@pytest.mark.asyncio
async def test_a_cuff_holding_another_key_is_offered_for_pairing_again_and_then_read(
    tmp_path: Path, broker, system_bus: str
) -> None:
    device = keyed_cuff()
    device.unlock_key = bytes.fromhex("deadbeaf12341234deadbeaf12341234")  # paired with omblepy -p before
    settings = kiosk_settings(tmp_path, broker)
    async with bonded_at_the_kiosk(settings, "hem-7361t", device, "HEM-7361T", system_bus) as (agent, mock, _):
        assert agent.screen is not None
        url = agent.screen.url

        async def offered() -> bool:
            return bool((await technician(url, "GET", "")).body["pair_again"])
        await wait_until(offered, what="the offer to pair again")
        [again] = (await technician(url, "GET", "")).body["pair_again"]
        assert (again["address"], again["model"], again["error"]) == (KEYED, "hem-7361t", "ble_bond_lost")
        assert device.unread() == 1  # refused before anything was read

        device.pairing_mode = True
        assert (await technician(url, "POST", "/pair", {"address": KEYED})).status == 202
        await asyncio.sleep(0.5)
        await mock.add_device(KEYED, "HEM-7361T", ["1810"])  # heard again after BlueZ forgot it
        ended = await paired_or_failed(url)
        assert (ended["phase"], ended["failure"]) == ("paired", None)
        assert device.unlock_key == agent.unlock_key
        device.pairing_mode = False
        await wait_until(lambda: device.unread() == 0, what="the cuff read with the kiosk's key")
        assert (await technician(url, "GET", "")).body["pair_again"] == []
