"""A district's worth of kiosks on the wire, for the dashboard's screens: three sites, health
stations and laundry rooms, one kiosk gone, a faulted washer, a low battery, a backlog, a day of
telemetry, and a resident's three months of blood pressure. Published to the real broker with
the contract's own models (tests/bridge/wire_kiosk.py), stored by a real bridge worker."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt

from cloud_bridge.decode import Inbound
from contract.commands import CommandOutcome, CommandResultPayload, decode_command
from contract.payloads import (
    BloodPressurePayload,
    DeviceIdentity,
    GlucosePayload,
    LaundryMachineEvent,
    TemperaturePayload,
)
from contract.status import KioskState
from contract.telemetry import DeviceError, DeviceTelemetry, KioskTelemetry, OutboxDepth
from contract.topics import ReadingKind
from tests.bridge.wire_kiosk import WireKiosk
from tests.dashboard.conftest import SITE, WirePublisher

CUFF = DeviceIdentity(model="omron-hem-7361t", address="A4:C1:38:12:34:56", firmware="1.2.0")
GLUCOSE = DeviceIdentity(model="yuwell-580", address="C0:26:DA:01:02:03", firmware="2.0.4")
THERMOMETER = DeviceIdentity(model="generic-thermometer", address="D8:71:4D:AA:10:07", firmware="1.0.1")
GB = 1024**3
MB = 1024**2
# The resident whose chart the doctor opens, and a few others measured lately (pseudonyms:
# HMAC-SHA256 hex, as a kiosk makes them; nothing here stands for a real person).
RESIDENT = "3b5d8f0a1c2e4f6a8b0c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d8e0f1a"
OTHER_RESIDENTS = (
    "9c1e2a7b4d6f8e0a1c3b5d7f9e2a4c6b8d0f1e3a5c7b9d2f4e6a8c0b1d3f5e7a",
    "e4a6c8b0d2f1e3a5c7b9d0f2e4a6c8b1d3f5e7a9c0b2d4f6e8a1c3b5d7f9e0a2",
)
# Health station kiosks of each site (the laundry room and the odd ones are set apart below).
SITES = {SITE: 6, "xuhui-tianlin": 4, "minhang-gumei": 2}
LAUNDRY_KIOSK = "kiosk-02"
OFFLINE_KIOSK = "kiosk-03"
BACKLOG_KIOSK = "kiosk-04"


def kiosk_telemetry(*, backlog: int = 0, oldest_age_s: float | None = None, disk_free: int = 11 * GB,
                    outbox_bytes: int = 2 * MB, devices: list[DeviceTelemetry] | None = None,
                    cpu: float = 48.0) -> KioskTelemetry:
    return KioskTelemetry(
        uptime_s=3 * 86400 + 5000,
        outbox={"health": OutboxDepth(records=backlog, oldest_age_s=oldest_age_s),
                "event": OutboxDepth(records=backlog // 5), "telemetry": OutboxDepth(records=0)},
        outbox_bytes=outbox_bytes, outbox_budget_bytes=256 * MB, health_over_budget=False,
        disk_free_bytes=disk_free, cpu_temperature_c=cpu, clock_synchronised=True, devices=devices or [],
    )


def health_devices(now: datetime, battery: tuple[int, int, int] = (85, 64, 92), *,
                   cuff_bond_lost: bool = False) -> list[DeviceTelemetry]:
    devices = [
        DeviceTelemetry(address=device.address, model=device.model, link="unknown", battery_percent=level,
                        last_seen_at=now - timedelta(minutes=minutes), last_reading_at=now - timedelta(minutes=minutes))
        for device, level, minutes in zip((CUFF, GLUCOSE, THERMOMETER), battery, (52, 95, 40), strict=True)
    ]
    if cuff_bond_lost:  # its batteries were changed and it forgot its pairing (drivers/ble/bonding.py)
        devices[0] = devices[0].model_copy(update={
            "last_error": DeviceError(code="ble_bond_lost", at=now - timedelta(minutes=6),
                                      message=f"{CUFF.address} refused access: the device has lost its bond with the kiosk"),
            "failing_since": now - timedelta(minutes=30),
            "error_counts": {"ble_bond_lost": 3, "ble_not_found": 41},
        })
    return devices


@dataclass
class Fleet:
    kiosks: dict[tuple[str, str], WireKiosk] = field(default_factory=dict)

    def kiosk(self, site: str, kiosk: str) -> WireKiosk:
        return self.kiosks.setdefault((site, kiosk), WireKiosk(site=site, kiosk=kiosk))


def publish_fleet(wire: WirePublisher, now: datetime) -> Fleet:
    fleet = Fleet()
    for site, count in SITES.items():
        for n in range(1, count + 1):
            name = f"kiosk-{n:02d}"
            kiosk = fleet.kiosk(site, name)
            if site == SITE and name == LAUNDRY_KIOSK:
                publish_laundry_room(wire, kiosk, now)
                continue
            if site == "minhang-gumei" and n == 2:
                # Heard from, but never a status: a kiosk whose broker session is still unknown.
                wire.send(kiosk, kiosk.telemetry(kiosk_telemetry(), at=now))
                continue
            wire.send(kiosk, kiosk.status(KioskState.ONLINE, now), retain=True)
            battery = (85, 15, 92) if (site, name) == (SITE, "kiosk-05") else (85 - n, 64 + n, 92)
            if (site, name) == (SITE, BACKLOG_KIOSK):
                report = kiosk_telemetry(backlog=240, oldest_age_s=7200, outbox_bytes=19 * MB, devices=health_devices(now))
            else:
                devices = health_devices(now, battery, cuff_bond_lost=(site, name) == (SITE, "kiosk-05"))
                report = kiosk_telemetry(devices=devices, disk_free=(7 + n) * GB, cpu=44 + n * 1.5)
            # Telemetry carries a device's model, not its firmware: readings newer than it do.
            wire.send(kiosk, kiosk.telemetry(report, at=now - timedelta(minutes=4)))  # fresh: within 5 min
            # Anonymous measurements ("do not save to my record").
            wire.send(kiosk, kiosk.reading(pressure(121, 79, None), at=now - timedelta(minutes=3), device=CUFF),
                      kiosk.reading(GlucosePayload(glucose_concentration=5.6, unit="mmol/L"), ReadingKind.GLUCOSE,
                                    at=now - timedelta(minutes=2), device=GLUCOSE),
                      kiosk.reading(TemperaturePayload(temperature=36.6, unit="Cel"), ReadingKind.TEMPERATURE,
                                    at=now - timedelta(minutes=1), device=THERMOMETER))
            if (site, name) == (SITE, OFFLINE_KIOSK):
                wire.send(kiosk, kiosk.status(KioskState.OFFLINE), retain=True)  # its Last Will
    return fleet


def machine_model(unit: int) -> str:
    return "washer-retrofit-a" if unit <= 6 else "dryer-retrofit-b"


def publish_laundry_room(wire: WirePublisher, kiosk: WireKiosk, now: datetime) -> None:
    """A day of the laundry kiosk's telemetry (a backlog while its uplink was down at night),
    then its eight machines: one running, one faulted."""
    wire.send(kiosk, kiosk.status(KioskState.ONLINE, now), retain=True)
    for half_hours in range(47, 0, -1):  # within the kiosk page's default 24 h
        at = now - timedelta(minutes=30 * half_hours)
        # The uplink was down from 02:00 to 05:00 kiosk time a day ago: records piled up.
        hours_ago = half_hours / 2
        backlog = int(120 * math.sin(math.pi * (hours_ago - 18) / 4)) if 18 <= hours_ago <= 22 else 0
        wire.send(kiosk, kiosk.telemetry(kiosk_telemetry(
            backlog=max(backlog, 0), disk_free=int((9.4 - 0.01 * (48 - half_hours)) * GB),
            outbox_bytes=int((1.5 + max(backlog, 0) * 0.05) * MB)), at=at))
    # As an agent does, its telemetry lists every machine with its link (edge_agent/agent.py):
    # the bridge takes an older event's link as old news beside it.
    machines = [DeviceTelemetry(address=f"modbus-unit-{unit}", model=machine_model(unit),
                                link="offline" if unit == 8 else "online") for unit in range(1, 9)]
    wire.send(kiosk, kiosk.telemetry(kiosk_telemetry(disk_free=int(8.9 * GB), devices=machines), at=now))
    for unit in range(1, 9):
        model = machine_model(unit)
        device = DeviceIdentity(model=model, address=f"modbus-unit-{unit}", firmware="3.1")
        if unit == 3:
            event = LaundryMachineEvent(unit=unit, state="fault", link="online", error_code=21,
                                        error_text={"zh": "进水超时", "en": "water inlet timeout"})
        elif unit == 5:
            event = LaundryMachineEvent(unit=unit, state="running", link="online", program=2, remaining_seconds=1260)
        elif unit == 8:
            event = LaundryMachineEvent(unit=unit, state="unknown", link="offline", link_error="no answer from unit 8")
        else:
            event = LaundryMachineEvent(unit=unit, state="idle", link="online")
        wire.send(kiosk, kiosk.machine(event, device=device, at=now - timedelta(minutes=unit)))


def publish_readings(wire: WirePublisher, fleet: Fleet, now: datetime) -> int:
    """Three months of one resident's blood pressure coming down under treatment, with one
    dangerous reading, and a few readings of others. Returns how many are the resident's."""
    kiosk = fleet.kiosk(SITE, "kiosk-01")
    count = 0
    for day in range(90, 0, -3):
        trend = day / 90  # 1 three months ago, 0 now
        systolic = round(128 + 22 * trend + 6 * math.sin(day))
        diastolic = round(80 + 12 * trend + 4 * math.cos(day))
        status = ["body_movement"] if day == 42 else []
        wire.send(kiosk, kiosk.reading(pressure(systolic, diastolic, RESIDENT, status=status),
                                       at=now - timedelta(days=day, hours=-9), device=CUFF))
        count += 1
    wire.send(kiosk, kiosk.reading(pressure(186, 104, RESIDENT), at=now - timedelta(days=20, hours=-8), device=CUFF))
    count += 1
    for n, other in enumerate(OTHER_RESIDENTS):
        for day in (9, 5, 1):
            wire.send(kiosk, kiosk.reading(pressure(118 + 12 * n + day, 76 + 6 * n, other),
                                           at=now - timedelta(days=day, hours=n), device=CUFF))
    return count


def pressure(systolic: float, diastolic: float, subject: str | None, status: list[str] | None = None) -> BloodPressurePayload:
    return BloodPressurePayload(unit="mmHg", systolic=systolic, diastolic=diastolic, mean_arterial_pressure=None,
                                pulse_rate=70 + (systolic % 9), subject=subject, status=status or [])


def answer_commands(client: mqtt.Client, fleet: Fleet) -> None:
    """Answer every command to a kiosk of `fleet` as an agent would (the command test of
    test_kiosk_page.py has a real agent; this fleet has only wire kiosks)."""

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        _root, _v1, site, name, _channel, request_id = message.topic.split("/")
        kiosk = fleet.kiosks.get((site, name))
        if kiosk is None:
            return
        command = decode_command(message.payload)
        detail = {"ping": "pong", "laundry_clear_fault": "fault cleared; machine idle"}.get(command.command, "done")
        data: dict[str, Any] = {"kiosk_time": datetime.now(UTC).isoformat()} if command.command == "ping" else {}
        result = CommandResultPayload(request_id=request_id, command=command.command, outcome=CommandOutcome.SUCCEEDED,
                                      detail=detail, data=json.loads(json.dumps(data)))
        inbound = Inbound(kiosk.topics.command_result(request_id), kiosk.envelope(result))
        client.publish(inbound.topic, inbound.body, qos=1)

    client.on_message = on_message
    client.subscribe("doorstep/v1/+/+/commands/+", qos=1)
