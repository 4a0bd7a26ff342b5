"""Rollouts through the API, advanced as a worker's job advances them, from kiosks' telemetry
stored as ingest stores it (commit_gulp): who is asked, when, and what stops it."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from broker_admin.mosquitto import MosquittoProcess, free_port
from cloud_bridge import rollouts
from cloud_bridge.accounts import AuditEntry
from cloud_bridge.alert_rules import AlertRules
from cloud_bridge.api import BridgeContext, create_app
from cloud_bridge.commands import Command
from cloud_bridge.decode import Inbound
from cloud_bridge.gulp import commit_gulp
from cloud_bridge.releases import Release
from cloud_bridge.rollouts import Delivery
from cloud_bridge.settings import DEVELOPMENT_SECRET
from contract.commands import CommandName, CommandOutcome, CommandResultPayload, decode_command
from contract.software import SoftwareReport, UpdateReport, UpdateSoftwareArgs, UpdateState
from contract.status import KioskState
from contract.topics import QOS_RELIABLE
from runtime.mqtt import make_client
from tests.bridge.release_files import bundle_bytes
from tests.bridge.wire_kiosk import WireKiosk, telemetry
from tests.support import ServedApp, api_token, broker_settings, wait_for

HOME, AWAY = "home-site", "away-site"
OLD, NEW = "0.1.0", "0.2.0"
DELIVERY = Delivery("https://bridge.example.org", timedelta(hours=24))


@dataclass
class Fleet:
    engine: Engine
    api: ServedApp
    kiosks: dict[str, WireKiosk] = field(default_factory=dict)
    clock: Iterator[datetime] = field(default_factory=lambda: (datetime.now(UTC) + timedelta(seconds=i) for i in itertools.count()))

    def report(self, name: str, running: str, state: UpdateState | None = None, rollout_id: int | None = None,
               reason: str | None = None) -> None:
        """The kiosk's telemetry, as it publishes it: what it runs, and its newest update."""
        now = next(self.clock)
        update = None if state is None else UpdateReport(version=NEW, state=state, reason=reason, rollout_id=rollout_id, at=now)
        software = SoftwareReport(version=running, previous_version=OLD if running == NEW else None, update=update)
        message = self.kiosks[name].telemetry(telemetry().model_copy(update={"software": software}), at=now)
        commit_gulp(self.engine, [message], rules=AlertRules(), notify=False, received_at=now)

    def advance(self) -> list[str]:
        return rollouts.advance_all(self.engine, DELIVERY, next(self.clock))

    def asked(self) -> dict[str, dict[str, Any]]:
        """The update_software commands created, by kiosk."""
        with Session(self.engine) as session:
            rows = session.exec(select(Command).where(Command.command == CommandName.UPDATE_SOFTWARE.value)).all()
            return {f"{c.site}/{c.kiosk}": c.args for c in rows}

    def states(self, rollout_id: int) -> dict[str, str]:
        items = self.api.get(f"/api/v1/rollouts/{rollout_id}/kiosks").body["items"]
        return {f"{k['site']}/{k['kiosk']}": k["state"] for k in items}

    def start(self, **request: Any) -> dict[str, Any]:
        answer = self.api.post("/api/v1/rollouts", {"version": NEW} | request)
        assert answer.status == 201, answer
        return dict(answer.body)


@pytest.fixture
def fleet(bridge_engine: Engine, tmp_path: Path) -> Iterator[Fleet]:
    """Five kiosks running OLD (three at HOME, two AWAY) and a sixth at HOME on NEW already;
    release NEW uploaded."""
    now = datetime.now(UTC)
    kiosks = {f"{site}/kiosk-{n}": WireKiosk(site=site, kiosk=f"kiosk-{n}")
              for site, n in ((HOME, 1), (HOME, 2), (HOME, 3), (HOME, 4), (AWAY, 1), (AWAY, 2))}
    commit_gulp(bridge_engine, [k.status(KioskState.ONLINE, now) for k in kiosks.values()], rules=AlertRules(),
                notify=False, received_at=now)
    with Session(bridge_engine) as session:
        session.add(Release(version=NEW, sha256="ab" * 32, size_bytes=12345, uploaded_by="tech", uploaded_at=now))
        session.commit()
    context = BridgeContext(bridge_engine, secret_key=DEVELOPMENT_SECRET, releases_dir=tmp_path, delivery=DELIVERY)
    with ServedApp(create_app(bridge_engine, context), token=api_token(bridge_engine, DEVELOPMENT_SECRET, "technician")) as api:
        made = Fleet(bridge_engine, api, kiosks)
        for name in kiosks:
            made.report(name, NEW if name == f"{HOME}/kiosk-4" else OLD)
        yield made


def test_a_site_rollout_asks_its_canary_first_and_the_rest_once_it_is_healthy(fleet: Fleet) -> None:
    rollout = fleet.start(site=HOME)
    rid = rollout["id"]
    assert (rollout["status"], rollout["phase"], rollout["total"], rollout["canaries"]) == ("active", "canary", 4, 1)
    assert rollout["counts"] == {"asked": 1, "waiting": 2, "skipped": 1}  # kiosk-4 already runs NEW
    [canary] = fleet.asked()
    assert fleet.asked()[canary] == {"version": NEW, "url": f"https://bridge.example.org/api/v1/releases/{NEW}/bundle",
                                     "sha256": "ab" * 32, "size": 12345, "rollout_id": rid}
    assert canary.startswith(HOME)

    fleet.report(canary, OLD, UpdateState.DOWNLOADING, rid)
    fleet.advance()
    assert fleet.states(rid)[canary] == "downloading" and len(fleet.asked()) == 1  # the rest wait
    fleet.report(canary, OLD, UpdateState.CHECKING, rid)
    fleet.report(f"{HOME}/kiosk-4", NEW, UpdateState.HEALTHY, None)  # another rollout's report: not this one's
    fleet.advance()
    assert len(fleet.asked()) == 1
    fleet.report(canary, NEW, UpdateState.HEALTHY, rid)
    fleet.advance()
    assert set(fleet.asked()) == {f"{HOME}/kiosk-1", f"{HOME}/kiosk-2", f"{HOME}/kiosk-3"}  # not AWAY, not kiosk-4
    assert fleet.api.get(f"/api/v1/rollouts/{rid}").body["phase"] == "rest"
    for name in fleet.asked():
        fleet.report(name, NEW, UpdateState.HEALTHY, rid)
    fleet.advance()
    done = fleet.api.get(f"/api/v1/rollouts/{rid}").body
    assert (done["status"], done["counts"], done["finished_at"] is not None) == ("completed", {"healthy": 3, "skipped": 1}, True)
    kiosk = fleet.api.get(f"/api/v1/kiosks/{HOME}/kiosk-2").body
    assert (kiosk["software_version"], kiosk["update_state"], kiosk["update_rollout_id"]) == (NEW, "healthy", rid)
    assert fleet.advance() == []  # a finished rollout asks no one


def test_a_list_and_a_share_of_the_fleet_choose_their_kiosks(fleet: Fleet) -> None:
    listed = fleet.start(kiosks=[f"{AWAY}/kiosk-2", f"{HOME}/kiosk-3"], canaries=2)
    assert set(fleet.states(listed["id"])) == {f"{AWAY}/kiosk-2", f"{HOME}/kiosk-3"}
    assert set(fleet.asked()) == {f"{AWAY}/kiosk-2", f"{HOME}/kiosk-3"}  # both are canaries
    # A kiosk in an unfinished rollout is not in two at once; an unknown one is refused.
    assert fleet.api.post("/api/v1/rollouts", {"version": NEW, "kiosks": [f"{HOME}/kiosk-3"]}).status == 409
    assert fleet.api.post("/api/v1/rollouts", {"version": NEW, "kiosks": [f"{HOME}/kiosk-9"]}).status == 422
    assert fleet.api.post("/api/v1/rollouts", {"version": "9.9.9", "site": HOME}).status == 422
    assert fleet.api.post("/api/v1/rollouts", {"version": NEW, "site": HOME, "percent": 5}).status == 422
    assert fleet.api.post(f"/api/v1/rollouts/{listed['id']}/abort").status == 200

    share = fleet.start(percent=50, canary_percent=50)
    chosen = fleet.states(share["id"])
    assert len(chosen) == 3  # half of six kiosks
    # The same version's order every time: a larger share takes the smaller one's kiosks first.
    assert fleet.api.post(f"/api/v1/rollouts/{share['id']}/abort").status == 200
    wider = fleet.start(percent=100)
    assert set(chosen) < set(fleet.states(wider["id"]))
    with Session(fleet.engine) as session:
        audited = session.exec(select(AuditEntry).where(AuditEntry.action == "rollout").order_by(col(AuditEntry.id))).all()
    assert [(e.result, e.detail["operation"]) for e in audited] == [
        ("ok", "start"), ("refused", "start"), ("refused", "start"), ("refused", "start"), ("ok", "abort"),
        ("ok", "start"), ("ok", "abort"), ("ok", "start")]


def test_failures_over_the_share_pause_it_and_a_resume_accepts_those_so_far(fleet: Fleet) -> None:
    rid = fleet.start(site=HOME, canaries=2, max_failure_share=0.25)["id"]
    first, second = sorted(fleet.asked())
    fleet.report(first, OLD, UpdateState.ROLLED_BACK, rid, reason="health check: the broker did not answer in 120 s")
    fleet.advance()
    paused = fleet.api.get(f"/api/v1/rollouts/{rid}").body
    assert paused["status"] == "paused" and "1 of the 2 kiosks asked failed" in paused["paused_reason"]
    assert [(f["site"] + "/" + f["kiosk"], f["state"], f["reason"]) for f in paused["failures"]] == [
        (first, "rolled_back", "health check: the broker did not answer in 120 s")]
    fleet.report(second, NEW, UpdateState.HEALTHY, rid)
    fleet.advance()
    assert len(fleet.asked()) == 2  # paused: the rest wait
    assert fleet.api.get(f"/api/v1/rollouts/{rid}").body["counts"] == {"rolled_back": 1, "healthy": 1, "waiting": 1, "skipped": 1}

    assert fleet.api.post(f"/api/v1/rollouts/{rid}/resume").body["status"] == "active"
    fleet.advance()
    [rest] = set(fleet.asked()) - {first, second}
    assert fleet.api.get(f"/api/v1/rollouts/{rid}").body["status"] == "active"  # the accepted failure alone
    fleet.report(rest, OLD, UpdateState.REFUSED, rid, reason="signature does not verify")
    fleet.advance()
    again = fleet.api.get(f"/api/v1/rollouts/{rid}").body
    assert again["status"] == "paused" and "2 of the 3 kiosks asked failed" in again["paused_reason"]


def test_pause_resume_and_abort_by_hand(fleet: Fleet) -> None:
    rid = fleet.start(site=HOME)["id"]
    [canary] = fleet.asked()
    assert fleet.api.post(f"/api/v1/rollouts/{rid}/pause").body["status"] == "paused"
    assert fleet.api.post(f"/api/v1/rollouts/{rid}/pause").status == 409
    fleet.report(canary, NEW, UpdateState.HEALTHY, rid)
    fleet.advance()
    assert len(fleet.asked()) == 1 and fleet.states(rid)[canary] == "healthy"  # progress folds, no one new is asked
    assert fleet.api.post(f"/api/v1/rollouts/{rid}/resume").body["status"] == "active"
    fleet.advance()
    assert len(fleet.asked()) == 3

    other = fleet.start(site=AWAY)
    [away_canary] = set(fleet.asked()) - {f"{HOME}/kiosk-{n}" for n in (1, 2, 3)}
    aborted = fleet.api.post(f"/api/v1/rollouts/{other['id']}/abort").body
    assert (aborted["status"], aborted["counts"]) == ("aborted", {"asked": 1, "cancelled": 1})
    assert fleet.api.post(f"/api/v1/rollouts/{other['id']}/resume").status == 409
    fleet.report(away_canary, NEW, UpdateState.HEALTHY, other["id"])
    fleet.advance()
    assert len(fleet.asked()) == 4  # aborted: never asked again
    assert fleet.api.get("/api/v1/rollouts", status="aborted").body["total"] == 1


def test_a_kiosk_that_refuses_the_command_fails_with_its_reason(fleet: Fleet) -> None:
    """A kiosk from before software updates answers update_software as an unknown command."""
    rid = fleet.start(kiosks=[f"{AWAY}/kiosk-1"], max_failure_share=1)["id"]
    with Session(fleet.engine) as session:
        request_id = session.exec(select(Command.request_id)).one()
    kiosk = fleet.kiosks[f"{AWAY}/kiosk-1"]
    answer = CommandResultPayload(request_id=request_id, command="update_software", outcome=CommandOutcome.REFUSED,
                                  detail="unknown command update_software")
    commit_gulp(fleet.engine, [Inbound(kiosk.topics.command_result(request_id), kiosk.envelope(answer))],
                rules=AlertRules(), notify=False, received_at=datetime.now(UTC))
    fleet.advance()
    body = fleet.api.get(f"/api/v1/rollouts/{rid}").body
    assert body["status"] == "completed"
    assert [(f["state"], f["reason"]) for f in body["failures"]] == [
        ("refused", "the update_software command refused: unknown command update_software")]


# --- End to end: a real broker, a real bridge worker, kiosks on MQTT ----------------------------


class MqttKiosk:
    """A kiosk on the wire: it takes its commands from the broker, downloads the bundle a command
    names from the bridge over HTTP (no token, as a kiosk does), checks its hash, and reports
    the update in its telemetry. The install itself is the kiosk side's (edge_agent); here the
    kiosk says healthy once the bytes are right."""

    def __init__(self, broker: MosquittoProcess, wire: WireKiosk) -> None:
        self.wire = wire
        self.running = OLD
        self.downloaded: list[str] = []
        self.errors: list[str] = []
        self.client = make_client(f"rollout-{wire.site}-{wire.kiosk}", broker_settings(broker))
        self.client.on_message = lambda _c, _u, message: self._command(bytes(message.payload))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(wire.topics.command("+"), qos=QOS_RELIABLE)
        self.client.loop_start()

    def report(self, update: UpdateReport | None = None) -> None:
        """Published at QoS 1, not waited for: from paho's own thread (a command's callback) a
        wait would hold up the PUBACK it waits for."""
        software = SoftwareReport(version=self.running, update=update)
        body = self.wire.telemetry(telemetry().model_copy(update={"software": software})).body
        self.client.publish(self.wire.topics.telemetry, body, qos=QOS_RELIABLE)

    def _command(self, body: bytes) -> None:
        try:
            self._update(body)
        except Exception as error:  # paho swallows a callback's exception: the test shows it
            self.errors.append(repr(error))

    def _update(self, body: bytes) -> None:
        command = decode_command(body)
        args = UpdateSoftwareArgs.model_validate(command.args)
        with urllib.request.urlopen(args.url, timeout=10) as response:
            bundle = response.read()
        assert (hashlib.sha256(bundle).hexdigest(), len(bundle)) == (args.sha256, args.size)
        self.downloaded.append(args.url)
        self.running = args.version
        self.report(UpdateReport(version=args.version, state=UpdateState.HEALTHY, rollout_id=args.rollout_id,
                                 at=datetime.now(UTC)))

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_kiosks_telemetry_on_mqtt_moves_a_rollout_to_its_end(running_broker: MosquittoProcess, bridge_factory: Any,
                                                             tmp_path: Path) -> None:
    port = free_port()
    bridge = bridge_factory(running_broker, releases_dir=tmp_path / "releases", public_url=f"http://127.0.0.1:{port}")
    wait_for(lambda: bridge.ingest.connected, what="the bridge subscribed")
    kiosks = [MqttKiosk(running_broker, WireKiosk(site=HOME, kiosk=f"kiosk-{n}")) for n in (1, 2)]
    token = api_token(bridge.engine, DEVELOPMENT_SECRET, "technician")
    try:
        with ServedApp(create_app(bridge.engine, bridge.worker.context), token=token, port=port) as api:
            for kiosk in kiosks:
                kiosk.report()
            wait_for(lambda: api.get("/api/v1/kiosks", site=HOME).body["total"] == 2, what="both kiosks known")
            upload = api.request("PUT", f"/api/v1/releases/{NEW}", bundle_bytes(NEW), headers={"content-type": "application/x-tar"})
            assert upload.status == 201
            rid = api.post("/api/v1/rollouts", {"version": NEW, "site": HOME, "canaries": 1}).body["id"]

            def counts() -> dict[str, int]:
                return dict(api.get(f"/api/v1/rollouts/{rid}").body["counts"])

            wait_for(lambda: api.get(f"/api/v1/rollouts/{rid}").body["status"] == "completed", timeout=30,
                     what=f"completed: {counts()}, {[k.errors for k in kiosks]}")
            assert counts() == {"healthy": 2}
            # The second was asked only once the canary was healthy.
            canary, rest = sorted(api.get(f"/api/v1/rollouts/{rid}/kiosks").body["items"], key=lambda k: not k["canary"])
            assert canary["state_at"] <= rest["asked_at"]
            assert [len(k.downloaded) for k in kiosks] == [1, 1]
            versions = {k["kiosk"]: k["software_version"] for k in api.get("/api/v1/kiosks", site=HOME).body["items"]}
            assert versions == {"kiosk-1": NEW, "kiosk-2": NEW}
    finally:
        for kiosk in kiosks:
            kiosk.stop()


def test_two_workers_advancing_at_once_ask_each_kiosk_once(fleet: Fleet) -> None:
    """Every worker runs the rollouts job: two advancing the same new rollout together (the
    first holds its transaction open while the second starts) create one command per canary."""
    with Session(fleet.engine) as session:
        rollout = rollouts.start(session, version=NEW, kind=rollouts.TargetKind.SITE, target={"site": HOME}, canaries=2,
                                 canary_percent=None, max_failure_share=0.1, by="tech", now=datetime.now(UTC))
        session.commit()
        rid = rollout.id
    assert rid is not None
    first_asked = threading.Event()
    created: dict[str, list[str]] = {}

    def worker(name: str, hold_s: float) -> None:
        with Session(fleet.engine) as session:
            created[name] = rollouts.advance(session, rid, DELIVERY, datetime.now(UTC))
            first_asked.set()
            time.sleep(hold_s)
            session.commit()

    one = threading.Thread(target=worker, args=("one", 0.5))
    one.start()
    assert first_asked.wait(10)
    worker("two", 0)
    one.join(10)
    assert sorted(map(len, created.values())) == [0, 2]
    assert len(fleet.asked()) == 2
