"""Support bundles kiosks upload when a technician asks (issue 19): the archive, its manifest, who asked

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('support_bundles',
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('requested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('logs_truncated', sa.Boolean(), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('request_id')
    )
    op.create_index('ix_support_bundles_kiosk', 'support_bundles', ['site', 'kiosk', 'received_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_support_bundles_kiosk', table_name='support_bundles')
    op.drop_table('support_bundles')
