"""The laundry room's book: start transactions, residents' volunteer points, command numbers.

It lives in the kiosk's database (edge_agent/store/) so that a transaction's step, the points it charges and
the event that tells the cloud about it commit together or not at all. The transition rules
are drivers/laundry/vend.py's table; this module only persists them.

Every step is a compare-and-set on the transaction's state: a step that finds the state
already moved on (the poll loop and the start call both saw the machine's echo) does nothing,
and the charge row's primary key is the transaction id, so the database itself refuses a
second charge.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, TypeVar

from sqlalchemy import Index, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from contract.payloads import DeviceIdentity, LaundryVendEvent
from contract.topics import EventType, KioskTopics
from drivers.laundry.vend import CommandState, Effect, IllegalVendTransition, VendEvent, VendState, next_state
from edge_agent.store.outbox import Outbox

log = logging.getLogger(__name__)

# Command sequence numbers are 16-bit registers; 0 is what a board echoes before its first command.
MAX_COMMAND_SEQUENCE = 0xFFFF

FreeReason = Literal["over_80"]


class VendTransaction(SQLModel, table=True):
    __tablename__ = "laundry_transactions"
    # At most one transaction per machine that is not back to AVAILABLE, kept by the database
    # itself, not only by the check in `reserve`. The enum is stored by name.
    __table_args__ = (
        Index("uq_laundry_one_open_per_unit", "unit", unique=True,
              sqlite_where=text(f"state != '{VendState.AVAILABLE.name}'")),
    )

    id: str = Field(primary_key=True, max_length=36)
    unit: int = Field(index=True)
    model: str
    program: int
    price_points: int
    free_reason: str | None = None
    subject: str | None = Field(default=None, max_length=64, description="the resident's pseudonym")
    state: VendState = Field(index=True)
    command_sequence: int
    # Why it did not start or ended badly: a code the screen has words for (door_open,
    # not_started, machine_fault, ...), and its detail for staff and the cloud (`reason`).
    reason_code: str | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


class PointsAccount(SQLModel, table=True):
    """A resident's volunteer points at this station, by pseudonym; never a name or card number."""

    __tablename__ = "points_accounts"

    subject: str = Field(primary_key=True, max_length=64)
    balance: int
    birth_year: int | None = None


class PointsCharge(SQLModel, table=True):
    __tablename__ = "points_charges"

    transaction_id: str = Field(primary_key=True, max_length=36)  # one charge per transaction, ever
    subject: str = Field(max_length=64)
    points: int
    charged_at: datetime


class PointsRefund(SQLModel, table=True):
    """Points given back for a paid wash that faulted before it had really run."""

    __tablename__ = "points_refunds"

    transaction_id: str = Field(primary_key=True, max_length=36)  # one refund per transaction, ever
    subject: str = Field(max_length=64)
    points: int
    refunded_at: datetime


# Points taken or given back: each a row per transaction, read alike.
_Moved = TypeVar("_Moved", PointsCharge, PointsRefund)


class CommandSequence(SQLModel, table=True):
    """The last sequence number sent to each machine, so a reboot never reuses one."""

    __tablename__ = "laundry_command_sequences"

    unit: int = Field(primary_key=True)
    last: int


class MachineCommand(SQLModel, table=True):
    """Any other command (pause, resume, stop, clear_fault, add_time), persisted before it is
    sent so that after a lost reply or a reboot it is read back, never sent twice."""

    __tablename__ = "laundry_commands"

    id: str = Field(primary_key=True, max_length=36)
    unit: int = Field(index=True)
    command: str
    argument: int
    command_sequence: int
    state: CommandState = Field(index=True)
    result_code: int | None = None
    created_at: datetime
    updated_at: datetime


class LedgerRefusal(ValueError):
    """A start that may not begin; `reason` is a short code the screen turns into words."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Price:
    points: int
    free_reason: FreeReason | None


def price_of(list_price: int, birth_year: int | None, today: date, free_from_age: int) -> Price:
    """Free for residents `free_from_age` or older this year (a birth year is all the kiosk
    knows, so a resident turning 80 this year counts: the generous reading)."""
    if birth_year is not None and today.year - birth_year >= free_from_age:
        return Price(0, "over_80")
    return Price(list_price, None)


def next_command_sequence(last: int, avoid: int | None) -> int:
    """1..65535, wrapping, never 0 and never the number the machine echoes now: a start must
    not be taken as confirmed by the echo of an older command."""
    candidate = last % MAX_COMMAND_SEQUENCE + 1
    if candidate == avoid:
        candidate = candidate % MAX_COMMAND_SEQUENCE + 1
    return candidate


class LaundryLedger:
    def __init__(
        self,
        outbox: Outbox,
        topics: KioskTopics,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._outbox = outbox
        self._topics = topics
        self._clock = clock

    # -- residents' points --

    def open_account(self, subject: str, *, balance: int = 0, birth_year: int | None = None) -> None:
        with self._outbox.unit_of_work() as session:
            session.merge(PointsAccount(subject=subject, balance=balance, birth_year=birth_year))
            session.commit()

    def account(self, subject: str) -> PointsAccount | None:
        with self._outbox.unit_of_work() as session:
            return session.get(PointsAccount, subject)

    def charges(self, transaction_id: str | None = None) -> list[PointsCharge]:
        return self._points_moved(PointsCharge, transaction_id)

    def refunds(self, transaction_id: str | None = None) -> list[PointsRefund]:
        return self._points_moved(PointsRefund, transaction_id)

    def _points_moved(self, model: type[_Moved], transaction_id: str | None) -> list[_Moved]:
        statement = select(model)
        if transaction_id is not None:
            statement = statement.where(model.transaction_id == transaction_id)
        with self._outbox.unit_of_work() as session:
            return list(session.exec(statement))

    # -- other commands --

    def begin_command(self, *, unit: int, command: str, argument: int, echoed_sequence: int | None) -> MachineCommand:
        now = self._clock()
        with self._outbox.unit_of_work() as session:
            sequence = self._next_sequence(session, unit, echoed_sequence)
            row = MachineCommand(
                id=str(uuid.uuid4()),
                unit=unit,
                command=command,
                argument=argument,
                command_sequence=sequence,
                state=CommandState.SENT,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def finish_command(self, command_id: str, state: CommandState, result_code: int | None) -> MachineCommand | None:
        """SENT -> `state`; None if it was finished already."""
        with self._outbox.unit_of_work() as session:
            row = session.get(MachineCommand, command_id)
            if row is None or row.state != CommandState.SENT:
                return None
            row.state, row.result_code, row.updated_at = state, result_code, self._clock()
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def get_command(self, command_id: str) -> MachineCommand | None:
        with self._outbox.unit_of_work() as session:
            return session.get(MachineCommand, command_id)

    def in_doubt(self) -> list[VendTransaction | MachineCommand]:
        """Every start (STARTING) and command (SENT) whose outcome is not known yet, oldest first:
        each waits for its machine's echo (drivers/laundry/vend.py, VERDICTS), and while one
        does, its machine takes no other. Read from the book, so a restart loses none."""
        starting = select(VendTransaction).where(VendTransaction.state == VendState.STARTING)
        with self._outbox.unit_of_work() as session:
            transactions = list(session.exec(starting))
        rows: list[VendTransaction | MachineCommand] = [*transactions, *self.unfinished_commands()]
        return sorted(rows, key=lambda row: row.created_at)

    def unfinished_commands(self) -> list[MachineCommand]:
        statement = select(MachineCommand).where(MachineCommand.state == CommandState.SENT)
        with self._outbox.unit_of_work() as session:
            return list(session.exec(statement))

    def _next_sequence(self, session: Session, unit: int, echoed_sequence: int | None) -> int:
        row = session.get(CommandSequence, unit) or CommandSequence(unit=unit, last=0)
        row.last = next_command_sequence(row.last, echoed_sequence)
        session.add(row)
        return row.last

    # -- transactions --

    def get(self, transaction_id: str) -> VendTransaction | None:
        with self._outbox.unit_of_work() as session:
            return session.get(VendTransaction, transaction_id)

    def unfinished(self) -> list[VendTransaction]:
        """Every transaction not back to AVAILABLE: at most one per machine."""
        statement = select(VendTransaction).where(VendTransaction.state != VendState.AVAILABLE)
        with self._outbox.unit_of_work() as session:
            return list(session.exec(statement.order_by(col(VendTransaction.created_at))))

    def reserve(
        self,
        *,
        unit: int,
        model: str,
        program: int,
        list_price: int,
        subject: str,
        free_from_age: int,
        echoed_sequence: int | None,
    ) -> VendTransaction:
        """AVAILABLE -> RESERVED, with its price and its command number fixed now; nothing is
        charged and nothing is sent. Raises LedgerRefusal."""
        now = self._clock()
        with self._outbox.unit_of_work() as session:
            busy = session.exec(
                select(VendTransaction).where(VendTransaction.unit == unit, VendTransaction.state != VendState.AVAILABLE)
            ).first()
            if busy is not None:
                raise LedgerRefusal("machine_busy", f"unit {unit} is {busy.state} (transaction {busy.id})")
            account = session.get(PointsAccount, subject)
            if account is None:
                raise LedgerRefusal("unknown_resident", "no points account for this resident at this station")
            price = price_of(list_price, account.birth_year, now.date(), free_from_age)
            if account.balance < price.points:
                raise LedgerRefusal("not_enough_points", f"needs {price.points} points, has {account.balance}")
            sequence = self._next_sequence(session, unit, echoed_sequence)
            next_state(VendState.AVAILABLE, VendEvent.RESERVE)  # the table allows it, or this is our bug
            transaction = VendTransaction(
                id=str(uuid.uuid4()),
                unit=unit,
                model=model,
                program=program,
                price_points=price.points,
                free_reason=price.free_reason,
                subject=subject,
                state=VendState.RESERVED,
                command_sequence=sequence,
                created_at=now,
                updated_at=now,
            )
            session.add(transaction)
            try:
                session.commit()
            except IntegrityError:
                # Another reservation of this machine committed between our check and this write.
                raise LedgerRefusal("machine_busy", f"unit {unit} was reserved meanwhile") from None
            session.refresh(transaction)
            return transaction

    def step(
        self,
        transaction_id: str,
        expected: VendState,
        event: VendEvent,
        *,
        reason_code: str | None = None,
        reason: str | None = None,
        device: DeviceIdentity | None = None,
    ) -> VendTransaction | None:
        """Apply `event` if the transaction is still in `expected`; None if it moved on already.
        `reason_code`: why, as a code for the screen; `reason`: its detail (the code if none).

        The step, its effect (the one charge) and its event for the cloud (the transition's
        `tells`) commit together."""
        now = self._clock()
        with self._outbox.unit_of_work() as session:
            transaction = session.get(VendTransaction, transaction_id)
            if transaction is None or transaction.state != expected:
                return None
            transition = next_state(expected, event)
            charged = 0
            if transition.effect is Effect.CHARGE and transaction.price_points > 0:
                assert transaction.subject is not None
                account = session.get(PointsAccount, transaction.subject)
                if account is None:
                    raise IllegalVendTransition(f"transaction {transaction_id}: its account vanished")
                # Checked at reservation; a machine that has started is paid for even if the
                # balance moved since (the balance may then go below zero; staff see it).
                account.balance -= transaction.price_points
                session.add(account)
                session.add(
                    PointsCharge(
                        transaction_id=transaction.id,
                        subject=transaction.subject,
                        points=transaction.price_points,
                        charged_at=now,
                    )
                )
                charged = transaction.price_points
            refunded = self._refund(session, transaction, now) if transition.effect is Effect.REFUND else 0
            transaction.state = transition.to
            transaction.updated_at = now
            reason = reason or reason_code
            if reason is not None:
                transaction.reason_code, transaction.reason = reason_code, reason
            session.add(transaction)
            told = transition.tells
            if told is not None:
                payload = LaundryVendEvent(
                    transaction_id=uuid.UUID(transaction.id),
                    unit=transaction.unit,
                    program=transaction.program,
                    outcome=told,
                    points_charged=charged,
                    free_reason=transaction.free_reason if told == "started" else None,  # type: ignore[arg-type]
                    reason=reason,
                    subject=transaction.subject,
                    points_refunded=refunded,
                )
                # Without points_refunded when there is none: a bridge from before the field
                # then still takes every other laundry_vend (docs/protocol.md, laundry_vend).
                wire = payload.model_dump(mode="json", exclude=None if refunded else {"points_refunded"})
                self._outbox.add(session, self._topics.event(EventType.LAUNDRY_VEND), wire, device=device)
            session.commit()
            session.refresh(transaction)
            return transaction

    def _refund(self, session: Session, transaction: VendTransaction, now: datetime) -> int:
        """Give back what this transaction's charge took, in the step's own commit; the refund
        row's primary key is the transaction id, so the database refuses a second refund."""
        charge = session.get(PointsCharge, transaction.id)
        if charge is None or charge.points == 0 or session.get(PointsRefund, transaction.id) is not None:
            return 0
        account = session.get(PointsAccount, charge.subject)
        if account is None:
            raise IllegalVendTransition(f"transaction {transaction.id}: its account vanished")
        account.balance += charge.points
        session.add(account)
        session.add(PointsRefund(transaction_id=transaction.id, subject=charge.subject, points=charge.points, refunded_at=now))
        return charge.points
