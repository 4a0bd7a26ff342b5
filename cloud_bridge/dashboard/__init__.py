"""The dashboard: plain HTML, CSS and JavaScript files served by the bridge at /dashboard/.

The pages themselves are public and hold no data: they are the same files as in this
repository, and a login page must load without a token. Every datum comes from the JSON API
(cloud_bridge/api/), which wants the session cookie that POST /api/v1/login sets (HttpOnly, so
the pages' scripts never hold the token; SameSite=Strict, so another site cannot make the
browser use it). What each role is offered follows GET /api/v1/me; the API enforces it anyway.
No build step, no CDN, nothing fetched from anywhere but this bridge (the pages' Content
Security Policy says so to the browser).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from cloud_bridge.dashboard.headers import BrowserHeaders

DASHBOARD_PATH: Final = "/dashboard"
STATIC_DIRECTORY: Final = Path(__file__).with_name("static")


def mount(app: FastAPI) -> None:
    """Serve the dashboard at /dashboard/ (and send / there), with the browser headers."""
    app.mount(DASHBOARD_PATH, StaticFiles(directory=STATIC_DIRECTORY, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def to_the_dashboard() -> RedirectResponse:
        return RedirectResponse(f"{DASHBOARD_PATH}/")

    app.add_middleware(BrowserHeaders, dashboard_path=DASHBOARD_PATH)
