"""Devices: the newest failure the kiosk reported, when failing began, counts per code (issue 17)

Rows written before have none: null, as a report of an older kiosk leaves them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_error_code', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=True))
        batch_op.add_column(sa.Column('last_error_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_error_message', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch_op.add_column(sa.Column('failing_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('error_counts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('error_counts')
        batch_op.drop_column('failing_since')
        batch_op.drop_column('last_error_message')
        batch_op.drop_column('last_error_at')
        batch_op.drop_column('last_error_code')
