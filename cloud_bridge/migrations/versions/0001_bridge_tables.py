"""The bridge's tables: readings, events, telemetry, command results, dead letters

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 11:54:15.575831
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('command_results',
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kiosk_time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('kiosk_clock_trusted', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('command', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.create_index('ix_command_results_kiosk_time', ['site', 'kiosk', 'kiosk_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_command_results_request_id'), ['request_id'], unique=False)

    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('raw_size', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('events',
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kiosk_time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('kiosk_clock_trusted', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('device_model', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('device_address', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('device_firmware', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_kiosk_time', ['site', 'kiosk', 'kiosk_time'], unique=False)
        batch_op.create_index('ix_events_type_time', ['type', 'kiosk_time'], unique=False)

    op.create_table('readings',
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kiosk_time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('kiosk_clock_trusted', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('device_model', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('device_address', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('device_firmware', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('device_time', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.create_index('ix_readings_kiosk_time', ['site', 'kiosk', 'kiosk_time'], unique=False)
        batch_op.create_index('ix_readings_subject_time', ['subject', 'kiosk_time'], unique=False)

    op.create_table('telemetry',
    sa.Column('message_id', sa.Uuid(), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kiosk_time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('kiosk_clock_trusted', sa.Boolean(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.create_index('ix_telemetry_kiosk_time', ['site', 'kiosk', 'kiosk_time'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.drop_index('ix_telemetry_kiosk_time')

    op.drop_table('telemetry')
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.drop_index('ix_readings_subject_time')
        batch_op.drop_index('ix_readings_kiosk_time')

    op.drop_table('readings')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type_time')
        batch_op.drop_index('ix_events_kiosk_time')

    op.drop_table('events')
    op.drop_table('dead_letters')
    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_command_results_request_id'))
        batch_op.drop_index('ix_command_results_kiosk_time')

    op.drop_table('command_results')
