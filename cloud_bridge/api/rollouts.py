"""Rollouts of a release (cloud_bridge/rollouts.py): started, paused, resumed and aborted by
technicians (each audited as `rollout`), read by those who read every site's fleet."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator
from sqlmodel import Session, col, func, select

from cloud_bridge import rollouts
from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import audit
from cloud_bridge.api.deps import (
    ERROR_RESPONSES,
    ContextDep,
    Page,
    PageDep,
    RowId,
    SessionDep,
    client_address,
    conflict,
    not_found,
    require,
    unprocessable,
)
from cloud_bridge.api.releases import all_sites_reader
from cloud_bridge.rollouts import (
    FAILURES,
    Rollout,
    RolloutBase,
    RolloutConflict,
    RolloutKiosk,
    RolloutKioskBase,
    RolloutRefused,
    RolloutStatus,
    TargetKind,
)
from contract.software import VERSION_PATTERN

router = APIRouter(prefix="/api/v1", tags=["rollouts"], responses=ERROR_RESPONSES)

KioskName = Annotated[str, Field(pattern=r"^[^/\s]{1,32}/[^/\s]{1,32}$", description="site/kiosk")]
# The failures a rollout's page lists with their reasons; all of them are in /kiosks?state=….
FAILURES_SHOWN = 100


class RolloutRequest(BaseModel):
    """One of site, kiosks or percent (of the whole fleet); canaries as a number or a share."""

    version: str = Field(pattern=VERSION_PATTERN)
    site: str | None = Field(default=None, min_length=1, max_length=32)
    kiosks: list[KioskName] | None = Field(default=None, min_length=1, max_length=10_000)
    percent: float | None = Field(default=None, gt=0, le=100)
    canaries: int | None = Field(default=None, ge=1, le=10_000, description="kiosks asked first (default 1)")
    canary_percent: float | None = Field(default=None, gt=0, le=100, description="or this share of the kiosks, first")
    max_failure_share: float = Field(default=0.1, ge=0, le=1,
                                     description="paused when more than this share of the kiosks asked fail")

    @model_validator(mode="after")
    def _one_target(self) -> RolloutRequest:
        if sum(x is not None for x in (self.site, self.kiosks, self.percent)) != 1:
            raise ValueError("name exactly one target: site, kiosks or percent")
        if self.canaries is not None and self.canary_percent is not None:
            raise ValueError("canaries or canary_percent, not both")
        return self

    def target(self) -> tuple[TargetKind, dict[str, Any]]:
        if self.site is not None:
            return TargetKind.SITE, {"site": self.site}
        if self.kiosks is not None:
            return TargetKind.KIOSKS, {"kiosks": list(dict.fromkeys(self.kiosks))}
        return TargetKind.PERCENT, {"percent": self.percent}


class RolloutKioskPublic(RolloutKioskBase):
    pass


class RolloutPublic(RolloutBase):
    id: int
    total: int = Field(description="kiosks in the rollout")
    counts: dict[str, int] = Field(description="kiosks per state (waiting, asked, an UpdateState, skipped, cancelled)")
    failures: list[RolloutKioskPublic] = Field(default_factory=list,
                                               description="failed kiosks with their reasons (on a single rollout's page)")


def _public(session: Session, rollout: Rollout, *, with_failures: bool) -> RolloutPublic:
    assert rollout.id is not None
    per_state = dict(session.exec(select(RolloutKiosk.state, func.count()).where(
        col(RolloutKiosk.rollout_id) == rollout.id).group_by(col(RolloutKiosk.state))).all())
    failures = list(session.exec(select(RolloutKiosk).where(
        col(RolloutKiosk.rollout_id) == rollout.id, col(RolloutKiosk.state).in_(list(FAILURES)))
        .order_by(col(RolloutKiosk.state_at)).limit(FAILURES_SHOWN))) if with_failures else []
    return RolloutPublic.model_validate(rollout.model_dump() | {
        "id": rollout.id, "total": sum(per_state.values()), "counts": per_state,
        "failures": [RolloutKioskPublic.model_validate(f, from_attributes=True) for f in failures]})


@router.post("/rollouts", response_model=RolloutPublic, status_code=201)
def start_rollout(
    session: SessionDep, context: ContextDep, http: Request, request: RolloutRequest,
    who: Principal = require(Capability.FLEET_MANAGE),
) -> RolloutPublic:
    """Start a rollout: its canaries are asked to update at once, the rest once they are
    healthy. A kiosk already on the version is skipped; one in another unfinished rollout is
    refused (409). Audited."""
    now = context.clock()
    kind, target = request.target()
    try:
        rollout = rollouts.start(session, version=request.version, kind=kind, target=target, canaries=request.canaries,
                                 canary_percent=request.canary_percent, max_failure_share=request.max_failure_share,
                                 by=who.username, now=now)
        rollouts.advance(session, rollout.id or 0, context.delivery, now)
    except (RolloutRefused, RolloutConflict) as error:
        session.rollback()
        audit(session, actor=who.username, action="rollout", target=request.version, result="refused", now=now,
              client=client_address(http), operation="start", request=request.model_dump(mode="json"), reason=str(error))
        session.commit()
        raise (conflict if isinstance(error, RolloutConflict) else unprocessable)(str(error)) from None
    audit(session, actor=who.username, action="rollout", target=request.version, result="ok", now=now,
          client=client_address(http), operation="start", rollout_id=rollout.id, request=request.model_dump(mode="json"))
    session.commit()
    return _public(session, rollout, with_failures=True)


@router.get("/rollouts", response_model=Page[RolloutPublic])
def list_rollouts(
    session: SessionDep, page: PageDep, who: Principal = require(Capability.FLEET_READ),
    status: RolloutStatus | None = None,
) -> Page[RolloutPublic]:
    """Newest first, each with its kiosks counted per state."""
    all_sites_reader(who)
    conditions = [] if status is None else [col(Rollout.status) == status.value]
    total = session.exec(select(func.count()).select_from(Rollout).where(*conditions)).one()
    rows = list(session.exec(select(Rollout).where(*conditions).order_by(col(Rollout.id).desc())
                             .offset(page.offset).limit(page.limit)))
    per_rollout: dict[int, Counter[str]] = defaultdict(Counter)
    for rollout_id, state, n in session.exec(
            select(RolloutKiosk.rollout_id, RolloutKiosk.state, func.count())
            .where(col(RolloutKiosk.rollout_id).in_([r.id for r in rows]))
            .group_by(col(RolloutKiosk.rollout_id), col(RolloutKiosk.state))):
        per_rollout[rollout_id][state] = n
    items = [RolloutPublic.model_validate(r.model_dump() | {
        "id": r.id, "total": sum(per_rollout[r.id or 0].values()), "counts": dict(per_rollout[r.id or 0])}) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


def _found(session: Session, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise not_found(f"no rollout {rollout_id}")
    return rollout


@router.get("/rollouts/{rollout_id}", response_model=RolloutPublic)
def get_rollout(session: SessionDep, rollout_id: RowId, who: Principal = require(Capability.FLEET_READ)) -> RolloutPublic:
    """The rollout, its kiosks counted per state, and its failures with their reasons."""
    all_sites_reader(who)
    return _public(session, _found(session, rollout_id), with_failures=True)


@router.get("/rollouts/{rollout_id}/kiosks", response_model=Page[RolloutKioskPublic])
def list_rollout_kiosks(
    session: SessionDep, page: PageDep, rollout_id: RowId, who: Principal = require(Capability.FLEET_READ),
    state: str | None = None,
) -> Page[RolloutKioskPublic]:
    """The rollout's kiosks (canaries first), each with its state and reason."""
    all_sites_reader(who)
    _found(session, rollout_id)
    conditions = [col(RolloutKiosk.rollout_id) == rollout_id] + ([] if state is None else [col(RolloutKiosk.state) == state])
    total = session.exec(select(func.count()).select_from(RolloutKiosk).where(*conditions)).one()
    rows = session.exec(select(RolloutKiosk).where(*conditions).order_by(
        col(RolloutKiosk.canary).desc(), col(RolloutKiosk.site), col(RolloutKiosk.kiosk)).offset(page.offset).limit(page.limit))
    return Page(items=[RolloutKioskPublic.model_validate(r, from_attributes=True) for r in rows], total=total,
                limit=page.limit, offset=page.offset)


def _act(session: Session, context: ContextDep, http: Request, who: Principal, rollout_id: int, operation: str) -> RolloutPublic:
    now = context.clock()
    rollout = session.get(Rollout, rollout_id, with_for_update=True)
    if rollout is None:
        raise not_found(f"no rollout {rollout_id}")
    try:
        if operation == "pause":
            rollouts.pause(session, rollout, by=who.username, now=now)
        elif operation == "resume":
            rollouts.resume(session, rollout, now=now)
        else:
            rollouts.abort(session, rollout, by=who.username, now=now)
    except RolloutConflict as error:
        raise conflict(str(error)) from None
    audit(session, actor=who.username, action="rollout", target=rollout.version, result="ok", now=now,
          client=client_address(http), operation=operation, rollout_id=rollout_id)
    session.commit()
    session.refresh(rollout)
    return _public(session, rollout, with_failures=True)


@router.post("/rollouts/{rollout_id}/pause", response_model=RolloutPublic)
def pause_rollout(session: SessionDep, context: ContextDep, http: Request, rollout_id: RowId,
                  who: Principal = require(Capability.FLEET_MANAGE)) -> RolloutPublic:
    """No more kiosks are asked until it is resumed; those asked carry on. Audited."""
    return _act(session, context, http, who, rollout_id, "pause")


@router.post("/rollouts/{rollout_id}/resume", response_model=RolloutPublic)
def resume_rollout(session: SessionDep, context: ContextDep, http: Request, rollout_id: RowId,
                   who: Principal = require(Capability.FLEET_MANAGE)) -> RolloutPublic:
    """Carry on, accepting the failures so far: it pauses again at a further failure while
    the failed share is over its line. Audited."""
    return _act(session, context, http, who, rollout_id, "resume")


@router.post("/rollouts/{rollout_id}/abort", response_model=RolloutPublic)
def abort_rollout(session: SessionDep, context: ContextDep, http: Request, rollout_id: RowId,
                  who: Principal = require(Capability.FLEET_MANAGE)) -> RolloutPublic:
    """End it: kiosks not yet asked never are; those asked finish, or roll back, on their own. Audited."""
    return _act(session, context, http, who, rollout_id, "abort")
