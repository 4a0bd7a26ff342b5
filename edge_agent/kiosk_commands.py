"""What each remote command does on this kiosk (the runner, audit and timeout: edge_agent/remote.py).

The handlers act on a `RunningKiosk`: the few parts and operations of the agent they need,
which edge_agent/agent.py hands over (its Agent is one), so this module does not import the
agent that imports it. Each handler is given its command's arguments as their contract model
(COMMAND_ARGS), validated by the runner: a handler checks no argument by hand."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Final, Protocol

from contract.commands import CommandName, CommandOutcome, DeviceArgs, LaundryStartArgs, LaundryUnitArgs, NoArgs
from contract.software import UpdateSoftwareArgs
from contract.telemetry import KioskTelemetry
from contract.topics import KioskTopics
from edge_agent import support_bundle
from edge_agent.laundry import LaundryRoom
from edge_agent.remote import REQUEST_ID, Answer, Handler, RefusedCommand, RemoteCommands
from edge_agent.settings import AgentSettings
from edge_agent.status_file import JobState
from edge_agent.store.outbox import Outbox
from edge_agent.updates.updater import Updater
from edge_agent.uplink import Uplink

# Laundry command outcomes (edge_agent/laundry.py) as command outcomes.
_LAUNDRY_OUTCOMES = {
    "started": CommandOutcome.SUCCEEDED,
    "done": CommandOutcome.SUCCEEDED,
    "refused": CommandOutcome.REFUSED,
    "not_received": CommandOutcome.FAILED,
    # The machine's answer was lost; its echo is being read back. The transaction's events say.
    "checking": CommandOutcome.TIMED_OUT,
}
# How long a support bundle's upload waits for the broker's PUBACK: within the default command
# timeout (30 s), with the time gathering it takes (doctor's checks, the journal).
UPLOAD_TIMEOUT_S: Final = 20.0


class RunningKiosk(Protocol):
    """What the commands act on: the running agent's parts (None until it has opened them) and
    the operations it offers."""

    settings: AgentSettings
    laundry: LaundryRoom | None
    outbox: Outbox | None
    uplink: Uplink | None
    remote: RemoteCommands | None
    updater: Updater | None

    async def snapshot(self) -> KioskTelemetry: ...

    def job_states(self) -> list[JobState]: ...

    def check_new_config(self) -> list[str]: ...

    def request_reload(self) -> None: ...

    def restart_device(self, address: str) -> bool: ...


def kiosk_handlers(agent: RunningKiosk) -> dict[CommandName, Handler]:
    def laundry() -> LaundryRoom:
        if agent.laundry is None:
            raise RefusedCommand("this kiosk has no laundry room, or its line is not open")
        return agent.laundry

    async def ping(_args: NoArgs) -> Answer:
        return Answer(CommandOutcome.SUCCEEDED, "pong", {"kiosk_time": datetime.now(UTC).isoformat()})

    async def status(_args: NoArgs) -> Answer:
        return Answer(CommandOutcome.SUCCEEDED, None, (await agent.snapshot()).model_dump(mode="json"))

    async def reload_config(_args: NoArgs) -> Answer:
        problems = agent.check_new_config()
        if problems:
            raise RefusedCommand("the configuration file has problems; the running one is kept:\n" + "\n".join(problems))
        return Answer(CommandOutcome.SUCCEEDED, "the file is valid: the agent restarts with it", then=agent.request_reload)

    async def reconnect_device(args: DeviceArgs) -> Answer:
        if not agent.restart_device(args.address):
            raise RefusedCommand(f"no device {args.address!r} at this kiosk")
        return Answer(CommandOutcome.SUCCEEDED, f"{args.address}: its session restarted")

    async def laundry_start(args: LaundryStartArgs) -> Answer:
        result = await laundry().start_program(args.unit, args.program, args.subject)
        data = {"transaction_id": result.transaction_id, "points_charged": result.points_charged}
        return Answer(_LAUNDRY_OUTCOMES[result.outcome], result.reason, data)

    def machine_command(name: str) -> Handler:
        async def run(args: LaundryUnitArgs) -> Answer:
            view = await laundry().command(args.unit, name)  # type: ignore[arg-type]
            return Answer(_LAUNDRY_OUTCOMES[view.outcome], view.reason, {"command_id": view.command_id})

        return run

    async def flush_outbox(_args: NoArgs) -> Answer:
        assert agent.uplink is not None and agent.outbox is not None
        agent.uplink.request_resend()
        depth = {c.name.lower(): n for c, (n, _) in agent.outbox.depth().items()}
        return Answer(CommandOutcome.SUCCEEDED, "every unconfirmed record is being sent again", {"undelivered": depth})

    async def export_diagnostics(_args: NoArgs) -> Answer:
        assert agent.remote is not None
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

    async def upload_support_bundle(_args: NoArgs) -> Answer:
        uplink = agent.uplink
        assert uplink is not None
        request_id = REQUEST_ID.get()
        bundle = await asyncio.to_thread(support_bundle.gather, agent.settings, request_id, connected=uplink.connected)
        topic = KioskTopics(agent.settings.site, agent.settings.kiosk).support_bundle(request_id)
        refusal = await asyncio.to_thread(uplink.upload, topic, bundle.body, UPLOAD_TIMEOUT_S)
        manifest = bundle.manifest
        data = {"bytes": len(bundle.body), "sha256": hashlib.sha256(bundle.body).hexdigest(),
                "logs_source": manifest.logs_source, "logs_truncated": manifest.logs_truncated,
                "logs_omitted_bytes": manifest.logs_omitted_bytes}
        if refusal is not None:
            return Answer(CommandOutcome.FAILED, f"the support bundle was not uploaded: {refusal}", data)
        return Answer(CommandOutcome.SUCCEEDED, f"support bundle of {len(bundle.body)} bytes uploaded", data)

    async def update_software(args: UpdateSoftwareArgs) -> Answer:
        assert agent.updater is not None
        outcome, message, start = agent.updater.accept(args)
        return Answer(outcome, message, agent.updater.report().model_dump(mode="json"), then=start)

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
        CommandName.UPLOAD_SUPPORT_BUNDLE: upload_support_bundle,
        CommandName.UPDATE_SOFTWARE: update_software,
    }
