"""Fleet state, alerts, commands, webhook notifications; sequence and resident indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 07:40:13.815587
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('about', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('opened_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('acknowledged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('open_key', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('open_key')
    )
    op.create_table('commands',
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('command', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('issued_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('issued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('delivered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commands_status'), ['status'], unique=False)

    op.create_table('devices',
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('firmware', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('identity_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('link', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('battery_percent', sa.Integer(), nullable=True),
    sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('clock_offset_s', sa.Float(), nullable=True),
    sa.Column('link_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('error_code', sa.Integer(), nullable=True),
    sa.Column('error_text', sa.JSON(), nullable=True),
    sa.Column('state_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_reading_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('site', 'kiosk', 'address')
    )
    op.create_table('kiosks',
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kiosk', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status_reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('status_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('first_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('seq_checked_through', sa.Integer(), nullable=False),
    sa.Column('clock_trusted', sa.Boolean(), nullable=True),
    sa.Column('telemetry_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('uptime_s', sa.Float(), nullable=True),
    sa.Column('backlog_records', sa.Integer(), nullable=True),
    sa.Column('backlog_oldest_age_s', sa.Float(), nullable=True),
    sa.Column('backlog_rising', sa.Integer(), nullable=False),
    sa.Column('outbox_bytes', sa.BigInteger(), nullable=True),
    sa.Column('outbox_budget_bytes', sa.BigInteger(), nullable=True),
    sa.Column('health_over_budget', sa.Boolean(), nullable=False),
    sa.Column('disk_free_bytes', sa.BigInteger(), nullable=True),
    sa.Column('cpu_temperature_c', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('site', 'kiosk')
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('delivered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('given_up', sa.Boolean(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_next_attempt_at'), ['next_attempt_at'], unique=False)

    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.create_index('ix_command_results_kiosk_seq', ['site', 'kiosk', 'seq'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_kiosk_seq', ['site', 'kiosk', 'seq'], unique=False)

    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.create_index('ix_readings_kiosk_seq', ['site', 'kiosk', 'seq'], unique=False)
        batch_op.create_index('ix_readings_kiosk_subject_time', ['site', 'kiosk', 'subject', 'kiosk_time'], unique=False)

    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.create_index('ix_telemetry_kiosk_seq', ['site', 'kiosk', 'seq'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.drop_index('ix_telemetry_kiosk_seq')

    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.drop_index('ix_readings_kiosk_subject_time')
        batch_op.drop_index('ix_readings_kiosk_seq')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_kiosk_seq')

    with op.batch_alter_table('command_results', schema=None) as batch_op:
        batch_op.drop_index('ix_command_results_kiosk_seq')

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_alert_id'))

    op.drop_table('webhook_deliveries')
    op.drop_table('kiosks')
    op.drop_table('devices')
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commands_status'))

    op.drop_table('commands')
    op.drop_table('alerts')
