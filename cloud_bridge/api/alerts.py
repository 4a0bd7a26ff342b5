"""Alerts and their lifecycle: open -> acknowledged -> resolved."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import case, false, or_
from sqlmodel import col, func, select

from cloud_bridge import webhook
from cloud_bridge.access import Capability, Principal
from cloud_bridge.alert_rules import HEALTH_ALERTS, AlertKind
from cloud_bridge.alerts import Alert, AlertNotFound, AlertPublic, AlertTransitionRefused, acknowledge, resolve
from cloud_bridge.api.deps import (
    ERROR_RESPONSES,
    ContextDep,
    Page,
    PageDep,
    RowId,
    SessionDep,
    conflict,
    forbidden,
    not_found,
    require,
)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=ERROR_RESPONSES)


class AlertNote(BaseModel):
    note: str | None = Field(default=None, max_length=2000, description="what was done, for the next person")


def _health(kind: str) -> bool:
    return kind in HEALTH_ALERTS


def visible_alerts(who: Principal) -> Any:
    """What alerts `who` may see: health alerts with health:read, the others with fleet:read,
    each within its scope of sites."""
    clauses = []
    health = col(Alert.kind).in_([k.value for k in HEALTH_ALERTS])
    for capability, kinds in ((Capability.FLEET_READ, ~health), (Capability.HEALTH_READ, health)):
        if who.may(capability):
            site = who.sites(capability)
            clauses.append(kinds & (col(Alert.site) == site) if site is not None else kinds)
    return or_(*clauses) if clauses else false()


def _may_see(who: Principal, alert: Alert) -> bool:
    return who.may(Capability.HEALTH_READ if _health(alert.kind) else Capability.FLEET_READ, alert.site)


@router.get("", response_model=Page[AlertPublic])
def list_alerts(
    session: SessionDep,
    page: PageDep,
    who: Principal = require(Capability.FLEET_READ),
    state: Literal["open", "acknowledged", "resolved", "unresolved"] | None = None,
    kind: AlertKind | None = None,
    severity: Literal["critical", "warning"] | None = None,
    site: str | None = None,
    kiosk: str | None = None,
) -> Page[AlertPublic]:
    """Unresolved first, critical first, then the most recently reported. Alerts about a
    resident's reading are shown to doctors only."""
    conditions = [visible_alerts(who)]
    if state == "unresolved":
        conditions.append(col(Alert.open_key).is_not(None))
    elif state is not None:
        conditions.append(col(Alert.state) == state)
    for column, value in ((Alert.kind, kind), (Alert.severity, severity), (Alert.site, site), (Alert.kiosk, kiosk)):
        if value is not None:
            conditions.append(col(column) == value)
    total = session.exec(select(func.count()).select_from(Alert).where(*conditions)).one()
    rows = session.exec(
        select(Alert)
        .where(*conditions)
        .order_by(
            case((col(Alert.open_key).is_not(None), 0), else_=1),
            case((col(Alert.severity) == "critical", 0), else_=1),
            col(Alert.last_at).desc(),
            col(Alert.id).desc(),
        )
        .offset(page.offset)
        .limit(page.limit)
    ).all()
    return Page(items=[AlertPublic.model_validate(a, from_attributes=True) for a in rows], total=total,
                limit=page.limit, offset=page.offset)


@router.get("/{alert_id}", response_model=AlertPublic)
def get_alert(session: SessionDep, alert_id: RowId, who: Principal = require(Capability.FLEET_READ)) -> AlertPublic:
    alert = session.get(Alert, alert_id)
    if alert is None or not _may_see(who, alert):
        raise not_found(f"no alert {alert_id}")  # another site's alert is not confirmed to exist
    return AlertPublic.model_validate(alert, from_attributes=True)


def _transition(session: SessionDep, context: ContextDep, who: Principal, alert_id: int, note: str | None, action: str) -> AlertPublic:
    alert = session.get(Alert, alert_id)
    if alert is None or not _may_see(who, alert):
        raise not_found(f"no alert {alert_id}")
    if not who.may(Capability.ALERTS_MANAGE, alert.site):
        raise forbidden(f"a {who.role} may not {action} alerts at site {alert.site}")
    move = acknowledge if action == "acknowledge" else resolve
    try:
        change = move(session, alert_id, by=who.username, note=note, at=context.clock())
    except AlertNotFound as error:
        raise not_found(str(error)) from None
    except AlertTransitionRefused as error:
        raise conflict(str(error)) from None
    if context.notify:
        webhook.enqueue(session, [change], context.clock())
    session.commit()
    context.on_alerts()
    return change.alert


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic)
def acknowledge_alert(session: SessionDep, context: ContextDep, alert_id: RowId, body: AlertNote | None = None,
                      who: Principal = require(Capability.ALERTS_MANAGE)) -> AlertPublic:
    """Someone is on it. It stays unresolved, so the same condition does not open a second alert."""
    return _transition(session, context, who, alert_id, body.note if body else None, "acknowledge")


@router.post("/{alert_id}/resolve", response_model=AlertPublic)
def resolve_alert(session: SessionDep, context: ContextDep, alert_id: RowId, body: AlertNote | None = None,
                  who: Principal = require(Capability.ALERTS_MANAGE)) -> AlertPublic:
    """Closed by a person. If the condition is reported again, a new alert opens."""
    return _transition(session, context, who, alert_id, body.note if body else None, "resolve")
