"""The agent and its devices, with no network: what it saves is what the cuff measured."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contract.envelope import Envelope
from contract.telemetry import DeviceTelemetry
from drivers.ble.blood_pressure import BloodPressureDialect, BloodPressureMeasurement, BloodPressureUnit
from drivers.ble.simulated import SimulatedCuff, simulated_backend
from edge_agent.devices import default_simulator
from edge_agent.settings import DeviceSettings
from edge_agent.store.cursors import DeviceCursors
from edge_agent.store.outbox import RecordState
from firmware_configs.profiles import load_ble_profiles
from tests.support import CUFF_ADDRESS, agent_settings, running_agent, wait_until


def quirky_cuff_backend(measurement: BloodPressureMeasurement) -> dict[str, type]:
    quirky = BloodPressureDialect(pulse_rate_byte_order="big", measurement_status_byte_order="big", user_id_without_flag=True)
    cuff = SimulatedCuff(address=CUFF_ADDRESS, measurements=lambda: [measurement], dialect=quirky)
    return {CUFF_ADDRESS: simulated_backend(cuff)}


async def first_saved_payload(tmp_path: Path, broker, model: str, measurement: BloodPressureMeasurement) -> dict:
    settings = agent_settings(tmp_path, broker)  # the broker is never started: offline kiosk
    settings.devices[0] = settings.devices[0].model_copy(update={"model": model})
    async with running_agent(settings, quirky_cuff_backend(measurement)) as agent:
        await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 1, what="a saved reading")
        [record] = agent.outbox.due(1)
    return Envelope.model_validate_json(record.body).payload


MEASURED = BloodPressureMeasurement(
    unit=BloodPressureUnit.MMHG,
    systolic=131.0,
    diastolic=84.0,
    mean_arterial_pressure=100.0,
    timestamp=datetime(2026, 11, 25, 7, 45),
    pulse_rate=66.0,
    user_id=1,
)


@pytest.mark.asyncio
async def test_a_non_compliant_cuff_reads_right_through_its_profile_alone(tmp_path: Path, broker) -> None:
    payload = await first_saved_payload(tmp_path, broker, "noncompliant-example", MEASURED)
    assert (payload["systolic"], payload["diastolic"], payload["pulse_rate"], payload["user_id"]) == (131.0, 84.0, 66.0, 1)
    assert payload["suspect"] == []


@pytest.mark.asyncio
async def test_the_same_cuff_under_the_generic_profile_is_caught_as_suspect_not_stored_as_good(
    tmp_path: Path, broker
) -> None:
    payload = await first_saved_payload(tmp_path, broker, "generic", MEASURED)
    # Big-endian 66 read little-endian is 16896 beats a minute: caught, marked, still saved.
    assert payload["pulse_rate"] != 66.0
    assert "pulse_rate_out_of_range" in payload["suspect"]


@pytest.mark.asyncio
async def test_a_cuff_that_replays_its_memory_on_every_connection_is_saved_once_even_across_restarts(
    tmp_path: Path, broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.agent")
    memory = [MEASURED, dataclasses.replace(MEASURED, systolic=140.0, timestamp=datetime(2026, 11, 25, 8, 0))]
    cuff = SimulatedCuff(address=CUFF_ADDRESS, measurements=memory)  # replayed on every connection
    settings = agent_settings(tmp_path, broker)
    settings.devices[0] = settings.devices[0].model_copy(update={"reconnect_interval_s": 0.05, "idle_timeout_s": 0.2})
    for _restart in range(2):
        caplog.clear()
        async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
            await wait_until(
                lambda: sum("replayed a reading" in r.getMessage() for r in caplog.records) >= 4,
                what="two more connections replaying the memory",
            )
            counts = agent.outbox.counts()
    assert counts[RecordState.PENDING] == 2


@pytest.mark.asyncio
async def test_every_kind_of_device_reaches_the_outbox_and_a_glucose_meter_is_read_only_once(
    tmp_path: Path, broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.agent")
    settings = agent_settings(tmp_path, broker, with_cuff=False)
    settings.devices = [
        DeviceSettings(address=f"SIM:00:00:00:00:0{n}", model=model, simulated=True, reconnect_interval_s=0.05, idle_timeout_s=0.3)
        for n, model in enumerate(
            ["generic-glucose-meter", "generic-thermometer", "generic-scale", "generic-pulse-oximeter"], start=1
        )
    ]

    def kinds() -> dict[str, int]:
        found: dict[str, int] = {}
        for record in agent.outbox.due(1000):
            kind = record.topic.rsplit("/", 1)[-1]
            found[kind] = found.get(kind, 0) + 1
        return found

    meter = default_simulator(load_ble_profiles()["generic-glucose-meter"], "SIM:00:00:00:00:01")
    async with running_agent(settings, {meter.address: simulated_backend(meter)}) as agent:
        await wait_until(lambda: {"glucose", "temperature", "weight", "spo2"} <= kinds().keys(), what="every kind saved")
        # The meter is asked again and again: only records after the last one saved come back.
        await wait_until(lambda: meter.connections >= 4, what="more sessions with the meter")
        assert kinds()["glucose"] == 5
        assert DeviceCursors(agent.outbox.database).position(meter.address) == 5
    assert not any("replayed" in r.getMessage() and meter.address in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_a_cuff_that_needs_a_bond_is_paired_through_its_profile(tmp_path: Path, broker) -> None:
    cuff = SimulatedCuff(address=CUFF_ADDRESS, measurements=[MEASURED], requires_bonding=True)
    settings = agent_settings(tmp_path, broker)
    settings.devices[0] = settings.devices[0].model_copy(update={"model": "omron"})  # quirks: needs_bonding
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 1, what="the reading of a bonded cuff")
    assert cuff.bonded


@pytest.mark.asyncio
async def test_the_cuff_pressure_rises_live_before_the_reading_is_saved(tmp_path: Path, broker) -> None:
    pressures: list[float | None] = []
    cuff = SimulatedCuff(address=CUFF_ADDRESS, measurements=[MEASURED], inflate_steps=6)
    settings = agent_settings(tmp_path, broker)
    async with running_agent(
        settings, {CUFF_ADDRESS: simulated_backend(cuff)}, on_cuff_pressure=lambda _device, p: pressures.append(p)
    ) as agent:
        await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 1, what="the saved reading")
    assert len(pressures) == 6
    assert pressures == sorted(pressures) and pressures[0] < pressures[-1]


@pytest.mark.asyncio
async def test_a_cuff_that_lost_its_bond_is_logged_once_and_reported_until_it_is_paired_again(
    tmp_path: Path, broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent.agent")
    cuff = SimulatedCuff(address=CUFF_ADDRESS, measurements=[MEASURED], requires_bonding=True, disconnect_after=0.05,
                         battery_percent=80)
    settings = agent_settings(tmp_path, broker)
    settings.devices[0] = settings.devices[0].model_copy(
        update={"model": "omron", "reconnect_interval_s": 0.05, "idle_timeout_s": 0.2}  # omron: needs_bonding
    )

    def reported() -> DeviceTelemetry:
        [device] = [d for d in agent.device_telemetry() if d.address == CUFF_ADDRESS]
        return device

    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 1, what="the reading of a bonded cuff")
        assert reported().last_error is None and reported().error_counts == {}
        lost_at = datetime.now(UTC)
        cuff.bonded = False  # its batteries were changed: it forgot its keys, BlueZ kept its own
        await wait_until(lambda: reported().error_counts.get("ble_bond_lost", 0) >= 3, what="three refused sessions")
        device = reported()
        assert device.last_error is not None and device.last_error.code == "ble_bond_lost"
        assert "lost its bond" in device.last_error.message
        assert device.failing_since is not None and device.failing_since >= lost_at
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "ble_bond_lost" in r.getMessage()]
        assert len(warnings) == 1  # once for the condition, not once a poll
        # Nor a warning a poll about the battery read the missing bond refused first.
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "battery" in r.getMessage()]

        cuff.central_bonded = False  # a technician removed and paired it again (bluetoothctl remove, pair)
        await wait_until(lambda: reported().error_counts == {}, what="a session that works again")
        device = reported()
        assert device.failing_since is None
        assert device.last_error is not None and device.last_error.code == "ble_bond_lost"  # kept, for the record
    assert any("works again" in r.getMessage() and "ble_bond_lost x" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records)


@pytest.mark.asyncio
async def test_an_omron_cuff_is_read_from_its_memory_once_and_marked_read_after_the_outbox_has_it(
    tmp_path: Path, broker
) -> None:
    from drivers.ble.simulated.omron_cuff import SimulatedOmronCuff

    settings = agent_settings(tmp_path, broker)  # offline kiosk
    settings.devices[0] = settings.devices[0].model_copy(update={"model": "hem-7142t2", "reconnect_interval_s": 0.05})
    omron = SimulatedOmronCuff(memory_map=load_ble_profiles()["hem-7142t2"].omron_memory, address=CUFF_ADDRESS)
    stored = [dataclasses.replace(MEASURED, mean_arterial_pressure=None, timestamp=datetime(2026, 11, 25, 7 + n, 45))
              for n in range(3)]
    for reading in stored:
        omron.measure(reading)
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(omron)}) as agent:
        await wait_until(lambda: omron.unread() == 0, what="the cuff's records marked read")
        assert agent.outbox.counts()[RecordState.PENDING] == 3
        connections = omron.connections
        await wait_until(lambda: omron.connections >= connections + 2, what="two more sessions")
        assert agent.outbox.counts()[RecordState.PENDING] == 3  # nothing read twice
        omron.measure(dataclasses.replace(stored[0], timestamp=datetime(2026, 11, 26, 8, 0)))
        await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 4, what="the new reading")
    envelopes = [Envelope.model_validate_json(r.body) for r in agent.outbox.due(4)]
    assert sorted(str(e.device_time) for e in envelopes) == [
        "2026-11-25 07:45:00", "2026-11-25 08:45:00", "2026-11-25 09:45:00", "2026-11-26 08:00:00"]
    assert {(e.payload["systolic"], e.payload["diastolic"], e.payload["pulse_rate"], e.payload["user_id"])
            for e in envelopes} == {(131.0, 84.0, 66.0, 1)}


@pytest.mark.asyncio
async def test_a_simulated_omron_cuff_is_one_configuration_line(tmp_path: Path, broker) -> None:
    settings = agent_settings(tmp_path, broker)
    settings.devices[0] = DeviceSettings(address=CUFF_ADDRESS, model="hem-7142t2", simulated=True)
    async with running_agent(settings, {}) as agent:
        await wait_until(lambda: agent.outbox.counts()[RecordState.PENDING] == 2, what="the two readings it holds")
