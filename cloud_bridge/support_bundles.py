"""Support bundles kiosks upload when a technician asks (docs/protocol.md, Support bundles):
stored whole, the newest `kept` per kiosk, each tied to the command that asked for it.

A bundle is stored only as the answer to an `upload_support_bundle` command of that kiosk with
that request id: the broker's ACL lets a kiosk write only its own bundle topic, and this keeps a
kiosk from filling the table with bundles nobody asked for. Its manifest is read (contract/
support_bundle.py) so that the list says what each holds; the rest of the archive is the
technician's to open. Who asked is the command's `issued_by` (audited as a command); who
downloaded is in the audit log (cloud_bridge/api/support_bundles.py).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, LargeBinary, delete
from sqlalchemy.orm import defer
from sqlmodel import Field, Session, SQLModel, col, func, select

from contract.commands import CommandName
from contract.errors import ContractError
from contract.support_bundle import read_manifest
from contract.topics import ParsedTopic

from cloud_bridge.commands import Command

# Bundles kept per kiosk by default: the newest, each up to 96 KiB.
DEFAULT_KEPT = 5


class SupportBundleBase(SQLModel):
    request_id: str = Field(primary_key=True, max_length=64, description="the upload_support_bundle command's")
    site: str = Field(max_length=32)
    kiosk: str = Field(max_length=32)
    requested_by: str = Field(max_length=64)
    requested_at: datetime
    received_at: datetime
    size_bytes: int
    sha256: str = Field(max_length=64)
    logs_truncated: bool
    manifest: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, description="the bundle's manifest.json")


class SupportBundle(SupportBundleBase, table=True):
    __tablename__ = "support_bundles"
    __table_args__ = (Index("ix_support_bundles_kiosk", "site", "kiosk", "received_at"),)

    content: bytes = Field(sa_type=LargeBinary, description="the tar.gz as the kiosk sent it")


class SupportBundlePublic(SupportBundleBase):
    pass


class BundleRefused(ValueError):
    """Not stored, and why."""


def store(session: Session, topic: ParsedTopic, body: bytes, received_at: datetime, *, kept: int) -> SupportBundle:
    """Store a kiosk's bundle (the caller commits), and forget that kiosk's older ones beyond
    `kept`. The same bundle again (QoS 1 may deliver it twice) is the one stored."""
    assert topic.name is not None
    command = session.get(Command, topic.name)
    if (command is None or command.command != CommandName.UPLOAD_SUPPORT_BUNDLE
            or (command.site, command.kiosk) != (topic.site, topic.kiosk)):
        raise BundleRefused(f"no support bundle was asked of {topic.site}/{topic.kiosk} as {topic.name}")
    existing = session.get(SupportBundle, topic.name)
    if existing is not None:
        return existing
    try:
        manifest = read_manifest(body)
    except ContractError as error:
        raise BundleRefused(error.reason) from None
    if (manifest.site, manifest.kiosk, manifest.request_id) != (topic.site, topic.kiosk, topic.name):
        raise BundleRefused(f"its manifest names {manifest.site}/{manifest.kiosk} {manifest.request_id}, "
                            f"not the topic's {topic.site}/{topic.kiosk} {topic.name}")
    bundle = SupportBundle(
        request_id=topic.name, site=topic.site, kiosk=topic.kiosk, requested_by=command.issued_by,
        requested_at=command.issued_at, received_at=received_at, size_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(), logs_truncated=manifest.logs_truncated,
        manifest=manifest.model_dump(mode="json"), content=body,
    )
    session.add(bundle)
    session.flush()
    newest = select(SupportBundle.request_id).where(
        col(SupportBundle.site) == topic.site, col(SupportBundle.kiosk) == topic.kiosk,
    ).order_by(col(SupportBundle.received_at).desc(), col(SupportBundle.request_id).desc()).limit(kept)
    kept_ids = list(session.exec(newest))
    session.execute(delete(SupportBundle).where(
        col(SupportBundle.site) == topic.site, col(SupportBundle.kiosk) == topic.kiosk,
        col(SupportBundle.request_id).not_in(kept_ids)))
    return bundle


def listed(session: Session, site: str, kiosk: str, *, limit: int, offset: int) -> tuple[list[SupportBundlePublic], int]:
    """A kiosk's bundles, newest first, without their content; and how many there are."""
    where = (col(SupportBundle.site) == site, col(SupportBundle.kiosk) == kiosk)
    rows = session.exec(select(SupportBundle).options(defer(SupportBundle.content))  # type: ignore[arg-type]  # typed as bytes by SQLModel
                        .where(*where).order_by(col(SupportBundle.received_at).desc()).offset(offset).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(SupportBundle).where(*where)).one()
    return [SupportBundlePublic.model_validate(row, from_attributes=True) for row in rows], total
