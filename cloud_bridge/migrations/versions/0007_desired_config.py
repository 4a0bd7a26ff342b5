"""Desired configuration: site and kiosk documents, each kiosk's versioned desired configuration,
and what the kiosk reports it runs (issue 19)

Rows written before have none: null, as a report of a kiosk before fleet configuration leaves them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'config_documents',
        sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('document', sa.JSON(), nullable=False),
        sa.Column('changed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('site', 'kiosk'),
    )
    op.create_table(
        'desired_configs',
        sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('changed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('site', 'kiosk'),
    )
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('config_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('config_tried_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('config_outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('config_reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.drop_column('config_reason')
        batch_op.drop_column('config_outcome')
        batch_op.drop_column('config_tried_version')
        batch_op.drop_column('config_version')
    op.drop_table('desired_configs')
    op.drop_table('config_documents')
