"""Kiosks and their devices, as the bridge knows them now."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import case, delete, false
from sqlmodel import col, func, select

from cloud_bridge import webhook
from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import audit
from cloud_bridge.alert_rules import HEALTH_ALERTS
from cloud_bridge.alerts import Alert, resolve
from cloud_bridge.api.alerts import visible_alerts
from cloud_bridge.api.deps import (
    ERROR_RESPONSES,
    ContextDep,
    Page,
    PageDep,
    SessionDep,
    client_address,
    not_found,
    require,
    site_in_scope,
)
from cloud_bridge.broker_link import BrokerLink
from cloud_bridge.desired_config import config_state, desired_versions
from cloud_bridge.fleet import Device, DeviceBase, Kiosk, KioskBase, kiosk_devices

router = APIRouter(prefix="/api/v1", tags=["fleet"], responses=ERROR_RESPONSES)


class KioskPublic(KioskBase):
    open_alerts: int = 0
    desired_version: int | None = None  # of its desired configuration; null: none set (cloud_bridge/desired_config.py)
    config_state: str | None = None  # in_sync, lagging, refused, rolled_back; null: none desired


class DevicePublic(DeviceBase):
    pass


class KioskDetail(KioskPublic):
    devices: list[DevicePublic]


class BridgeLinkPublic(BaseModel):
    """This bridge worker's connection to the broker. While it is lost, kiosks are "unknown":
    what the bridge last heard of them may no longer be so."""

    broker_connected: bool
    since: datetime


def _deaf(link: BrokerLink | None) -> bool:
    return link is not None and not link.state.connected


def _as_heard(kiosk: dict[str, object], link: BrokerLink | None) -> dict[str, object]:
    return kiosk | {"status": "unknown"} if _deaf(link) else kiosk


def _open_alerts_by_kiosk(who: Principal):  # type: ignore[no-untyped-def]
    # Only the alerts `who` may see are counted: a technician must not learn from a count that
    # a resident had a dangerous reading at a kiosk.
    return (
        select(Alert.site, Alert.kiosk, func.count().label("open_alerts"))
        .where(col(Alert.open_key).is_not(None), visible_alerts(who))
        .group_by(Alert.site, Alert.kiosk)
        .subquery()
    )


def _config_of(kiosk: Kiosk, desired: dict[tuple[str, str], int]) -> dict[str, object]:
    version = desired.get((kiosk.site, kiosk.kiosk))
    return {"desired_version": version, "config_state": config_state(version, kiosk)}


@router.get("/kiosks", response_model=Page[KioskPublic])
def list_kiosks(
    session: SessionDep,
    context: ContextDep,
    page: PageDep,
    who: Principal = require(Capability.FLEET_READ),
    site: str | None = None,
    status: Literal["online", "offline", "unknown"] | None = None,
) -> Page[KioskPublic]:
    """Every kiosk: those with open alerts first, then offline ones, then by site and name."""
    counts = _open_alerts_by_kiosk(who)
    conditions = []
    site = site_in_scope(who, Capability.FLEET_READ, site)
    if site is not None:
        conditions.append(col(Kiosk.site) == site)
    if _deaf(context.broker_link):
        # Every kiosk is unknown now, whatever its row says.
        if status in ("online", "offline"):
            conditions.append(false())
    elif status is not None:
        conditions.append(col(Kiosk.status) == status)
    open_alerts = func.coalesce(counts.c.open_alerts, 0)
    statement = (
        select(Kiosk, open_alerts)
        .outerjoin(counts, (counts.c.site == Kiosk.site) & (counts.c.kiosk == Kiosk.kiosk))
        .where(*conditions)
        .order_by(open_alerts.desc(), case((col(Kiosk.status) == "offline", 0), else_=1), col(Kiosk.site), col(Kiosk.kiosk))
        .offset(page.offset)
        .limit(page.limit)
    )
    total = session.exec(select(func.count()).select_from(Kiosk).where(*conditions)).one()
    rows = session.exec(statement).all()
    desired = desired_versions(session, [(kiosk.site, kiosk.kiosk) for kiosk, _ in rows])
    items = [
        KioskPublic.model_validate(_as_heard(kiosk.model_dump() | {"open_alerts": int(n)} | _config_of(kiosk, desired),
                                             context.broker_link))
        for kiosk, n in rows
    ]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/kiosks/{site}/{kiosk}", response_model=KioskDetail)
def get_kiosk(
    session: SessionDep, context: ContextDep, site: str, kiosk: str, who: Principal = require(Capability.FLEET_READ)
) -> KioskDetail:
    """One kiosk with its devices."""
    site_in_scope(who, Capability.FLEET_READ, site)
    row = session.get(Kiosk, (site, kiosk))
    if row is None:
        raise not_found(f"no kiosk {site}/{kiosk} has sent anything")
    open_alerts = session.exec(
        select(func.count()).select_from(Alert).where(
            col(Alert.site) == site, col(Alert.kiosk) == kiosk, col(Alert.open_key).is_not(None), visible_alerts(who)
        )
    ).one()
    devices = [DevicePublic.model_validate(d.model_dump()) for d in kiosk_devices(session, site, kiosk)]
    config = _config_of(row, desired_versions(session, [(site, kiosk)]))
    return KioskDetail.model_validate(
        _as_heard(row.model_dump() | {"open_alerts": open_alerts, "devices": devices} | config, context.broker_link)
    )


@router.delete("/kiosks/{site}/{kiosk}", status_code=204, response_class=Response)
def retire_kiosk(
    session: SessionDep, context: ContextDep, request: Request, site: str, kiosk: str,
    who: Principal = require(Capability.FLEET_MANAGE),
) -> Response:
    """Take a kiosk off the fleet (a test kiosk, one taken away): its row and its devices go, its
    open alerts about the kiosk and its devices are resolved by whoever retired it. What it sent
    (readings, events, telemetry) stays, and so do alerts about a resident's reading, which are a
    doctor's. A kiosk that sends again is listed again: take its broker account away too
    (DELETE …/broker-account, cloud_bridge/api/enrolment.py)."""
    site_in_scope(who, Capability.FLEET_MANAGE, site)
    row = session.get(Kiosk, (site, kiosk), with_for_update=True)
    if row is None:
        raise not_found(f"no kiosk {site}/{kiosk} has sent anything")
    now = context.clock()
    open_alerts = session.exec(
        select(Alert.id).where(
            col(Alert.site) == site, col(Alert.kiosk) == kiosk, col(Alert.open_key).is_not(None),
            col(Alert.kind).not_in([kind.value for kind in HEALTH_ALERTS]),
        )
    ).all()
    changes = [resolve(session, alert_id, by=who.username, note="kiosk retired from the fleet", at=now)
               for alert_id in open_alerts if alert_id is not None]
    session.execute(delete(Device).where(col(Device.site) == site, col(Device.kiosk) == kiosk))
    session.delete(row)
    audit(session, actor=who.username, action="kiosk_retire", target=f"{site}/{kiosk}", result="ok", now=now,
          client=client_address(request), alerts_resolved=len(changes))
    if context.notify and changes:
        webhook.enqueue(session, changes, now)
    session.commit()
    if changes:
        context.on_alerts()
    return Response(status_code=204)


@router.get("/bridge", response_model=BridgeLinkPublic)
def get_bridge_link(context: ContextDep, who: Principal = require(Capability.FLEET_READ)) -> BridgeLinkPublic:
    """Whether this bridge worker hears the broker now, and since when."""
    if context.broker_link is None:  # an API with no ingest beside it (tests, tools)
        return BridgeLinkPublic(broker_connected=True, since=context.clock())
    state = context.broker_link.state
    return BridgeLinkPublic(broker_connected=state.connected, since=state.since)


@router.get("/devices", response_model=Page[DevicePublic])
def list_devices(
    session: SessionDep,
    page: PageDep,
    who: Principal = require(Capability.FLEET_READ),
    site: str | None = None,
    kiosk: str | None = None,
    link: Literal["online", "degraded", "offline", "unknown"] | None = None,
) -> Page[DevicePublic]:
    """Devices of every kiosk (health devices and laundry machines), by site, kiosk and address."""
    conditions = []
    site = site_in_scope(who, Capability.FLEET_READ, site)
    if site is not None:
        conditions.append(col(Device.site) == site)
    if kiosk is not None:
        conditions.append(col(Device.kiosk) == kiosk)
    if link is not None:
        conditions.append(col(Device.link) == link)
    total = session.exec(select(func.count()).select_from(Device).where(*conditions)).one()
    rows = session.exec(
        select(Device).where(*conditions).order_by(col(Device.site), col(Device.kiosk), col(Device.address))
        .offset(page.offset).limit(page.limit)
    ).all()
    return Page(items=[DevicePublic.model_validate(d.model_dump()) for d in rows], total=total,
                limit=page.limit, offset=page.offset)
