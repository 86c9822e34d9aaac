"""agent_versions.sms_max_tokens, sms_temperature: what applies instead on threads whose channel is SMS

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null on every existing version: those keep answering SMS with their max_tokens and temperature.
    with op.batch_alter_table("agent_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_max_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sms_temperature", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agent_versions", schema=None) as batch_op:
        batch_op.drop_column("sms_temperature")
        batch_op.drop_column("sms_max_tokens")
