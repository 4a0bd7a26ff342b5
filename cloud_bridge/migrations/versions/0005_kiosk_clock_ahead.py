"""Kiosks: clock_ahead_at, and the fleet rows a kiosk time far ahead froze (issue 16)

A bridge before this revision ordered the fleet's state by kiosk time however far ahead it lay:
a report dated 8999 left its kiosk's telemetry and its devices' rows ignoring every later report.
Such stamps (past the allowed skew, fleet.KIOSK_TIME_AHEAD_ALLOWED, from now) are cleared, so the
next report wins, and the kiosk is flagged as the bridge now flags it on arrival.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 07:50:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# fleet.KIOSK_TIME_AHEAD_ALLOWED as it was when this was written (a migration does not change
# with the code).
AHEAD_ALLOWED = timedelta(days=1)


def _stamp(name: str) -> sa.ColumnClause[datetime]:
    return sa.column(name, sqlmodel.sql.sqltypes.UTCDateTime())


def upgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock_ahead_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    now = datetime.now(UTC)
    horizon = now + AHEAD_ALLOWED
    kiosks = sa.table('kiosks', _stamp('telemetry_at'), _stamp('clock_ahead_at'))
    op.execute(sa.update(kiosks).where(kiosks.c.telemetry_at > horizon).values(telemetry_at=None, clock_ahead_at=now))
    devices = sa.table('devices', *(_stamp(name) for name in ('identity_at', 'link_at', 'state_at', 'last_reading_at')))
    for name in ('identity_at', 'link_at', 'state_at', 'last_reading_at'):
        op.execute(sa.update(devices).where(devices.c[name] > horizon).values({name: None}))


def downgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.drop_column('clock_ahead_at')
