"""Each kiosk's desired configuration: site and kiosk documents, combined, versioned, published.

    a technician's document (a site's, or one kiosk's) ──validated──▶ config_documents
        └──▶ each kiosk it reaches: effective = site's, then kiosk's (kiosk_config/fleet.py)
              changed? version + 1 ──▶ desired_configs ──after the commit──▶ retained …/desired

A document is refused whole, with every problem by field, if it or the configuration it makes
for any kiosk it reaches does not pass the models the agent loads. What the kiosk runs comes
back in its telemetry (the kiosks table, cloud_bridge/fleet.py). Publishing is idempotent (the
same version, retained): every worker republishes every kiosk's on start, and publishes any
not yet published on its sweep, so the broker's retained copy is never older than the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import JSON, Engine, update
from sqlmodel import Field, Session, SQLModel, col, select

from contract.codec import encode
from contract.desired import DesiredConfig
from contract.topics import KioskTopics
from cloud_bridge.fleet import Kiosk
from kiosk_config.fleet import fleet_problems, overlay

# The kiosk column of a site's own document.
SITE_WIDE: Final = ""


class RetainedPublisher(Protocol):
    def publish_retained(self, topic: str, body: bytes) -> bool: ...


class ConfigRefused(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ConfigDocumentBase(SQLModel):
    site: str = Field(primary_key=True, max_length=32)
    kiosk: str = Field(primary_key=True, max_length=32, description="'' for the site's own document")
    document: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    changed_by: str = Field(max_length=64)
    changed_at: datetime


class ConfigDocument(ConfigDocumentBase, table=True):
    __tablename__ = "config_documents"


class DesiredStateBase(SQLModel):
    site: str = Field(primary_key=True, max_length=32)
    kiosk: str = Field(primary_key=True, max_length=32)
    version: int = Field(description="grows with every change of the effective configuration")
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, description="site's, then kiosk's document")
    changed_by: str = Field(max_length=64)
    changed_at: datetime
    published_at: datetime | None = Field(default=None, description="null: not yet handed to the broker")


class DesiredState(DesiredStateBase, table=True):
    __tablename__ = "desired_configs"


def document_of(session: Session, site: str, kiosk: str = SITE_WIDE) -> dict[str, Any]:
    row = session.get(ConfigDocument, (site, kiosk))
    return dict(row.document) if row is not None else {}


def effective_of(session: Session, site: str, kiosk: str) -> dict[str, Any]:
    return overlay(document_of(session, site), document_of(session, site, kiosk))


def _kiosks_of_site(session: Session, site: str) -> list[str]:
    """Every kiosk a site's document reaches: those heard from, and those configured before."""
    heard = session.exec(select(Kiosk.kiosk).where(col(Kiosk.site) == site)).all()
    configured = session.exec(select(ConfigDocument.kiosk).where(col(ConfigDocument.site) == site,
                                                                  col(ConfigDocument.kiosk) != SITE_WIDE)).all()
    desired = session.exec(select(DesiredState.kiosk).where(col(DesiredState.site) == site)).all()
    return sorted({*heard, *configured, *desired})


def set_document(
    session: Session, *, site: str, kiosk: str | None, document: dict[str, Any], by: str, now: datetime
) -> list[DesiredState]:
    """Replace a site's (kiosk None) or a kiosk's document; the kiosks whose desired
    configuration changed, each with its new version. ConfigRefused, with every problem, if the
    document or any kiosk's resulting configuration is invalid (nothing is changed then: the
    caller rolls back)."""
    # A site's document is whole by itself (a kiosk heard later gets it alone); a kiosk's may
    # complete a section of its site's, so it is checked as the configuration they make together.
    label = f"site {site}" if kiosk is None else f"kiosk {site}/{kiosk}"
    problems = fleet_problems(document, label, whole=kiosk is None)
    if kiosk is not None:
        problems += fleet_problems(overlay(document_of(session, site), document), label)
    problems = list(dict.fromkeys(problems))  # a key's problem is found by both
    if problems:
        raise ConfigRefused(problems)
    key = (site, SITE_WIDE if kiosk is None else kiosk)
    row = session.get(ConfigDocument, key, with_for_update=True)
    if row is None:
        row = ConfigDocument(site=site, kiosk=key[1], document=document, changed_by=by, changed_at=now)
    else:
        row.document, row.changed_by, row.changed_at = document, by, now
    session.add(row)
    session.flush()
    changed = []
    problems = []
    for each in _kiosks_of_site(session, site) if kiosk is None else [kiosk]:
        try:
            state = refresh(session, site, each, by=by, now=now)
        except ConfigRefused as refused:
            problems += refused.problems
            continue
        if state is not None:
            changed.append(state)
    if problems:
        raise ConfigRefused(problems)
    return changed


def refresh(session: Session, site: str, kiosk: str, *, by: str, now: datetime) -> DesiredState | None:
    """Bring a kiosk's desired configuration to its documents: a new version if it changed;
    None if it did not."""
    effective = effective_of(session, site, kiosk)
    problems = fleet_problems(effective, f"kiosk {site}/{kiosk}")
    if problems:
        raise ConfigRefused(problems)
    state = session.get(DesiredState, (site, kiosk), with_for_update=True)
    if state is None:
        if not effective:
            return None
        state = DesiredState(site=site, kiosk=kiosk, version=0, config={}, changed_by=by, changed_at=now)
    elif state.config == effective:
        return None
    state.version += 1
    state.config, state.changed_by, state.changed_at, state.published_at = effective, by, now, None
    session.add(state)
    return state


def adopt_new_kiosks(session: Session, now: datetime) -> int:
    """A kiosk first heard after its site's document was set gets it too; how many did."""
    sites = session.exec(select(ConfigDocument.site).where(col(ConfigDocument.kiosk) == SITE_WIDE)).all()
    if not sites:
        return 0
    unconfigured = session.exec(
        select(Kiosk.site, Kiosk.kiosk)
        .outerjoin(DesiredState, (col(DesiredState.site) == col(Kiosk.site)) & (col(DesiredState.kiosk) == col(Kiosk.kiosk)))
        .where(col(Kiosk.site).in_(sites), col(DesiredState.version).is_(None))
    ).all()
    adopted = 0
    for site, kiosk in unconfigured:
        try:
            adopted += refresh(session, site, kiosk, by="fleet", now=now) is not None
        except ConfigRefused:
            continue  # cannot be: the site's document passed; a kiosk's own was refused before
    return adopted


def message_of(state: DesiredStateBase) -> tuple[str, bytes]:
    body = DesiredConfig(version=state.version, config=state.config, changed_by=state.changed_by,
                         changed_at=state.changed_at)
    return KioskTopics(state.site, state.kiosk).desired, encode(body)


def publish_due(engine: Engine, publisher: RetainedPublisher, now: datetime, *, limit: int = 500) -> int:
    """Hand every desired configuration not yet published to the broker (after its commit);
    how many went. One the broker cannot take now stays due for the next sweep."""
    with Session(engine) as session:
        due = session.exec(select(DesiredState).where(col(DesiredState.published_at).is_(None)).limit(limit)).all()
        sent = [(state.site, state.kiosk, state.version) for state in due if publisher.publish_retained(*message_of(state))]
        for site, kiosk, version in sent:
            # Only the version sent: one made meanwhile is still due.
            session.execute(update(DesiredState).where(col(DesiredState.site) == site, col(DesiredState.kiosk) == kiosk,
                                                       col(DesiredState.version) == version).values(published_at=now))
        session.commit()
    return len(sent)


def republish_all(engine: Engine) -> None:
    """On a worker's start: every kiosk's desired configuration is due again, so whatever the
    broker retains (lost with its store, or older) is replaced by the table's."""
    with Session(engine) as session:
        session.execute(update(DesiredState).values(published_at=None))
        session.commit()


def desired_versions(session: Session, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    if not keys:
        return {}
    sites = {site for site, _ in keys}
    rows = session.exec(select(DesiredState.site, DesiredState.kiosk, DesiredState.version)
                        .where(col(DesiredState.site).in_(sites))).all()
    wanted = set(keys)
    return {(site, kiosk): version for site, kiosk, version in rows if (site, kiosk) in wanted}


def config_state(desired_version: int | None, kiosk: Any) -> str | None:
    """Where a kiosk stands with its desired configuration: None (none desired), "in_sync",
    "refused" or "rolled_back" (it acted on the newest and kept or went back to an older one),
    or "lagging" (it has not acted on the newest yet: offline, or waiting for a quiet moment)."""
    if desired_version is None:
        return None
    if kiosk.config_version == desired_version:
        return "in_sync"
    if kiosk.config_tried_version == desired_version and kiosk.config_outcome in ("refused", "rolled_back"):
        return str(kiosk.config_outcome)
    return "lagging"
