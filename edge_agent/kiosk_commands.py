"""What each remote command does on this kiosk (the runner, audit and timeout: edge_agent/remote.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from doorstep.contract.commands import CommandName, CommandOutcome
from edge_agent.laundry import LaundryRoom
from edge_agent.remote import Answer, Handler, RefusedCommand

if TYPE_CHECKING:
    from edge_agent.agent import Agent

_PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
# Laundry command outcomes (edge_agent/laundry.py) as command outcomes.
_LAUNDRY_OUTCOMES = {
    "started": CommandOutcome.SUCCEEDED,
    "done": CommandOutcome.SUCCEEDED,
    "refused": CommandOutcome.REFUSED,
    "not_received": CommandOutcome.FAILED,
    # The machine's answer was lost; its echo is being read back. The transaction's events say.
    "checking": CommandOutcome.TIMED_OUT,
}


def _int(args: Mapping[str, Any], name: str) -> int:
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RefusedCommand(f"args.{name}: an integer is required")
    return value


def _str(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise RefusedCommand(f"args.{name}: a non-empty string is required")
    return value


def kiosk_handlers(agent: Agent) -> dict[CommandName, Handler]:
    def laundry() -> LaundryRoom:
        if agent.laundry is None:
            raise RefusedCommand("this kiosk has no laundry room, or its line is not open")
        return agent.laundry

    async def ping(_args: Mapping[str, Any]) -> Answer:
        return Answer(CommandOutcome.SUCCEEDED, "pong", {"kiosk_time": datetime.now(UTC).isoformat()})

    async def status(_args: Mapping[str, Any]) -> Answer:
        return Answer(CommandOutcome.SUCCEEDED, None, (await agent.snapshot()).model_dump(mode="json"))

    async def reload_config(_args: Mapping[str, Any]) -> Answer:
        problems = agent.check_new_config()
        if problems:
            raise RefusedCommand("the configuration file has problems; the running one is kept:\n" + "\n".join(problems))
        return Answer(CommandOutcome.SUCCEEDED, "the file is valid: the agent restarts with it", then=agent.request_reload)

    async def reconnect_device(args: Mapping[str, Any]) -> Answer:
        address = _str(args, "address")
        if not agent.restart_device(address):
            raise RefusedCommand(f"no device {address!r} at this kiosk")
        return Answer(CommandOutcome.SUCCEEDED, f"{address}: its session restarted")

    async def laundry_start(args: Mapping[str, Any]) -> Answer:
        subject = _str(args, "subject")
        if not _PSEUDONYM.match(subject):
            raise RefusedCommand("args.subject: a resident pseudonym (64 hex digits) is required")
        result = await laundry().start_program(_int(args, "unit"), _int(args, "program"), subject)
        data = {"transaction_id": result.transaction_id, "points_charged": result.points_charged}
        return Answer(_LAUNDRY_OUTCOMES[result.outcome], result.reason, data)

    def machine_command(name: str) -> Handler:
        async def run(args: Mapping[str, Any]) -> Answer:
            view = await laundry().command(_int(args, "unit"), name)  # type: ignore[arg-type]
            return Answer(_LAUNDRY_OUTCOMES[view.outcome], view.reason, {"command_id": view.command_id})

        return run

    async def flush_outbox(_args: Mapping[str, Any]) -> Answer:
        assert agent.uplink is not None and agent.outbox is not None
        agent.uplink.request_resend()
        depth = {c.name.lower(): n for c, (n, _) in agent.outbox.depth().items()}
        return Answer(CommandOutcome.SUCCEEDED, "every unconfirmed record is being sent again", {"undelivered": depth})

    async def export_diagnostics(_args: Mapping[str, Any]) -> Answer:
        assert agent.scheduler is not None and agent.remote is not None
        jobs = [state.model_dump(mode="json") for state in agent.job_states()]
        audit = sorted(agent.remote.audit(), key=lambda row: row.received_at)[-20:]
        return Answer(
            CommandOutcome.SUCCEEDED,
            None,
            {
                "version": version("doorstep"),
                "settings": agent.settings.model_dump(mode="json"),  # SecretStr fields come out masked
                "jobs": jobs,
                "uplink_connected": agent.uplink.connected if agent.uplink else False,
                "telemetry": (await agent.snapshot()).model_dump(mode="json"),
                "recent_commands": [
                    {"request_id": r.request_id, "command": r.command, "issued_by": r.issued_by, "outcome": r.outcome}
                    for r in audit
                ],
            },
        )

    return {
        CommandName.PING: ping,
        CommandName.STATUS: status,
        CommandName.RELOAD_CONFIG: reload_config,
        CommandName.RECONNECT_DEVICE: reconnect_device,
        CommandName.LAUNDRY_START: laundry_start,
        CommandName.LAUNDRY_STOP: machine_command("stop"),
        CommandName.LAUNDRY_CLEAR_FAULT: machine_command("clear_fault"),
        CommandName.FLUSH_OUTBOX: flush_outbox,
        CommandName.EXPORT_DIAGNOSTICS: export_diagnostics,
    }
