"""Kiosks: undelivered records per class, the growth of undelivered bytes, the runway (issue 19)

Rows written before have none: null, as a report of an older kiosk leaves them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outbox_depth', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('outbox_growth_bytes_per_h', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('runway_h', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.drop_column('runway_h')
        batch_op.drop_column('outbox_growth_bytes_per_h')
        batch_op.drop_column('outbox_depth')
