"""Kiosks: devices_version, moved on by every gulp that touches the kiosk (fleet.DeviceRows)

A worker remembers the device rows it last wrote and trusts them only while the kiosk's
version is still the one its own gulp left. Rows from before start at 0; a worker starts
remembering nothing, so the first gulp after the upgrade writes every device as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 14:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('devices_version', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.drop_column('devices_version')
