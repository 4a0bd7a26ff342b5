"""Kiosks: clock_ahead_at, when a message dated past the allowed skew last came (issue 16)

Rows an older bridge froze with a time far ahead need no repair: such a stamp lies past the
horizon, so the next report replaces it (fleet.supersedes).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 07:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock_ahead_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.drop_column('clock_ahead_at')
