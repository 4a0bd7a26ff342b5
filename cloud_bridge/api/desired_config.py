"""Desired configuration: a site's document, a kiosk's document over it, and where each kiosk
stands (cloud_bridge/desired_config.py). Changing one is audited; reading one is fleet:read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request
from pydantic import BaseModel

from cloud_bridge import desired_config
from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import audit
from cloud_bridge.api.deps import ERROR_RESPONSES, ContextDep, SessionDep, client_address, require, site_in_scope
from cloud_bridge.desired_config import ConfigDocument, ConfigRefused, DesiredState, DesiredStateBase
from cloud_bridge.fleet import Kiosk
from contract.topics import KioskTopics
from contract.errors import ContractError

router = APIRouter(prefix="/api/v1", tags=["configuration"], responses=ERROR_RESPONSES)


class DocumentPublic(BaseModel):
    site: str
    kiosk: str | None = None
    document: dict[str, Any]
    changed_by: str | None = None
    changed_at: datetime | None = None


class ChangedPublic(BaseModel):
    """The kiosks whose desired configuration a change made new, each with its version."""

    changed: list[DesiredStateBase]


class ReportedPublic(BaseModel):
    version: int | None
    tried_version: int | None
    outcome: str | None
    reason: str | None


class KioskConfigPublic(BaseModel):
    site: str
    kiosk: str
    site_document: dict[str, Any]
    kiosk_document: dict[str, Any]
    desired: DesiredStateBase | None
    reported: ReportedPublic | None
    state: str | None = None


def _refused_config(problems: list[str]) -> HTTPException:
    return HTTPException(status_code=422, detail={"error": "invalid_config", "reason": "; ".join(problems),
                                                  "problems": problems})


def _slugs(site: str, kiosk: str | None) -> None:
    try:
        KioskTopics(site, kiosk or "x")
    except ContractError as error:
        raise HTTPException(status_code=422, detail={"error": "invalid_request", "reason": error.reason}) from None


def _document_public(row: ConfigDocument | None, site: str, kiosk: str | None) -> DocumentPublic:
    if row is None:
        return DocumentPublic(site=site, kiosk=kiosk, document={})
    return DocumentPublic(site=site, kiosk=kiosk, document=row.document, changed_by=row.changed_by,
                          changed_at=row.changed_at)


def _change(
    session: SessionDep, context: ContextDep, http: Request, who: Principal, site: str, kiosk: str | None,
    document: dict[str, Any],
) -> ChangedPublic:
    site_in_scope(who, Capability.FLEET_MANAGE, site)
    _slugs(site, kiosk)
    now = context.clock()
    target = site if kiosk is None else f"{site}/{kiosk}"
    try:
        changed = desired_config.set_document(session, site=site, kiosk=kiosk, document=document, by=who.username, now=now)
    except ConfigRefused as refused:
        session.rollback()
        audit(session, actor=who.username, action="config", target=target, result="refused", now=now,
              client=client_address(http), document=document, problems=refused.problems[:20])
        session.commit()
        raise _refused_config(refused.problems) from None
    # Who changed what: the document as written, and the versions it made.
    audit(session, actor=who.username, action="config", target=target, result="ok", now=now,
          client=client_address(http), document=document,
          versions={f"{s.site}/{s.kiosk}": s.version for s in changed})
    session.commit()
    public = ChangedPublic(changed=[DesiredStateBase.model_validate(s, from_attributes=True) for s in changed])
    if context.publisher is not None:  # else a worker's sweep publishes them
        desired_config.publish_due(context.engine, context.publisher, now)
    return public


@router.get("/sites/{site}/config", response_model=DocumentPublic)
def get_site_config(session: SessionDep, site: str, who: Principal = require(Capability.FLEET_READ)) -> DocumentPublic:
    """The site's document: the defaults of every kiosk of the site."""
    site_in_scope(who, Capability.FLEET_READ, site)
    return _document_public(session.get(ConfigDocument, (site, desired_config.SITE_WIDE)), site, None)


@router.put("/sites/{site}/config", response_model=ChangedPublic)
def put_site_config(
    session: SessionDep, context: ContextDep, http: Request, site: str, document: dict[str, Any] = Body(...),
    who: Principal = require(Capability.FLEET_MANAGE),
) -> ChangedPublic:
    """Replace the site's document (docs/configuration.md, Fleet configuration). Refused whole
    (422, every problem by field) if it, or what it makes of any kiosk's, is invalid. Audited."""
    return _change(session, context, http, who, site, None, document)


@router.get("/kiosks/{site}/{kiosk}/config", response_model=KioskConfigPublic)
def get_kiosk_config(
    session: SessionDep, site: str, kiosk: str, who: Principal = require(Capability.FLEET_READ)
) -> KioskConfigPublic:
    """The kiosk's documents, the desired configuration they make (with its version), and what
    the kiosk reports it runs."""
    site_in_scope(who, Capability.FLEET_READ, site)
    desired = session.get(DesiredState, (site, kiosk))
    row = session.get(Kiosk, (site, kiosk))
    reported = None if row is None else ReportedPublic(version=row.config_version, tried_version=row.config_tried_version,
                                                        outcome=row.config_outcome, reason=row.config_reason)
    return KioskConfigPublic(
        site=site, kiosk=kiosk,
        site_document=desired_config.document_of(session, site),
        kiosk_document=desired_config.document_of(session, site, kiosk),
        desired=None if desired is None else DesiredStateBase.model_validate(desired, from_attributes=True),
        reported=reported,
        state=None if row is None else desired_config.config_state(None if desired is None else desired.version, row),
    )


@router.put("/kiosks/{site}/{kiosk}/config", response_model=ChangedPublic)
def put_kiosk_config(
    session: SessionDep, context: ContextDep, http: Request, site: str, kiosk: str,
    document: dict[str, Any] = Body(...), who: Principal = require(Capability.FLEET_MANAGE),
) -> ChangedPublic:
    """Replace the kiosk's own document, over its site's. Refused whole (422) if invalid. Audited."""
    return _change(session, context, http, who, site, kiosk, document)
