"""The kiosk's telemetry: what it reports about itself, and that it reaches the bridge."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broker_admin.mosquitto import MosquittoProcess
from contract.telemetry import KioskTelemetry
from drivers.ble.simulated import SimulatedCuff, simulated_backend
from edge_agent.store.outbox import Outbox, RecordClass, RecordState
from edge_agent.telemetry import cpu_temperature_c, kiosk_telemetry
from tests.support import CUFF_ADDRESS, agent_settings, running_agent, wait_until
from tests.test_end_to_end import MEASUREMENT
from tests.test_outbox_upkeep import BEAT, EVENT, HEALTH, MACHINE, READING, START, TELEMETRY, Clock


def test_telemetry_counts_each_class_and_its_oldest_record(tmp_path: Path) -> None:
    clock = Clock()
    outbox = Outbox(tmp_path / "o.sqlite3", clock=clock)
    outbox.save(HEALTH, READING)
    clock.now = START + timedelta(seconds=30)
    outbox.save(HEALTH, READING)
    outbox.save(EVENT, MACHINE)
    delivered = outbox.save(TELEMETRY, BEAT)
    outbox.mark_delivered([delivered.message_id])  # type: ignore[union-attr]
    report = kiosk_telemetry(outbox, uptime_s=12.5, now=START + timedelta(seconds=100), devices=[], clock_synchronised=True)
    assert report.outbox["health"].records == 2 and report.outbox["health"].oldest_age_s == 100
    assert report.outbox["event"].records == 1 and report.outbox["event"].oldest_age_s == 70
    assert report.outbox["telemetry"].records == 0 and report.outbox["telemetry"].oldest_age_s is None
    assert report.outbox_bytes == outbox.used_bytes and report.outbox_budget_bytes == outbox.limits.budget_bytes
    assert report.disk_free_bytes is not None and report.disk_free_bytes > 0
    KioskTelemetry.model_validate_json(report.model_dump_json())


def test_cpu_temperature_is_read_where_there_is_a_thermal_zone(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert cpu_temperature_c(zone) == 48.312
    assert cpu_temperature_c(tmp_path / "missing") is None


@pytest.mark.asyncio
async def test_telemetry_is_sent_on_schedule_stored_by_the_bridge_and_confirmed(
    tmp_path: Path, running_broker: MosquittoProcess, bridge_factory
) -> None:
    bridge = bridge_factory(running_broker)
    settings = agent_settings(tmp_path, running_broker).model_copy(update={"telemetry_every_s": 0.3, "trust_clock": "always"})
    cuff = SimulatedCuff(address=CUFF_ADDRESS, measurements=lambda: [MEASUREMENT], battery_percent=77,
                         has_current_time=True)
    async with running_agent(settings, {CUFF_ADDRESS: simulated_backend(cuff)}) as agent:
        await wait_until(lambda: bridge.reading_count() == 1, what="the cuff's reading")
        with bridge.api() as api:
            await wait_until(lambda: api.get("/api/v1/telemetry", kiosk=settings.kiosk).body["total"] >= 3,
                             what="three telemetry reports")
            page = api.get("/api/v1/telemetry", kiosk=settings.kiosk, limit=1).body
        await wait_until(lambda: agent.outbox.depth()[RecordClass.HEALTH][0] == 0, what="the reading confirmed")  # type: ignore[union-attr]
        # The bridge acks after its commit: the three reports it served are confirmed soon after.
        await wait_until(lambda: agent.outbox.counts()[RecordState.DELIVERED] >= 4,  # type: ignore[union-attr]
                         what="the reading and three reports confirmed")
    report = KioskTelemetry.model_validate(page["items"][0]["payload"])
    assert report.uptime_s > 0
    [reported] = report.devices
    assert reported.address == CUFF_ADDRESS and reported.last_reading_at is not None
    assert reported.battery_percent == 77 and reported.last_seen_at is not None and reported.link == "unknown"
    # The simulated cuff's clock runs 7 minutes ahead (TYPICAL_DRIFT) until the kiosk sets it.
    assert reported.clock_offset_s is not None and abs(reported.clock_offset_s - 420) < 5
