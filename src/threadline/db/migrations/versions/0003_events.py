"""events: the per-workspace event log, numbered by workspaces.last_event_seq

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import threadline.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_event_seq", sa.BigInteger(), server_default="0", nullable=False))

    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("changes", JSON, nullable=True),
        sa.Column("created_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("public_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_events_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("public_id", name=op.f("uq_events_public_id")),
        sa.UniqueConstraint("workspace_id", "seq", name=op.f("uq_events_workspace_id_seq")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_events_workspace_id_thread_id_seq", ["workspace_id", "thread_id", "seq"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_workspace_id"))
        batch_op.drop_index("ix_events_workspace_id_thread_id_seq")
        batch_op.drop_index(batch_op.f("ix_events_created_at"))
    op.drop_table("events")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_column("last_event_seq")
