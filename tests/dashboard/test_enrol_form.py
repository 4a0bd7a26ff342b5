"""The fleet page's enrolment form: a technician makes a one-time code and sees it once; the
bridge keeps only its hash. Other roles are not offered the form."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.dashboard.conftest import KIOSK, SITE, Dashboard


def test_a_technician_makes_an_enrolment_code_on_the_fleet_page(dashboard: Dashboard, page: Page) -> None:
    dashboard.log_in(page, "tech")
    page.fill("#enrol-site", SITE)
    page.fill("#enrol-kiosk", KIOSK)
    page.get_by_test_id("enrol").locator("button").click()
    code = page.get_by_test_id("enrol-code")
    expect(code).to_have_text(re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$"))
    expect(page.get_by_test_id("enrol-answer")).to_contain_text(f"{SITE}/{KIOSK}")
    [made] = dashboard.api.get("/api/v1/enrolment-codes").body["items"]
    assert (made["site"], made["kiosk"], made["state"], made["created_by"]) == (SITE, KIOSK, "open", "tech")
    page.fill("#enrol-kiosk", "Not a name")  # the API's refusal, in words
    page.get_by_test_id("enrol").locator("button").click()
    expect(page.get_by_test_id("enrol-answer")).to_contain_text("kiosk")


def test_roles_that_may_not_enrol_are_not_offered_the_form(dashboard: Dashboard, page: Page) -> None:
    dashboard.log_in(page, "staff")
    expect(page.get_by_test_id("kiosks")).to_be_visible()
    expect(page.get_by_test_id("enrol")).to_have_count(0)
