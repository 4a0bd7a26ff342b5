"""When to raise an alert and when to clear it: pure rules over messages and fleet state.

The rules say *what* is wrong; cloud_bridge/alerts.py keeps the lifecycle (open, acknowledged,
resolved) and the deduplication. Each signal names what it is about (a device address, a
resident pseudonym, a gap), so a condition reported a hundred times is one open alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, Field

from contract.alarms import AlarmCondition, Alarms
from contract.clinical import (
    BloodPressureGuideline,
    Threshold,
    dangerous_line,
    is_dangerous,
    to_mmhg,
)
from contract.device_errors import BOND_ERRORS, UNREACHABLE_ERRORS, DeviceErrorCode
from contract.envelope import UpstreamMessage
from contract.payloads import (
    BloodPressurePayload,
    GlucosePayload,
    Spo2Payload,
    StaffCalledEvent,
    TemperaturePayload,
)
from contract.status import KioskState
from contract.telemetry import RUNWAY_SHORT_H
from contract.topics import Channel, EventType, ReadingKind

from cloud_bridge.fleet import DeviceBase, KioskBase


class AlertKind(StrEnum):
    KIOSK_OFFLINE = "kiosk_offline"
    DEVICE_FAULT = "device_fault"  # a laundry machine's fault state or error code
    DEVICE_OFFLINE = "device_offline"  # a machine on the RS-485 line stopped answering
    LOW_BATTERY = "low_battery"
    DEVICE_BOND_LOST = "device_bond_lost"  # a Bluetooth device refuses the kiosk until paired again
    DEVICE_UNREACHABLE = "device_unreachable"  # the kiosk has not reached a Bluetooth device for a long time
    BACKLOG_GROWING = "backlog_growing"
    OUTBOX_FULL = "outbox_full"  # only health readings left, over the disk budget
    OUTBOX_RUNWAY_SHORT = "outbox_runway_short"  # at its current growth, the outbox fills its budget soon
    DISK_FULL = "disk_full"  # the kiosk's disk has no room for one more save (its alarms)
    CANNOT_SAVE = "cannot_save"  # the kiosk's saves fail: readings are being lost (its alarms)
    DANGEROUS_READING = "dangerous_reading"
    SEQUENCE_GAP = "sequence_gap"  # a message was lost somewhere between kiosk and bridge
    SEQUENCE_RESTARTED = "sequence_restarted"  # the kiosk's outbox started over (set aside as corrupt?)
    MESSAGES_REFUSED = "messages_refused"  # the kiosk sends messages that break the contract (a bug)
    PAYLOAD_KEY_MISSING = "payload_key_missing"  # readings sealed for a key the bridge lacks (its configuration)
    # A bridge worker's own connection to the broker (site BRIDGE_SITE, about: its client id).
    BRIDGE_SESSION_TAKEN_OVER = "bridge_taken_over"  # another client connected with its client id
    BRIDGE_DISCONNECTS = "bridge_disconnects"  # disconnected again and again: a second holder of its credentials?
    STAFF_CALLED = "staff_called"  # someone at a kiosk pressed "call staff"


# Alerts that carry a resident's health data: seen only by those who may read readings.
HEALTH_ALERTS = frozenset({AlertKind.DANGEROUS_READING})


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"


class AlertRules(BaseModel):
    """Thresholds, in the bridge's configuration (`alerts:`)."""

    # A dangerous blood pressure is where the guideline's "very high" starts (grade 3, 180/110
    # by default: contract/clinical.py), so the chart, the kiosk and the pager agree.
    dangerous_blood_pressure: Threshold | None = Field(
        default=None,
        description="set the dangerous-reading line apart from very high, on purpose (at or above high); "
        "none: it is very high",
    )
    # Before issue 17: the line (and the chart's very high) at 180/120. Moved into
    # blood_pressure_guideline.very_high by BridgeSettings, keeping their meaning, then cleared.
    # Bounded as they were (gt=0 only, up to the contract's 1000), so every old file still loads.
    dangerous_systolic_mmhg: float | None = Field(default=None, gt=0, le=1000,
                                                  description="deprecated: blood_pressure_guideline.very_high.systolic")
    dangerous_diastolic_mmhg: float | None = Field(default=None, gt=0, le=1000,
                                                   description="deprecated: blood_pressure_guideline.very_high.diastolic")
    # Level 2 hypoglycaemia (ADA Standards of Care, section 6) and a hyperglycaemic emergency.
    low_glucose_mmol_l: float = Field(default=3.0, gt=0)
    high_glucose_mmol_l: float = Field(default=16.7, gt=0)
    low_spo2_percent: float = Field(default=90, gt=0, le=100)
    high_temperature_c: float = Field(default=39.0, gt=30)
    low_battery_percent: int = Field(default=20, ge=0, le=100)
    battery_recovered_percent: int = Field(default=30, ge=0, le=100, description="cleared at this level (hysteresis)")
    device_unreachable_s: float = Field(
        default=86400, gt=0,
        description="a Bluetooth device the kiosk has tried and failed to reach for this long: alerted. A cuff is "
        "reachable only while someone measures, so a quiet evening is not this; a station sees residents daily",
    )
    heartbeat_missed_s: float = Field(
        default=180, gt=0, description="no message from an online kiosk for this long: offline (3 telemetry periods)"
    )
    backlog_records: int = Field(default=100, ge=0, description="a backlog counts as growing only above this")
    backlog_rising_reports: int = Field(default=3, ge=1, description="... and after this many growing reports in a row")
    backlog_oldest_age_s: float = Field(default=3600, gt=0, description="or when its oldest record is this old")
    runway_h: float = Field(
        default=RUNWAY_SHORT_H, gt=0,
        description="a kiosk whose undelivered records fill its outbox budget within this many hours at their "
        "current growth (its telemetry's runway_h): alerted; cleared when its runway is this long again or unbounded",
    )
    telemetry_fresh_s: float = Field(
        default=300, gt=0, description="telemetry older than this on arrival (a drained backlog) says nothing of now"
    )
    sequence_gap_grace_s: float = Field(
        default=900, gt=0, description="a missing sequence number is a gap once a later one arrived this long ago"
    )


@dataclass(frozen=True, slots=True)
class Raise:
    kind: AlertKind
    severity: Severity
    site: str
    kiosk: str
    about: str  # what it is about: "" for the kiosk itself, a device address, a pseudonym, a gap
    title: str  # one line in plain words, for the dashboard and the webhook
    title_zh: str  # the same line in Chinese, which the dashboard shows first
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Clear:
    kind: AlertKind
    site: str
    kiosk: str
    about: str
    at: datetime
    note: str


Signal = Raise | Clear


# --- Readings -------------------------------------------------------------------------------


def reading_signals(message: UpstreamMessage, rules: AlertRules, guideline: BloodPressureGuideline) -> list[Raise]:
    """A dangerous reading. One open alert per resident (the pseudonym) so a doctor sees "three
    dangerous readings, the latest …", per reading when anonymous."""
    if message.topic.channel is not Channel.READINGS:
        return []
    problem, problem_zh, values = _danger(message, rules, guideline)
    if problem is None:
        return []
    payload = message.payload
    subject = getattr(payload, "subject", None)
    about = subject or f"message-{message.envelope.message_id}"
    suspect = getattr(payload, "suspect", [])
    # A suspect blood pressure raises nothing (the contract's rule); the other kinds still do,
    # marked, until their plausibility is part of the contract too.
    title = problem + (" (the kiosk marked it suspect: " + ", ".join(suspect) + ")" if suspect else "")
    title_zh = problem_zh + ("（自助机标记为不可靠）" if suspect else "")
    return [
        Raise(
            AlertKind.DANGEROUS_READING,
            Severity.CRITICAL,
            message.topic.site,
            message.topic.kiosk,
            about,
            title,
            title_zh,
            message.envelope.kiosk_time,
            {"message_id": str(message.envelope.message_id), "kind": message.topic.name, "subject": subject, **values},
        )
    ]


def _danger(
    message: UpstreamMessage, rules: AlertRules, guideline: BloodPressureGuideline
) -> tuple[str | None, str, dict[str, Any]]:
    """(what is dangerous, in English and in Chinese, and the values), or (None, "", {})."""
    payload = message.payload
    kind = message.topic.name
    if kind == ReadingKind.BLOOD_PRESSURE and isinstance(payload, BloodPressurePayload):
        line = dangerous_line(guideline, rules.dangerous_blood_pressure)
        if is_dangerous(payload.systolic, payload.diastolic, payload.unit, line, suspect=payload.suspect):
            systolic = None if payload.systolic is None else to_mmhg(payload.systolic, payload.unit)
            diastolic = None if payload.diastolic is None else to_mmhg(payload.diastolic, payload.unit)
            values = {"systolic_mmhg": _round(systolic), "diastolic_mmhg": _round(diastolic)}
            pressures = f"{_mmhg(systolic)}/{_mmhg(diastolic)} mmHg"
            return f"very high blood pressure {pressures}", f"血压很高：{pressures}", values
    elif kind == ReadingKind.GLUCOSE and isinstance(payload, GlucosePayload) and payload.glucose_concentration is not None:
        mmol = payload.glucose_concentration if payload.unit == "mmol/L" else payload.glucose_concentration / 18.0156
        values = {"glucose_mmol_l": _round(mmol, 1)}
        if mmol < rules.low_glucose_mmol_l:
            return f"very low blood glucose {mmol:.1f} mmol/L", f"血糖很低：{mmol:.1f} mmol/L", values
        if mmol >= rules.high_glucose_mmol_l:
            return f"very high blood glucose {mmol:.1f} mmol/L", f"血糖很高：{mmol:.1f} mmol/L", values
    elif kind == ReadingKind.SPO2 and isinstance(payload, Spo2Payload) and payload.spo2 is not None:
        if payload.spo2 < rules.low_spo2_percent:
            return f"low blood oxygen {payload.spo2:.0f}%", f"血氧偏低：{payload.spo2:.0f}%", {"spo2_percent": payload.spo2}
    elif kind == ReadingKind.TEMPERATURE and isinstance(payload, TemperaturePayload) and payload.temperature is not None:
        celsius = payload.temperature if payload.unit == "Cel" else (payload.temperature - 32) / 1.8
        if celsius >= rules.high_temperature_c:
            return f"high fever {celsius:.1f} °C", f"高烧：{celsius:.1f} °C", {"temperature_c": _round(celsius, 1)}
    return None, "", {}


def _mmhg(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def _round(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)


# --- Events -----------------------------------------------------------------------------------


def event_signals(message: UpstreamMessage) -> list[Raise]:
    """Someone at a kiosk called for staff: one open alert per kiosk (a second call while it is
    open counts an occurrence), for the site's station staff and the technicians, until one of
    them resolves it. Not about a resident: the event names only the screen."""
    payload = message.payload
    if message.topic.channel is not Channel.EVENTS or message.topic.name != EventType.STAFF_CALLED:
        return []
    assert isinstance(payload, StaffCalledEvent)
    area, area_zh = _screen_area(payload.screen)
    return [
        Raise(AlertKind.STAFF_CALLED, Severity.WARNING, message.topic.site, message.topic.kiosk, "",
              f"someone at the kiosk is calling for staff ({area}: the {payload.screen} screen)",
              f"自助机上有人呼叫工作人员（{area_zh}）", message.envelope.kiosk_time,
              {"screen": payload.screen, "call_id": str(payload.call_id)})
    ]


# The kiosk's screens are named by the service they belong to (edge_agent/screen/static/index.html:
# bp-cuff, laundry-card, ...): what staff walk over to, in words, for a screen added later too.
_SCREEN_AREAS: Final = (("bp", "blood pressure", "量血压"), ("relay", "relay station", "爱心接力站"),
                        ("laundry", "laundry room", "洗衣房"), ("home", "start screen", "首页"))


def _screen_area(screen: str) -> tuple[str, str]:
    for prefix, area, area_zh in _SCREEN_AREAS:
        if screen == prefix or screen.startswith(prefix + "-"):
            return area, area_zh
    return "another screen", "其他页面"


# --- Devices ----------------------------------------------------------------------------------


def device_signals(
    site: str,
    kiosk: str,
    address: str,
    at: datetime,
    *,
    rules: AlertRules,
    state: str | None = None,
    error_code: int | None = None,
    error_text: dict[str, str] | None = None,
    link: str | None = None,
    battery_percent: int | None = None,
    model: str | None = None,
    state_reported: bool = False,
    link_reported: bool = False,
) -> list[Signal]:
    signals: list[Signal] = []
    name, name_zh = f"{model or 'device'} {address}", f"{model or '设备'} {address}"
    if state_reported:
        if state == "fault" or error_code is not None:
            texts = error_text or {}
            meaning = texts.get("en") or texts.get("zh") or "no description"
            meaning_zh = texts.get("zh") or texts.get("en") or "无说明"
            code = f"error {error_code}: {meaning}" if error_code is not None else "in fault"
            code_zh = f"故障码 {error_code}：{meaning_zh}" if error_code is not None else "故障"
            signals.append(
                Raise(AlertKind.DEVICE_FAULT, Severity.WARNING, site, kiosk, address, f"{name}: {code}",
                      f"{name_zh}：{code_zh}", at,
                      {"state": state, "error_code": error_code, "error_text": error_text})
            )
        else:
            signals.append(Clear(AlertKind.DEVICE_FAULT, site, kiosk, address, at, f"{name} is {state} again"))
    if link_reported and link is not None:
        if link == "offline":
            signals.append(
                Raise(AlertKind.DEVICE_OFFLINE, Severity.WARNING, site, kiosk, address,
                      f"{name} does not answer on its line", f"{name_zh} 在线路上没有应答", at, {"link": link})
            )
        elif link in ("online", "degraded"):
            signals.append(Clear(AlertKind.DEVICE_OFFLINE, site, kiosk, address, at, f"{name} answers again"))
    if link_reported and battery_percent is not None:
        if battery_percent <= rules.low_battery_percent:
            signals.append(
                Raise(AlertKind.LOW_BATTERY, Severity.WARNING, site, kiosk, address,
                      f"{name}: battery at {battery_percent}%", f"{name_zh}：电量 {battery_percent}%", at,
                      {"battery_percent": battery_percent})
            )
        elif battery_percent >= rules.battery_recovered_percent:
            signals.append(Clear(AlertKind.LOW_BATTERY, site, kiosk, address, at, f"battery at {battery_percent}%"))
    return signals


# What a person does about each device error alert, in both of the dashboard's languages
# (cloud_bridge/dashboard/static/js/i18n.js picks one, as it does a laundry map's error text).
BOND_LOST_ACTION: Final = {
    "zh": "血压计等蓝牙设备的配对丢失：请到自助机上重新配对（按住屏幕上方的时钟3秒，输入技术人员密码，"
          "在“配对新血压计”里点“重新配对”；设备先进入配对模式），配对后自动恢复",
    "en": "the device has lost its pairing with the kiosk: pair it again at the kiosk (hold the clock at the top "
          "of its screen for 3 s, type the technician PIN, and tap it under 'pair again' on 'Pair a new cuff'; put "
          "the device in pairing mode first); the alert clears on its next good session",
}
UNREACHABLE_ACTION: Final = {
    "zh": "自助机连不上该设备：请检查设备电源和电池、与自助机的距离（几米内、无遮挡），以及设备是否被别的手机或设备连着",
    "en": "the kiosk cannot reach the device: check its power and batteries, its distance from the kiosk (a few "
          "metres, nothing in between), and that no phone or other device holds its connection",
}


def device_error_signals(row: DeviceBase, at: datetime, rules: AlertRules) -> list[Signal]:
    """A Bluetooth device that refuses for want of a bond, or that the kiosk has failed to
    reach for `device_unreachable_s`, from what the kiosk's telemetry at `at` says (the row
    as the report left it). Both clear with the device's next successful session."""
    site, kiosk, address = row.site, row.kiosk, row.address
    name, name_zh = f"{row.model or 'device'} {address}", f"{row.model or '设备'} {address}"
    counts = row.error_counts or {}
    if row.failing_since is None:
        return [Clear(AlertKind.DEVICE_BOND_LOST, site, kiosk, address, at, f"{name} works again"),
                Clear(AlertKind.DEVICE_UNREACHABLE, site, kiosk, address, at, f"{name} works again")]
    data = {"last_error_code": row.last_error_code, "last_error_message": row.last_error_message,
            "failing_since": row.failing_since.isoformat(), "error_counts": counts}
    signals: list[Signal] = []
    bond = sorted(code for code in counts if code in BOND_ERRORS)
    if bond:
        lost = DeviceErrorCode.BLE_BOND_LOST in bond
        what, what_zh = ("lost its pairing", "配对丢失") if lost else ("is not paired", "未配对")
        signals.append(Raise(AlertKind.DEVICE_BOND_LOST, Severity.WARNING, site, kiosk, address,
                             f"{name} {what}: pair it again at the kiosk", f"{name_zh} {what_zh}：请在自助机上重新配对", at,
                             data | {"action": BOND_LOST_ACTION}))
    failing_s = (at - row.failing_since).total_seconds()
    if counts and set(counts) <= UNREACHABLE_ERRORS and failing_s >= rules.device_unreachable_s:
        signals.append(Raise(AlertKind.DEVICE_UNREACHABLE, Severity.WARNING, site, kiosk, address,
                             f"{name} not reached for {failing_s / 3600:.0f} h: check its power, batteries and "
                             "distance from the kiosk",
                             f"{name_zh} 已 {failing_s / 3600:.0f} 小时连不上：请检查电源、电池和与自助机的距离", at,
                             data | {"action": UNREACHABLE_ACTION}))
    return signals


# --- Kiosks ----------------------------------------------------------------------------------


def status_signals(site: str, kiosk: str, state: KioskState, reason: str, at: datetime, *, planned: bool) -> list[Signal]:
    """`planned`: the agent said goodbye itself (a stop, a restart, a reload), which someone
    chose; a Last Will is a kiosk lost. The alert stays, to be seen, but is not critical."""
    if state is KioskState.OFFLINE:
        title_zh = "终端离线：正常关闭（计划内的停止或重启）" if planned else "终端离线：连接意外中断"
        return [Raise(AlertKind.KIOSK_OFFLINE, Severity.WARNING if planned else Severity.CRITICAL, site, kiosk, "",
                      f"kiosk offline: {reason}", title_zh, at, {"reason": reason, "planned": planned})]
    return [Clear(AlertKind.KIOSK_OFFLINE, site, kiosk, "", at, "the kiosk connected again")]


def telemetry_signals(after: KioskBase, received_at: datetime, rules: AlertRules) -> list[Signal]:
    """Backlog and outbox alerts from the kiosk's newest telemetry, if it speaks of now."""
    if after.telemetry_at is None or (received_at - after.telemetry_at).total_seconds() > rules.telemetry_fresh_s:
        return []
    site, kiosk, at = after.site, after.kiosk, after.telemetry_at
    signals: list[Signal] = []
    records = after.backlog_records or 0
    oldest = after.backlog_oldest_age_s
    growing = records > rules.backlog_records and after.backlog_rising >= rules.backlog_rising_reports
    stale = oldest is not None and oldest >= rules.backlog_oldest_age_s
    if growing or stale:
        why = f"{records} records waiting" + (f", the oldest for {oldest / 60:.0f} min" if oldest is not None else "")
        why_zh = f"{records} 条等待发送" + (f"，最早的已等 {oldest / 60:.0f} 分钟" if oldest is not None else "")
        signals.append(Raise(AlertKind.BACKLOG_GROWING, Severity.WARNING, site, kiosk, "",
                             f"kiosk's backlog is not draining: {why}", f"终端积压的数据发不出去：{why_zh}", at,
                             {"records": records, "oldest_age_s": oldest}))
    elif records <= rules.backlog_records and not stale:
        signals.append(Clear(AlertKind.BACKLOG_GROWING, site, kiosk, "", at, f"backlog down to {records}"))
    signals.append(runway_signal(after, at, rules))
    signals.append(_alarm_signal(AlarmCondition.OUTBOX_FULL, site, kiosk, at, raised=after.health_over_budget))
    return signals


# What a person does about a short runway, in both of the dashboard's languages.
RUNWAY_ACTION: Final = {
    "zh": "终端的数据送不出去，缓存按当前速度将在一天内占满预算，之后最早的事件和遥测记录会被删除（健康读数保留）："
          "请检查终端的网络和消息服务器连接、云端服务是否在运行并确认收到数据；必要时在配置中提高 outbox.budget_mb",
    "en": "the kiosk's records are not being delivered and its outbox fills its disk budget within a day at this rate; "
          "then its oldest events and telemetry are evicted (health readings are kept): check the kiosk's network "
          "and broker connection and that the bridge is running and confirming; if need be raise outbox.budget_mb",
}


def runway_signal(after: KioskBase, at: datetime, rules: AlertRules) -> Signal:
    """Raised while the kiosk says its outbox fills its budget within `rules.runway_h` hours;
    cleared when it says longer, or unbounded (not growing), or nothing (an older kiosk)."""
    site, kiosk, hours = after.site, after.kiosk, after.runway_h
    if hours is None or hours >= rules.runway_h:
        note = "outbox not growing" if hours is None else f"outbox runway {hours:.0f} h"
        return Clear(AlertKind.OUTBOX_RUNWAY_SHORT, site, kiosk, "", at, note)
    return Raise(AlertKind.OUTBOX_RUNWAY_SHORT, Severity.WARNING, site, kiosk, "",
                 f"kiosk's outbox fills its disk budget in {hours:.1f} h at its current rate: get its records delivered",
                 f"终端缓存按当前速度 {hours:.1f} 小时后占满磁盘预算：请尽快让数据送达", at,
                 {"runway_h": hours, "growth_bytes_per_h": after.outbox_growth_bytes_per_h,
                  "outbox_bytes": after.outbox_bytes, "outbox_budget_bytes": after.outbox_budget_bytes,
                  "action": RUNWAY_ACTION})


# What each of a kiosk's alarm conditions opens (all critical: someone must go to the kiosk), and
# the note that closes it.
_ALARM_ALERTS: Final[dict[AlarmCondition, tuple[AlertKind, str, str, str]]] = {
    AlarmCondition.OUTBOX_FULL: (
        AlertKind.OUTBOX_FULL, "kiosk's outbox is full of health readings: it keeps them over its disk budget",
        "终端缓存已满，只剩健康读数：已超出磁盘预算，仍在保留", "outbox within its budget"),
    AlarmCondition.DISK_FULL: (
        AlertKind.DISK_FULL, "kiosk's disk is full: it cannot save another reading",
        "终端磁盘已满：无法再保存读数", "the kiosk's disk has room again"),
    AlarmCondition.CANNOT_SAVE: (
        AlertKind.CANNOT_SAVE, "kiosk cannot save readings: they are being lost",
        "终端无法保存读数：读数正在丢失", "the kiosk saves again"),
}


def _alarm_signal(condition: AlarmCondition, site: str, kiosk: str, at: datetime, *, raised: bool,
                  data: dict[str, Any] | None = None) -> Signal:
    kind, title, title_zh, cleared = _ALARM_ALERTS[condition]
    if raised:
        return Raise(kind, Severity.CRITICAL, site, kiosk, "", title, title_zh, at, data or {})
    return Clear(kind, site, kiosk, "", at, cleared)


def alarm_signals(site: str, kiosk: str, alarms: Alarms) -> list[Signal]:
    """A kiosk's retained alarms (docs/protocol.md, Alarms): the set of what holds now, so each
    condition listed is raised, and each left out is cleared."""
    listed = {alarm.condition: alarm for alarm in alarms.alarms}
    signals = []
    for condition in AlarmCondition:
        alarm = listed.get(condition)
        if alarm is None:
            signals.append(_alarm_signal(condition, site, kiosk, alarms.at, raised=False))
        else:
            signals.append(_alarm_signal(condition, site, kiosk, alarm.since, raised=True,
                                         data={"detail": alarm.message}))
    return signals


def heartbeat_signals(kiosks: Iterable[KioskBase], now: datetime, rules: AlertRules) -> list[Signal]:
    """An online kiosk silent for too long is offline, whatever its retained status says (a
    network cut may leave the broker holding its session for a while)."""
    signals: list[Signal] = []
    for kiosk in kiosks:
        silent_s = (now - kiosk.last_seen_at).total_seconds()
        if kiosk.status != KioskState.OFFLINE and silent_s >= rules.heartbeat_missed_s:
            reason = f"no message for {silent_s / 60:.0f} min"
            signals.append(Raise(AlertKind.KIOSK_OFFLINE, Severity.CRITICAL, kiosk.site, kiosk.kiosk, "",
                                 f"kiosk offline: {reason}", f"终端离线：已 {silent_s / 60:.0f} 分钟没有消息", now,
                                 {"reason": reason}))
        elif kiosk.status == KioskState.ONLINE and silent_s < rules.heartbeat_missed_s:
            signals.append(Clear(AlertKind.KIOSK_OFFLINE, kiosk.site, kiosk.kiosk, "", now, "the kiosk is heard again"))
    return signals


# --- A bridge worker's connection to the broker -----------------------------------------------

# Alerts about a bridge worker itself, not a kiosk: this "site" is no kiosk's (not a slug: the
# '_' leads, as in the workers' presence topics doorstep/v1/_bridge/{client_id}), so only
# roles over every site see them, and `about` names the worker's client id.
BRIDGE_SITE = "_bridge"
# MQTT 5.0, 3.14.2.1: the DISCONNECT a broker sends the client whose session another client
# took over (EMQX sends it). Mosquitto 2.0.11 sends none: it closes the connection, and paho
# reports 0x80 "Unspecified error" (measured; src/handle_connect.c, do_disconnect), so there a
# takeover is seen as disconnects that keep coming.
SESSION_TAKEN_OVER = 0x8E
# Unexpected disconnects within the window that make an alert. A broker restart or one network
# cut is one; two clients holding one session take it from each other at every reconnect
# (measured before issue 16: the bridge was disconnected 6 times in 12 s).
DISCONNECTS_ALERTING = 3
DISCONNECTS_WINDOW_S = 60.0


@dataclass
class DisconnectWatch:
    """Counts a bridge worker's unexpected disconnects and says when they make an alert: at once
    for "Session taken over", or when DISCONNECTS_ALERTING come within DISCONNECTS_WINDOW_S."""

    client_id: str
    limit: int = DISCONNECTS_ALERTING
    window_s: float = DISCONNECTS_WINDOW_S
    _times: list[float] = field(default_factory=list)

    def disconnected(self, reason_code: int, reason: str, monotonic_s: float, at: datetime) -> Raise | None:
        self._times = [t for t in self._times if monotonic_s - t < self.window_s] + [monotonic_s]
        data = {"client_id": self.client_id, "reason": reason, "reason_code": reason_code,
                "disconnects_in_window": len(self._times), "window_s": self.window_s}
        if reason_code == SESSION_TAKEN_OVER:
            return Raise(AlertKind.BRIDGE_SESSION_TAKEN_OVER, Severity.CRITICAL, BRIDGE_SITE, "", self.client_id,
                         f"bridge worker {self.client_id}: another client connected with its client id and took "
                         "over its session (its credentials are used elsewhere: a second worker with the same "
                         "account, or stolen)",
                         f"云端服务 {self.client_id} 的会话被另一个使用同一身份的客户端接管（同一账号的第二个服务，或账号被盗用）",
                         at, data)
        if len(self._times) >= self.limit:
            return Raise(AlertKind.BRIDGE_DISCONNECTS, Severity.CRITICAL, BRIDGE_SITE, "", self.client_id,
                         f"bridge worker {self.client_id}: disconnected from the broker {len(self._times)} times in "
                         f"{self.window_s:.0f} s (last: {reason}); another client using its account takes its "
                         "session at every reconnect, or its link to the broker is failing",
                         f"云端服务 {self.client_id} 在 {self.window_s:.0f} 秒内与消息服务器断开 {len(self._times)} 次："
                         "另一个使用同一账号的客户端每次重连都抢走会话，或与消息服务器的网络不稳", at, data)
        return None

