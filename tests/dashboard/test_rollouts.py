"""Software updates in the dashboard: each kiosk's version in the fleet table and on its page,
and the rollouts view (progress per state, failures with the kiosks' reasons) whose pause,
resume and abort buttons a technician uses; kiosks report over a real broker to a real bridge."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.sync_api import Page, expect
from sqlmodel import Session

from cloud_bridge.releases import Release
from contract.software import SoftwareReport, UpdateReport, UpdateState
from tests.bridge.wire_kiosk import WireKiosk, telemetry
from tests.dashboard.conftest import SITE, Dashboard, WirePublisher
from tests.support import wait_for

OLD, NEW = "0.1.0", "0.2.0"


def report(wire: WirePublisher, kiosk: WireKiosk, running: str, state: UpdateState | None = None,
           rollout_id: int | None = None, reason: str | None = None) -> None:
    now = datetime.now(UTC)
    update = None if state is None else UpdateReport(version=NEW, state=state, reason=reason, rollout_id=rollout_id, at=now)
    software = SoftwareReport(version=running, previous_version=OLD if running == NEW else None, update=update)
    wire.send(kiosk, kiosk.telemetry(telemetry().model_copy(update={"software": software}), at=now))


def test_versions_show_and_a_technician_resumes_and_aborts_a_paused_rollout(
    dashboard: Dashboard, wire: WirePublisher, page: Page
) -> None:
    kiosks = [WireKiosk(site=SITE, kiosk=f"kiosk-{n}") for n in (1, 2, 3)]
    for kiosk in kiosks:
        report(wire, kiosk, OLD)
    api = dashboard.api
    wait_for(lambda: api.get("/api/v1/kiosks", site=SITE).body["total"] == 3, what="three kiosks")
    with Session(dashboard.bridge.engine) as session:
        session.add(Release(version=NEW, sha256="ab" * 32, size_bytes=40 * 1024 * 1024, notes="faster cuff pairing",
                            uploaded_by="tech", uploaded_at=datetime.now(UTC)))
        session.commit()
    started = api.post("/api/v1/rollouts", {"version": NEW, "site": SITE, "canaries": 2, "max_failure_share": 0.4})
    assert started.status == 201, started
    rid = started.body["id"]
    asked = {f"{i['site']}/{i['kiosk']}" for i in api.get(f"/api/v1/rollouts/{rid}/kiosks", state="asked").body["items"]}
    first, second = [k for k in kiosks if f"{k.site}/{k.kiosk}" in asked]
    report(wire, first, OLD, UpdateState.ROLLED_BACK, rid, "health check: outbox did not open in 60 s")
    report(wire, second, NEW, UpdateState.HEALTHY, rid)
    wait_for(lambda: api.get(f"/api/v1/rollouts/{rid}").body["status"] == "paused", what="paused by the bridge's job")

    dashboard.log_in(page, "tech")
    row = page.locator(f'[data-kiosk="{SITE}/{second.kiosk}"] [data-testid=software]')
    expect(row).to_contain_text(NEW)
    failed = page.locator(f'[data-kiosk="{SITE}/{first.kiosk}"] [data-testid=software]')
    expect(failed).to_contain_text(OLD)
    expect(failed).to_contain_text("已回滚")

    page.click("[data-nav=rollouts]")
    rollout = page.locator(f"[data-rollout='{rid}']")
    expect(rollout).to_have_attribute("data-status", "paused")
    expect(rollout.get_by_test_id("rollout-progress")).to_contain_text("2/3 台完成")
    expect(rollout.get_by_test_id("rollout-failures")).to_contain_text("health check: outbox did not open in 60 s")
    expect(rollout.get_by_test_id("rollout-status")).to_contain_text("1 of the 2 kiosks asked failed")
    expect(page.get_by_test_id("releases")).to_contain_text("faster cuff pairing")
    expect(page.locator("body")).not_to_contain_text("⟦")  # a label missing from js/i18n.js

    rollout.locator("[data-action=resume]").click()
    expect(rollout).to_have_attribute("data-status", "active")
    wait_for(lambda: api.get(f"/api/v1/rollouts/{rid}").body["counts"].get("asked") == 1, what="the third kiosk asked")
    rollout.locator("[data-action=abort]").click()
    assert api.get(f"/api/v1/rollouts/{rid}").body["status"] == "active"  # a second click confirms
    rollout.locator("[data-action=confirm-abort]").click()
    expect(rollout).to_have_attribute("data-status", "aborted")
    expect(rollout.locator("button")).to_have_count(0)

    page.goto(dashboard.url + f"#/kiosk/{SITE}/{first.kiosk}")
    expect(page.get_by_test_id("software")).to_contain_text("health check: outbox did not open in 60 s")
    audit = api.get("/api/v1/audit", action="rollout").body["items"]
    assert [a["detail"]["operation"] for a in reversed(audit)] == ["start", "resume", "abort"]
    assert [a["actor"] for a in audit[:2]] == ["tech", "tech"]


def test_station_staff_see_versions_but_no_rollouts(dashboard: Dashboard, wire: WirePublisher, page: Page) -> None:
    kiosk = WireKiosk(site=SITE, kiosk="kiosk-1")
    report(wire, kiosk, OLD)
    wait_for(lambda: dashboard.api.get("/api/v1/kiosks", site=SITE).body["total"] == 1, what="the kiosk")
    dashboard.log_in(page, "staff")
    expect(page.locator(f'[data-kiosk="{SITE}/kiosk-1"] [data-testid=software]')).to_contain_text(OLD)
    expect(page.locator("[data-nav=rollouts]")).to_have_count(0)
    page.goto(dashboard.url + "#/rollouts")
    expect(page.get_by_test_id("forbidden")).to_be_visible()
