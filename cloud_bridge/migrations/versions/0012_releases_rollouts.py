"""Software updates (issue 20): uploaded release bundles, rollouts and their kiosks, and the
software each kiosk reports it runs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('software_version', _TEXT(length=48), nullable=True))
        batch_op.add_column(sa.Column('software_previous_version', _TEXT(length=48), nullable=True))
        batch_op.add_column(sa.Column('update_version', _TEXT(length=48), nullable=True))
        batch_op.add_column(sa.Column('update_state', _TEXT(length=16), nullable=True))
        batch_op.add_column(sa.Column('update_reason', _TEXT(length=2000), nullable=True))
        batch_op.add_column(sa.Column('update_rollout_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('update_at', _TIME(), nullable=True))
    op.create_table('releases',
    sa.Column('version', _TEXT(length=48), nullable=False),
    sa.Column('sha256', _TEXT(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('notes', _TEXT(length=4000), nullable=True),
    sa.Column('uploaded_by', _TEXT(length=64), nullable=False),
    sa.Column('uploaded_at', _TIME(), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('rollouts',
    sa.Column('version', _TEXT(length=48), nullable=False),
    sa.Column('target_kind', _TEXT(length=16), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('canaries', sa.Integer(), nullable=False),
    sa.Column('max_failure_share', sa.Float(), nullable=False),
    sa.Column('status', _TEXT(length=16), nullable=False),
    sa.Column('phase', _TEXT(length=16), nullable=False),
    sa.Column('paused_reason', _TEXT(length=500), nullable=True),
    sa.Column('failures_accepted', sa.Integer(), nullable=False),
    sa.Column('created_by', _TEXT(length=64), nullable=False),
    sa.Column('created_at', _TIME(), nullable=False),
    sa.Column('updated_at', _TIME(), nullable=False),
    sa.Column('finished_at', _TIME(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_rollouts_status'), 'rollouts', ['status'], unique=False)
    op.create_index(op.f('ix_rollouts_version'), 'rollouts', ['version'], unique=False)
    op.create_table('rollout_kiosks',
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('site', _TEXT(length=32), nullable=False),
    sa.Column('kiosk', _TEXT(length=32), nullable=False),
    sa.Column('canary', sa.Boolean(), nullable=False),
    sa.Column('state', _TEXT(length=16), nullable=False),
    sa.Column('reason', _TEXT(length=2000), nullable=True),
    sa.Column('request_id', _TEXT(length=64), nullable=True),
    sa.Column('asked_at', _TIME(), nullable=True),
    sa.Column('state_at', _TIME(), nullable=True),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], ),
    sa.PrimaryKeyConstraint('rollout_id', 'site', 'kiosk')
    )


def downgrade() -> None:
    op.drop_table('rollout_kiosks')
    op.drop_index(op.f('ix_rollouts_version'), table_name='rollouts')
    op.drop_index(op.f('ix_rollouts_status'), table_name='rollouts')
    op.drop_table('rollouts')
    op.drop_table('releases')
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        for column in ('update_at', 'update_rollout_id', 'update_reason', 'update_state', 'update_version',
                       'software_previous_version', 'software_version'):
            batch_op.drop_column(column)
