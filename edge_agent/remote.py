"""Remote commands from technicians: each acted on once, in time or not at all, and audited.

A command arrives on …/commands/{request_id}. Its request id is written to the audit table
before anything is done, so a redelivered command (QoS 1 may deliver twice; a broker keeps it
for a kiosk that was away) is recognised and not done again. A command past its `expires_at`
is refused: a technician's "start washer 3" must not run a day later when the kiosk comes
back online. Each handler gets `timeout_s`; one that takes longer is answered `timed_out` but
is not cancelled (a laundry start half-done must finish its own transaction). The result goes
up through the outbox, in the same transaction that closes the audit row.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import select

from contract.commands import (
    CommandName,
    CommandOutcome,
    CommandResultPayload,
    KioskCommand,
    decode_command,
    validate_args,
)
from contract.errors import ContractError
from contract.topics import REQUEST_ID_PATTERN, KioskTopics
from edge_agent.store.command_audit import CommandAudit
from edge_agent.store.outbox import Outbox
from edge_agent.uplink import ReceivedCommand

log = logging.getLogger(__name__)

# A result's detail, at most (the wire allows 2000 characters).
DETAIL_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: CommandOutcome
    detail: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Done once the answer is durably saved: a restart must not cut off its own "succeeded".
    then: Callable[[], None] | None = None


class RefusedCommand(Exception):
    """A handler's way to say "not tried": an unknown device, a bad config, no laundry room."""


# Given the command's arguments as their model (COMMAND_ARGS), already validated.
Handler = Callable[[Any], Awaitable[Answer]]

# The request id of the command a handler runs for: set in the handler's own task (a task runs
# in a copy of the context it was created in). A handler whose work goes up on a topic named by
# it (upload_support_bundle) reads it; the others have no use for it.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


class RemoteCommands:
    def __init__(
        self,
        outbox: Outbox,
        topics: KioskTopics,
        handlers: Mapping[CommandName, Handler],
        *,
        timeout_s: float,
        saved: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._outbox = outbox
        self._topics = topics
        self._handlers = handlers
        self._timeout_s = timeout_s
        self._saved = saved
        self._clock = clock
        self._running: set[asyncio.Task[Answer]] = set()

    def close_interrupted(self) -> int:
        """At start: commands that were running when the kiosk went down are answered 'failed'."""
        with self._outbox.unit_of_work() as session:
            interrupted = list(session.exec(select(CommandAudit).where(CommandAudit.outcome == None)))
        for row in interrupted:
            self._finish(row.request_id, row.command, Answer(CommandOutcome.FAILED, "interrupted by a kiosk restart"))
        return len(interrupted)

    def audit(self) -> list[CommandAudit]:
        with self._outbox.unit_of_work() as session:
            return list(session.exec(select(CommandAudit)))

    async def handle(self, received: ReceivedCommand) -> Answer | None:
        """Act on one command; None if this request id was seen before (nothing is done)."""
        request_id = received.request_id
        if not _valid_request_id(request_id):
            log.warning("ignored a command with an unusable request id %r", request_id[:80])
            return None
        try:
            command = decode_command(received.body)
        except ContractError as error:
            if not await asyncio.to_thread(self._begin, request_id, "unknown", None, None):
                return None
            answer = Answer(CommandOutcome.REFUSED, f"malformed command: {error.reason}")
            await asyncio.to_thread(self._finish, request_id, "unknown", answer)
            return answer
        if not await asyncio.to_thread(self._begin, request_id, command.command, command.issued_by, command.issued_at):
            log.info("command %s (%s) was received before: not done again", request_id, command.command)
            return None
        log.info("command %s from %s: %s %s", request_id, command.issued_by, command.command, command.args)
        answer = await self._run(request_id, command)
        await asyncio.to_thread(self._finish, request_id, command.command, answer)
        if answer.then is not None:
            answer.then()
        return answer

    async def _run(self, request_id: str, command: KioskCommand) -> Answer:
        now = self._clock()
        if command.expires_at is not None and now >= command.expires_at:
            return Answer(CommandOutcome.REFUSED, f"expired at {command.expires_at.isoformat()}; not done")
        handler = self._handlers.get(command.command)
        if handler is None:
            return Answer(CommandOutcome.REFUSED, f"{command.command} is not available on this kiosk")
        try:
            args = validate_args(command.command, command.args, strict=True)
        except ContractError as error:
            return Answer(CommandOutcome.REFUSED, error.reason)
        context = contextvars.copy_context()
        context.run(REQUEST_ID.set, request_id)
        task = asyncio.create_task(_refusals_answered(handler, args), name=f"command {command.command}", context=context)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        try:
            async with asyncio.timeout(self._timeout_s):
                # Shielded: on timeout the technician is told, the work itself goes on.
                return await asyncio.shield(task)
        except TimeoutError:
            task.add_done_callback(lambda done: _log_late(command, done))
            return Answer(CommandOutcome.TIMED_OUT, f"no outcome within {self._timeout_s:.0f} s; it may still finish")
        except Exception as error:  # a handler's bug: answered, logged, the agent goes on
            log.exception("command %s failed", command.command)
            return Answer(CommandOutcome.FAILED, f"{type(error).__name__}: {error}"[:DETAIL_LIMIT])

    def _begin(self, request_id: str, command: str, issued_by: str | None, issued_at: datetime | None) -> bool:
        with self._outbox.unit_of_work() as session:
            if session.get(CommandAudit, request_id) is not None:
                return False
            session.add(
                CommandAudit(
                    request_id=request_id,
                    command=command,
                    issued_by=issued_by,
                    issued_at=issued_at,
                    received_at=self._clock(),
                )
            )
            session.commit()
            return True

    def _finish(self, request_id: str, command: str, answer: Answer) -> None:
        payload = CommandResultPayload(
            request_id=request_id,
            command=command,
            outcome=answer.outcome,
            detail=answer.detail[:DETAIL_LIMIT] if answer.detail else None,
            data=answer.data,
        )
        with self._outbox.unit_of_work() as session:
            row = session.get(CommandAudit, request_id)
            if row is not None:
                row.outcome, row.detail, row.finished_at = answer.outcome.value, payload.detail, self._clock()
                session.add(row)
            self._outbox.add(session, self._topics.command_result(request_id), payload)
            session.commit()
        log.info("command %s (%s): %s%s", request_id, command, answer.outcome,
                 f": {answer.detail}" if answer.detail else "")
        self._saved()


async def _refusals_answered(handler: Handler, args: BaseModel) -> Answer:
    try:
        return await handler(args)
    except RefusedCommand as refusal:
        return Answer(CommandOutcome.REFUSED, str(refusal))


def _log_late(command: KioskCommand, done: asyncio.Task[Answer]) -> None:
    if done.cancelled():
        return
    error = done.exception()
    log.info("command %s finished after its timeout: %s", command.command, error or done.result().outcome)


def _valid_request_id(request_id: str) -> bool:
    return re.match(REQUEST_ID_PATTERN, request_id) is not None
