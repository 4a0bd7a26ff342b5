"""Rollouts: a release sent to a site, a list of kiosks or a share of the fleet, canaries first.

A rollout's kiosks are rows of their own, each walking

    waiting ──asked (update_software command created)──▶ asked ──the kiosk's telemetry──▶
        queued │ deferred │ downloading │ verifying │ installing │ switching │ checking
        ──▶ healthy │ rolled_back │ refused │ failed          (contract/software.py, UpdateState)

and `skipped` (it already ran the version when the rollout began) or `cancelled` (aborted before
it was asked). A kiosk's progress is read from what it reports of the update carrying this
rollout's id (its telemetry, folded into the kiosk's row by cloud_bridge/fleet.py); a command
the kiosk refused, failed or never answered ends it as refused or failed with the command's
reason.

The rollout itself:

    active (canary) ──every canary finished, one healthy at least──▶ active (rest) ──all finished──▶ completed
      │  ▲                                                                  │  ▲
      ▼  │ resume                                                           ▼  │ resume
    paused ◀── more than max_failure_share of the kiosks asked failed, or a technician ──┘
    active │ paused ──abort──▶ aborted (no kiosk is asked again; those asked finish on their own)

Resuming accepts the failures so far: it pauses again only at a further failure while the
share is still over the line.

`advance` is run by every bridge worker (cloud_bridge/jobs.py). A kiosk is asked by an UPDATE
that moves its row from waiting to asked: of two workers, only the one whose UPDATE changed the
row creates the command, so each kiosk is asked once. On PostgreSQL the rollout's row is also
locked (FOR UPDATE) while one worker advances it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import JSON, Engine, update
from sqlmodel import Field, Session, SQLModel, col, select

from cloud_bridge import commands
from cloud_bridge.commands import Command, CommandStatus
from cloud_bridge.fleet import Kiosk
from cloud_bridge.releases import Release
from contract.commands import CommandName
from contract.software import UpdateSoftwareArgs, UpdateState


class RolloutStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ABORTED = "aborted"
    COMPLETED = "completed"


class RolloutPhase(StrEnum):
    CANARY = "canary"
    REST = "rest"


class TargetKind(StrEnum):
    SITE = "site"
    KIOSKS = "kiosks"
    PERCENT = "percent"


WAITING: Final = "waiting"
ASKED: Final = "asked"
SKIPPED: Final = "skipped"
CANCELLED: Final = "cancelled"
FAILURES: Final = frozenset({UpdateState.ROLLED_BACK.value, UpdateState.REFUSED.value, UpdateState.FAILED.value})
FINISHED: Final = frozenset({UpdateState.HEALTHY.value, *FAILURES, SKIPPED, CANCELLED})
NOT_ASKED: Final = frozenset({WAITING, SKIPPED, CANCELLED})

# What a command that ended without the kiosk's word on the update makes of the kiosk's row.
_ENDED_COMMAND: Final = {
    CommandStatus.REFUSED.value: UpdateState.REFUSED.value,
    CommandStatus.FAILED.value: UpdateState.FAILED.value,
    CommandStatus.TIMED_OUT.value: UpdateState.FAILED.value,
}


class RolloutBase(SQLModel):
    version: str = Field(max_length=48, index=True)
    target_kind: str = Field(max_length=16, description="site, kiosks or percent")
    target: dict[str, Any] = Field(default_factory=dict, sa_type=JSON,
                                   description="{site}, {kiosks: [site/kiosk, …]} or {percent}, as asked")
    canaries: int = Field(description="kiosks asked first; the rest only once these are healthy")
    max_failure_share: float = Field(description="paused when more than this share of the kiosks asked failed")
    status: str = Field(default=RolloutStatus.ACTIVE.value, max_length=16, index=True)
    phase: str = Field(default=RolloutPhase.CANARY.value, max_length=16)
    paused_reason: str | None = Field(default=None, max_length=500)
    failures_accepted: int = Field(default=0, description="failures counted when a technician last resumed it")
    created_by: str = Field(max_length=64)
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class Rollout(RolloutBase, table=True):
    __tablename__ = "rollouts"

    id: int | None = Field(default=None, primary_key=True)


class RolloutKioskBase(SQLModel):
    rollout_id: int = Field(primary_key=True, foreign_key="rollouts.id")
    site: str = Field(primary_key=True, max_length=32)
    kiosk: str = Field(primary_key=True, max_length=32)
    canary: bool = False
    state: str = Field(default=WAITING, max_length=16, description="waiting, asked, an UpdateState, skipped or cancelled")
    reason: str | None = Field(default=None, max_length=2000)
    request_id: str | None = Field(default=None, max_length=64, description="the update_software command")
    asked_at: datetime | None = None
    state_at: datetime | None = Field(default=None, description="the bridge's time the state last changed")


class RolloutKiosk(RolloutKioskBase, table=True):
    __tablename__ = "rollout_kiosks"


class RolloutRefused(ValueError):
    """The request cannot be done as asked (422)."""


class RolloutConflict(ValueError):
    """Not in the rollout's or the fleet's present state (409)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """How kiosks are told to fetch a bundle."""

    public_url: str  # the bridge as kiosks reach it, e.g. https://bridge.example.org
    command_ttl: timedelta  # a kiosk away longer than this refuses the command when it is back

    def url_of(self, version: str) -> str:
        return f"{self.public_url.rstrip('/')}/api/v1/releases/{version}/bundle"


def _order(version: str, site: str, kiosk: str) -> str:
    """A kiosk's place in a version's rollouts: a stable shuffle, so a 10% rollout and a later
    50% one of the same version take the same kiosks first, and canaries are spread over sites."""
    return hashlib.sha256(f"{version}\x00{site}\x00{kiosk}".encode()).hexdigest()


def chosen_kiosks(session: Session, kind: TargetKind, target: dict[str, Any], version: str) -> list[Kiosk]:
    """The kiosks a target names, in the version's order."""
    if kind is TargetKind.SITE:
        kiosks = list(session.exec(select(Kiosk).where(col(Kiosk.site) == target["site"])))
    elif kind is TargetKind.KIOSKS:
        found = {name: session.get(Kiosk, tuple(name.split("/", 1))) for name in target["kiosks"]}
        kiosks = [row for row in found.values() if row is not None]
        unknown = [name for name, row in found.items() if row is None]
        if unknown:
            raise RolloutRefused(f"no such kiosk(s): {', '.join(unknown[:20])}")
    else:
        fleet = list(session.exec(select(Kiosk)))
        fleet.sort(key=lambda k: _order(version, k.site, k.kiosk))
        kiosks = fleet[: math.ceil(len(fleet) * float(target["percent"]) / 100)]
    kiosks.sort(key=lambda k: _order(version, k.site, k.kiosk))
    if not kiosks:
        raise RolloutRefused("the target holds no kiosk")
    return kiosks


def _busy_elsewhere(session: Session, keys: set[tuple[str, str]]) -> list[str]:
    """Those of `keys` still in another unfinished rollout: one update at a time per kiosk."""
    rows = session.exec(
        select(RolloutKiosk.site, RolloutKiosk.kiosk, RolloutKiosk.rollout_id)
        .join(Rollout, col(Rollout.id) == col(RolloutKiosk.rollout_id))
        .where(col(Rollout.status).in_([RolloutStatus.ACTIVE.value, RolloutStatus.PAUSED.value]),
               col(RolloutKiosk.state).not_in(list(FINISHED)))
    ).all()
    return [f"{site}/{kiosk} (rollout {rid})" for site, kiosk, rid in rows if (site, kiosk) in keys]


def start(
    session: Session, *, version: str, kind: TargetKind, target: dict[str, Any], canaries: int | None,
    canary_percent: float | None, max_failure_share: float, by: str, now: datetime,
) -> Rollout:
    """A new rollout with its kiosks (the caller commits); its canaries are asked on the next advance."""
    if session.get(Release, version) is None:
        raise RolloutRefused(f"no release {version} has been uploaded")
    kiosks = chosen_kiosks(session, kind, target, version)
    busy = _busy_elsewhere(session, {(k.site, k.kiosk) for k in kiosks})
    if busy:
        raise RolloutConflict(f"already being updated: {', '.join(busy[:20])}")
    to_update = [k for k in kiosks if k.software_version != version]
    if canary_percent is not None:
        canaries = math.ceil(len(to_update) * canary_percent / 100)
    count = max(1, min(canaries if canaries is not None else 1, len(to_update))) if to_update else 0
    rollout = Rollout(version=version, target_kind=kind.value, target=target, canaries=count,
                      max_failure_share=max_failure_share, created_by=by, created_at=now, updated_at=now)
    session.add(rollout)
    session.flush()
    assert rollout.id is not None
    canary_keys = {(k.site, k.kiosk) for k in to_update[:count]}
    for k in kiosks:
        current = k.software_version == version
        session.add(RolloutKiosk(rollout_id=rollout.id, site=k.site, kiosk=k.kiosk, canary=(k.site, k.kiosk) in canary_keys,
                                 state=SKIPPED if current else WAITING, state_at=now,
                                 reason=f"already runs {version}" if current else None))
    return rollout


# --- Advancing ---------------------------------------------------------------------------------


def _progress_of(row: RolloutKiosk, kiosk: Kiosk | None, command: Command | None, rollout: Rollout) -> tuple[str, str | None]:
    """Where an asked kiosk stands now: its own report of this rollout's update, unless its
    command ended without one (refused, failed, or no answer before it expired) — a command
    that timed out while the kiosk reports progress is the kiosk's slow link, not a failure."""
    ended = _ENDED_COMMAND.get(command.status) if command is not None else None
    why = None if command is None else f"the update_software command {command.status}: {command.detail or ''}".strip(" :")
    if kiosk is not None and kiosk.update_rollout_id == rollout.id and kiosk.update_version == rollout.version \
            and kiosk.update_state is not None:
        if kiosk.update_state in FINISHED or ended is None or command is None \
                or command.status == CommandStatus.TIMED_OUT.value:
            return kiosk.update_state, kiosk.update_reason
        return ended, why
    if ended is not None:
        return ended, why
    return row.state, row.reason


def _failure_line_crossed(rollout: Rollout, rows: Sequence[RolloutKiosk]) -> str | None:
    asked = [r for r in rows if r.state not in NOT_ASKED]
    failed = [r for r in asked if r.state in FAILURES]
    if not asked or len(failed) <= rollout.failures_accepted or len(failed) / len(asked) <= rollout.max_failure_share:
        return None
    return (f"paused automatically: {len(failed)} of the {len(asked)} kiosks asked failed, more than "
            f"{rollout.max_failure_share:.0%}")


def _ask(session: Session, rollout: Rollout, row: RolloutKiosk, release: Release, delivery: Delivery, now: datetime) -> str | None:
    """Create the kiosk's update_software command, once: None if another worker asked it first."""
    assert rollout.id is not None
    request_id = commands.new_request_id(CommandName.UPDATE_SOFTWARE)
    moved = session.execute(
        update(RolloutKiosk)
        .where(col(RolloutKiosk.rollout_id) == rollout.id, col(RolloutKiosk.site) == row.site,
               col(RolloutKiosk.kiosk) == row.kiosk, col(RolloutKiosk.state) == WAITING)
        .values(state=ASKED, request_id=request_id, asked_at=now, state_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        return None
    args = UpdateSoftwareArgs(version=release.version, url=delivery.url_of(release.version), sha256=release.sha256,
                              size=release.size_bytes, rollout_id=rollout.id)
    commands.create(session, site=row.site, kiosk=row.kiosk, command=CommandName.UPDATE_SOFTWARE,
                    args=args.model_dump(mode="json"), issued_by=rollout.created_by, now=now,
                    ttl=delivery.command_ttl, request_id=request_id)
    return request_id


def advance(session: Session, rollout_id: int, delivery: Delivery, now: datetime) -> list[str]:
    """Fold the kiosks' progress into the rollout, pause or finish it, and ask the kiosks due;
    returns the request ids of the commands created (the caller commits)."""
    rollout = session.get(Rollout, rollout_id, with_for_update=True)
    if rollout is None or rollout.status not in (RolloutStatus.ACTIVE.value, RolloutStatus.PAUSED.value):
        return []
    rows = list(session.exec(select(RolloutKiosk).where(col(RolloutKiosk.rollout_id) == rollout_id)))
    pending = [r for r in rows if r.state not in FINISHED and r.state != WAITING]
    if pending:
        kiosks = {(k.site, k.kiosk): k for k in session.exec(
            select(Kiosk).join(RolloutKiosk, (col(RolloutKiosk.site) == col(Kiosk.site)) & (col(RolloutKiosk.kiosk) == col(Kiosk.kiosk)))
            .where(col(RolloutKiosk.rollout_id) == rollout_id))}
        asked_ids = [r.request_id for r in pending if r.request_id is not None]
        sent = {c.request_id: c for c in session.exec(select(Command).where(col(Command.request_id).in_(asked_ids)))}
        for row in pending:
            state, reason = _progress_of(row, kiosks.get((row.site, row.kiosk)), sent.get(row.request_id or ""), rollout)
            if (state, reason) != (row.state, row.reason):
                row.state, row.reason, row.state_at = state, reason, now
                session.add(row)
    created: list[str] = []
    if rollout.status == RolloutStatus.ACTIVE.value:
        crossed = _failure_line_crossed(rollout, rows)
        if crossed is not None:
            rollout.status, rollout.paused_reason = RolloutStatus.PAUSED.value, crossed
        else:
            created = _ask_due(session, rollout, rows, delivery, now)
    if all(r.state in FINISHED for r in rows) and rollout.status == RolloutStatus.ACTIVE.value:
        rollout.status, rollout.finished_at = RolloutStatus.COMPLETED.value, now
    rollout.updated_at = now
    session.add(rollout)
    return created


def _ask_due(session: Session, rollout: Rollout, rows: list[RolloutKiosk], delivery: Delivery, now: datetime) -> list[str]:
    if rollout.phase == RolloutPhase.CANARY.value:
        canaries = [r for r in rows if r.canary]
        healthy = all(r.state in FINISHED for r in canaries) and any(r.state == UpdateState.HEALTHY.value for r in canaries)
        if healthy or not canaries:
            rollout.phase = RolloutPhase.REST.value
    due = [r for r in rows if r.state == WAITING and (r.canary or rollout.phase == RolloutPhase.REST.value)]
    if not due:
        return []
    release = session.get(Release, rollout.version)
    if release is None:  # deleted under it: deletion refuses that, but a hand in the database may not
        rollout.status, rollout.paused_reason = RolloutStatus.PAUSED.value, f"release {rollout.version} is gone"
        return []
    created = [_ask(session, rollout, row, release, delivery, now) for row in due]
    for row in due:
        session.refresh(row)
    return [request_id for request_id in created if request_id is not None]


def advance_all(engine: Engine, delivery: Delivery, now: datetime) -> list[str]:
    """Advance every unfinished rollout, one transaction each."""
    with Session(engine) as session:
        ids = list(session.exec(select(Rollout.id).where(
            col(Rollout.status).in_([RolloutStatus.ACTIVE.value, RolloutStatus.PAUSED.value]))))
    created: list[str] = []
    for rollout_id in ids:
        assert rollout_id is not None
        with Session(engine) as session:
            created += advance(session, rollout_id, delivery, now)
            session.commit()
    return created


# --- A technician's hand -----------------------------------------------------------------------


def pause(session: Session, rollout: Rollout, *, by: str, now: datetime) -> None:
    if rollout.status != RolloutStatus.ACTIVE.value:
        raise RolloutConflict(f"rollout {rollout.id} is {rollout.status}, not active")
    rollout.status, rollout.paused_reason, rollout.updated_at = RolloutStatus.PAUSED.value, f"paused by {by}", now
    session.add(rollout)


def resume(session: Session, rollout: Rollout, *, now: datetime) -> None:
    """Active again, accepting the failures so far."""
    if rollout.status != RolloutStatus.PAUSED.value:
        raise RolloutConflict(f"rollout {rollout.id} is {rollout.status}, not paused")
    failed = session.exec(select(RolloutKiosk).where(
        col(RolloutKiosk.rollout_id) == rollout.id, col(RolloutKiosk.state).in_(list(FAILURES)))).all()
    rollout.status, rollout.paused_reason, rollout.updated_at = RolloutStatus.ACTIVE.value, None, now
    rollout.failures_accepted = len(failed)
    session.add(rollout)


def abort(session: Session, rollout: Rollout, *, by: str, now: datetime) -> None:
    """No kiosk is asked any more; those already asked finish (or roll back) on their own."""
    if rollout.status not in (RolloutStatus.ACTIVE.value, RolloutStatus.PAUSED.value):
        raise RolloutConflict(f"rollout {rollout.id} is {rollout.status} already")
    session.execute(
        update(RolloutKiosk)
        .where(col(RolloutKiosk.rollout_id) == rollout.id, col(RolloutKiosk.state) == WAITING)
        .values(state=CANCELLED, reason=f"aborted by {by}", state_at=now)
        .execution_options(synchronize_session=False)
    )
    rollout.status, rollout.paused_reason, rollout.finished_at, rollout.updated_at = (
        RolloutStatus.ABORTED.value, f"aborted by {by}", now, now)
    session.add(rollout)


def uses_release(session: Session, version: str) -> list[int]:
    """Unfinished rollouts of `version`: its bundle must stay while kiosks may still fetch it."""
    return [i for i in session.exec(select(Rollout.id).where(
        col(Rollout.version) == version,
        col(Rollout.status).in_([RolloutStatus.ACTIVE.value, RolloutStatus.PAUSED.value]))) if i is not None]
