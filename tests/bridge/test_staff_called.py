"""Issue 18, item 9, at the bridge: a kiosk's staff_called event becomes a warning alert for the
kiosk's station (one open per kiosk), the telemetry's speech fields are stored, and what a kiosk
from before both sends is stored as it was. Through the bridge's own commit (gulp.py) (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.alerts import Alert
from cloud_bridge.decode import Inbound
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.store import DeadLetter, Event, Telemetry
from contract.payloads import RelayCheckinEvent, StaffCalledEvent
from contract.topics import EventType
from tests.bridge.wire_kiosk import WireKiosk, telemetry
from tests.support import KIOSK, SITE

NOW = datetime(2026, 11, 26, 1, 12, tzinfo=UTC)
KIOSK_WIRE = WireKiosk(site=SITE, kiosk=KIOSK)


def commit(engine: Engine, *items: Inbound, at: datetime = NOW) -> None:
    commit_gulp(engine, list(items), rules=AlertRules(), notify=False, received_at=at)


def alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert).order_by(Alert.id)))


def call(screen: str, at: datetime) -> Inbound:
    return KIOSK_WIRE.event(EventType.STAFF_CALLED, StaffCalledEvent(call_id=uuid.uuid4(), screen=screen), at=at)


def test_a_call_for_staff_opens_one_warning_alert_per_kiosk_in_both_languages(bridge_engine: Engine) -> None:
    first = call("bp-cuff", NOW)
    commit(bridge_engine, first)
    commit(bridge_engine, first)  # re-sent (its ack was lost): the same message, nothing more
    [alert] = alerts(bridge_engine)
    assert (alert.kind, alert.severity, alert.state, alert.site, alert.kiosk, alert.occurrences) == (
        "staff_called", "warning", "open", SITE, KIOSK, 1)
    assert alert.title == "someone at the kiosk is calling for staff (blood pressure: the bp-cuff screen)"
    assert alert.data["title_zh"] == "自助机上有人呼叫工作人员（量血压）"
    commit(bridge_engine, call("some-new-screen", NOW + timedelta(minutes=6)))
    [alert] = alerts(bridge_engine)
    assert alert.occurrences == 2 and alert.data["title_zh"] == "自助机上有人呼叫工作人员（其他页面）"
    with Session(bridge_engine) as session:
        assert sorted(e.payload["screen"] for e in session.exec(select(Event))) == ["bp-cuff", "some-new-screen"]


def test_the_speech_fields_of_telemetry_are_stored_and_an_older_kiosks_messages_are_unaffected(
    bridge_engine: Engine,
) -> None:
    silent = telemetry().model_copy(update={"speech_ok": False, "speech_error": "no sound: aplay failed (1)"})
    # Without speech_ok and speech_error, as a kiosk from before sends it.
    older = {k: v for k, v in telemetry().model_dump(mode="json").items() if not k.startswith("speech_")}
    envelope = {"schema_version": 1, "message_id": str(uuid.uuid4()), "seq": 1000,
                "kiosk_time": (NOW - timedelta(minutes=1)).isoformat(), "payload": older}
    checkin = RelayCheckinEvent(visit_id=uuid.uuid4(), subject="ab" * 32, method="phone_last4", inside=1)
    commit(bridge_engine, Inbound(KIOSK_WIRE.topics.telemetry, json.dumps(envelope).encode()),
           KIOSK_WIRE.event(EventType.RELAY_CHECKIN, checkin, at=NOW), KIOSK_WIRE.telemetry(silent, at=NOW))
    with Session(bridge_engine) as session:
        assert list(session.exec(select(DeadLetter))) == []
        stored = sorted(session.exec(select(Telemetry)), key=lambda r: r.kiosk_time)
        assert [r.payload.get("speech_ok") for r in stored] == [None, False]
        assert stored[1].payload["speech_error"] == "no sound: aplay failed (1)"
        assert [e.type for e in session.exec(select(Event))] == ["relay_checkin"]
    assert alerts(bridge_engine) == []
