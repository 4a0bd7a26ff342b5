"""Commands to kiosks: POST creates one and sends it; its status follows it to the result."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlmodel import col, func, select


from cloud_bridge import commands
from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import audit
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
    unprocessable,
)
from cloud_bridge.commands import Command, CommandArgsError, CommandPublic, CommandStatus
from cloud_bridge.fleet import Kiosk
from contract.commands import CommandName

router = APIRouter(prefix="/api/v1", tags=["commands"], responses=ERROR_RESPONSES)


class CommandRequest(BaseModel):
    command: CommandName
    args: dict[str, Any] = Field(default_factory=dict, description="per command (docs/protocol.md, Remote commands)")
    ttl_s: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600, description="refused by the kiosk after this; the bridge's default if unset"
    )


@router.post("/kiosks/{site}/{kiosk}/commands", response_model=CommandPublic, status_code=status.HTTP_201_CREATED)
def create_command(
    session: SessionDep, context: ContextDep, http: Request, site: str, kiosk: str, request: CommandRequest,
    who: Principal = require(Capability.COMMANDS_SEND),
) -> CommandPublic:
    """Stored, then published to the kiosk (at QoS 1, to its persistent session). Audited."""
    now = context.clock()
    target = f"{site}/{kiosk}"

    def refused(reason: str) -> None:
        audit(session, actor=who.username, action="command", target=target, result="refused", now=now,
              client=client_address(http), command=request.command.value, reason=reason)
        session.commit()

    try:
        site_in_scope(who, Capability.COMMANDS_SEND, site)
    except HTTPException:
        refused("another site")
        raise
    if session.get(Kiosk, (site, kiosk)) is None:
        refused("unknown kiosk")
        raise not_found(f"no kiosk {target} has sent anything")
    ttl = timedelta(seconds=request.ttl_s) if request.ttl_s is not None else context.command_ttl
    try:
        row = commands.create(session, site=site, kiosk=kiosk, command=request.command, args=request.args,
                              issued_by=who.username, now=now, ttl=ttl)
    except CommandArgsError as error:
        session.rollback()
        refused(str(error))
        raise unprocessable(f"{request.command}: {error}") from None
    if context.publisher is not None:
        row.published_at = now
    audit(session, actor=who.username, action="command", target=target, result="ok", now=now,
          client=client_address(http), command=request.command.value, request_id=row.request_id, args=row.args)
    session.commit()
    session.refresh(row)
    public = CommandPublic.model_validate(row, from_attributes=True)
    if context.publisher is not None:
        context.publisher.publish_command(row.request_id, *commands.message_of(row))
    return public


@router.get("/commands", response_model=Page[CommandPublic])
def list_commands(
    session: SessionDep, page: PageDep, who: Principal = require(Capability.FLEET_READ), site: str | None = None,
    kiosk: str | None = None, status: CommandStatus | None = None,
) -> Page[CommandPublic]:
    """Newest first."""
    site = site_in_scope(who, Capability.FLEET_READ, site)
    conditions = []
    for column, value in ((Command.site, site), (Command.kiosk, kiosk), (Command.status, status)):
        if value is not None:
            conditions.append(col(column) == value)
    total = session.exec(select(func.count()).select_from(Command).where(*conditions)).one()
    rows = session.exec(
        select(Command).where(*conditions).order_by(col(Command.issued_at).desc()).offset(page.offset).limit(page.limit)
    ).all()
    return Page(items=[CommandPublic.model_validate(r, from_attributes=True) for r in rows], total=total,
                limit=page.limit, offset=page.offset)


@router.get("/commands/{request_id}", response_model=CommandPublic)
def get_command(session: SessionDep, request_id: str, who: Principal = require(Capability.FLEET_READ)) -> CommandPublic:
    row = session.get(Command, request_id)
    if row is None or not who.may(Capability.FLEET_READ, row.site):
        raise not_found(f"no command {request_id}")
    return CommandPublic.model_validate(row, from_attributes=True)
