"""What the kiosk says about itself on a schedule: uptime, outbox, disk, temperature, speech, devices."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from contract.desired import ConfigReport
from contract.software import SoftwareReport
from contract.telemetry import DeviceTelemetry, KioskTelemetry, OutboxDepth
from edge_agent.runway import Runway
from edge_agent.screen.speech import SpeechHealth
from edge_agent.store.outbox import Outbox, RecordState

# The SoC's temperature on a Raspberry Pi (and most Linux boards), in millidegrees Celsius.
CPU_THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c(zone: Path = CPU_THERMAL_ZONE) -> float | None:
    try:
        return int(zone.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None  # not a Pi, or no thermal zone: not an error


def disk_free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def kiosk_telemetry(
    outbox: Outbox, *, uptime_s: float, now: datetime, devices: Iterable[DeviceTelemetry], clock_synchronised: bool,
    speech: SpeechHealth | None = None, runway: Runway | None = None, config: ConfigReport | None = None, software: SoftwareReport | None = None,
) -> KioskTelemetry:
    """`speech`: None when the kiosk does not speak (screen.speak_results off). `runway`: the
    outbox's (edge_agent/runway.py), None while not measured."""
    depth = {
        record_class.name.lower(): OutboxDepth(
            records=records,
            oldest_age_s=max(0.0, (now - oldest).total_seconds()) if oldest is not None else None,
        )
        for record_class, (records, oldest) in outbox.depth().items()
    }
    return KioskTelemetry(
        uptime_s=uptime_s,
        outbox=depth,  # type: ignore[arg-type]
        outbox_bytes=outbox.used_bytes,
        outbox_budget_bytes=outbox.limits.budget_bytes,
        health_over_budget=outbox.health_over_budget,
        refused_records=outbox.counts()[RecordState.REFUSED],
        disk_free_bytes=disk_free_bytes(outbox.path.parent),
        cpu_temperature_c=cpu_temperature_c(),
        clock_synchronised=clock_synchronised,
        speech_ok=None if speech is None else speech.ok,
        speech_error=None if speech is None else speech.error,
        outbox_growth_bytes_per_h=None if runway is None else runway.growth_bytes_per_h,
        runway_h=None if runway is None else runway.hours,
        devices=list(devices),
        config=config,
        software=software,
    )


