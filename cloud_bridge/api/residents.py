"""Residents for their family doctor (issue 21): find one by card or QR code, the site's residents
with the worrying ones first, one resident's averages, and the printed report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from cloud_bridge.access import Capability, Principal, Scope
from cloud_bridge.accounts import audit
from cloud_bridge.api.deps import (
    ERROR_RESPONSES, BridgeContext, ContextDep, Page, PageDep, SessionDep, client_address, not_found, require, site_in_scope,
    unprocessable,
)
from cloud_bridge.report import ReportUnavailable, render_report
from cloud_bridge.resident_lookup import NotAResident, candidates
from cloud_bridge.residents import ResidentReading, ResidentSummary, resident_readings, site_residents, summarise
from cloud_bridge.store import Reading
from contract.clinical import dangerous_line
from contract.topics import Slug

router = APIRouter(prefix="/api/v1/residents", tags=["residents"], responses=ERROR_RESPONSES)

Pseudonym = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="the resident's pseudonym, 64 hex")]


class LookupRequest(BaseModel):
    """In a POST body, never a query string: a query string is in every access log."""

    card_or_code: str = Field(min_length=1, max_length=200,
                              description="a resident card number as typed or scanned, or a resident's QR code "
                              "(DOORSTEP-R1:{site}:{pseudonym})")


class ResidentFound(BaseModel):
    site: str
    pseudonym: str


@router.post("/lookup", response_model=ResidentFound)
def lookup(
    session: SessionDep, context: ContextDep, request: Request, asked: LookupRequest,
    who: Principal = require(Capability.RESIDENTS_FIND),
) -> ResidentFound:
    """The resident a card number or QR code stands for, among the residents of the caller's
    sites who have readings there; 404 otherwise, the same for an unknown card and for one of
    another site. The number is used to derive the pseudonym and then forgotten: it is not stored,
    logged or audited (cloud_bridge/resident_lookup.py)."""
    sites = None if who.scope(Capability.RESIDENTS_FIND) is Scope.ALL_SITES else [who.site or ""]
    try:
        keys = candidates(asked.card_or_code, sites, context.resident_keys)
    except NotAResident as error:
        raise unprocessable(f"card_or_code: {error}") from None
    found = None
    for key in keys:
        has_readings = session.exec(select(func.count()).select_from(Reading).where(
            col(Reading.site) == key.site, col(Reading.subject) == key.pseudonym)).one()
        if has_readings:
            found = key
            break
    audit(session, actor=who.username, action="resident_lookup", result="found" if found else "not_found",
          now=context.clock(), target=f"{found.site}/{found.pseudonym}" if found else None,
          client=client_address(request))
    session.commit()
    if found is None:
        raise not_found("no resident of your site has readings under this card or code")
    return ResidentFound(site=found.site, pseudonym=found.pseudonym)


@router.get("", response_model=Page[ResidentSummary])
def list_residents(
    session: SessionDep, context: ContextDep, page: PageDep, who: Principal = require(Capability.HEALTH_READ),
    site: str | None = None,
) -> Page[ResidentSummary]:
    """Residents who measured their blood pressure in the last 90 days: those with a dangerous
    reading or a very high average this period first, then those whose average rose a category
    since the period before, then the most recently measured (cloud_bridge/averages.py)."""
    site = site_in_scope(who, Capability.HEALTH_READ, site)
    guideline = context.blood_pressure_guideline
    line = dangerous_line(guideline, context.alert_rules.dangerous_blood_pressure)
    everyone = site_residents(session, site, guideline, line, context.time_zone, context.clock())
    return Page(items=everyone[page.offset:page.offset + page.limit], total=len(everyone),
                limit=page.limit, offset=page.offset)


def _summary(session: Session, context: BridgeContext, site: str, pseudonym: str,
             ) -> tuple[ResidentSummary, list[ResidentReading]]:
    guideline = context.blood_pressure_guideline
    line = dangerous_line(guideline, context.alert_rules.dangerous_blood_pressure)
    readings = resident_readings(session, site, pseudonym, guideline, line, context.time_zone)
    summary = summarise(site, pseudonym, readings, guideline, len(readings))
    if summary is None:
        raise not_found("no blood-pressure readings of this resident at this site")
    return summary, readings


@router.get("/{site}/{pseudonym}", response_model=ResidentSummary)
def get_resident(
    session: SessionDep, context: ContextDep, site: Slug, pseudonym: Pseudonym,
    who: Principal = require(Capability.HEALTH_READ),
) -> ResidentSummary:
    """One resident's home averages (this period and the one before) and whether they are
    dangerous or rising; the readings themselves are GET /api/v1/readings?subject=…"""
    site_in_scope(who, Capability.HEALTH_READ, site)
    return _summary(session, context, site, pseudonym)[0]


@router.get("/{site}/{pseudonym}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the printed report, A4"}})
def get_report(
    session: SessionDep, context: ContextDep, site: Slug, pseudonym: Pseudonym,
    who: Principal = require(Capability.HEALTH_READ),
) -> Response:
    """The report for the family doctor to print (cloud_bridge/report.py): A4, Chinese first."""
    site_in_scope(who, Capability.HEALTH_READ, site)
    summary, readings = _summary(session, context, site, pseudonym)
    try:
        pdf = render_report(summary, readings, context.blood_pressure_guideline, printed_at=context.clock())
    except ReportUnavailable as error:
        raise HTTPException(status_code=503, detail={"error": "report_unavailable", "reason": str(error)}) from None
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="doorstep-{site}-{pseudonym[:12]}.pdf"',
        "Cache-Control": "no-store"})
