"""run checkpoints, failure policy, usage per day

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

``runs.checkpoint``: the tool loop's progress, so that a retried attempt resumes instead of repeating tool
calls. ``agent_versions.failure_reply`` / ``failure_handoff``: what the end user gets when a run fails for
good. ``agent_versions.pricing``: prices per million tokens for estimated costs. ``usage_days``: runs and
tokens per agent version per UTC day, counted as runs end.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpoint", JSON, nullable=True))
    with op.batch_alter_table("agent_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure_reply", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("failure_handoff", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("pricing", JSON, nullable=True))
    op.create_table(
        "usage_days",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_version_id", sa.BigInteger(), nullable=False),
        sa.Column("runs_completed", sa.Integer(), nullable=False),
        sa.Column("runs_failed", sa.Integer(), nullable=False),
        sa.Column("runs_cancelled", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("estimated_runs", sa.Integer(), nullable=False),
        sa.Column("tool_calls", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_usage_days_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_usage_days_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_version_id"],
            ["agent_versions.id"],
            name=op.f("fk_usage_days_agent_version_id_agent_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_days")),
        sa.UniqueConstraint(
            "workspace_id", "day", "agent_version_id", name=op.f("uq_usage_days_workspace_id_day_agent_version_id")
        ),
    )
    with op.batch_alter_table("usage_days", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_days_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_days_agent_id"), ["agent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_days", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_days_agent_id"))
        batch_op.drop_index(batch_op.f("ix_usage_days_workspace_id"))
    op.drop_table("usage_days")
    # Not in batch mode: on SQLite that rebuilds the table, and dropping the old one would cascade-delete every
    # row that references it; ALTER TABLE DROP COLUMN does not.
    op.drop_column("agent_versions", "pricing")
    op.drop_column("agent_versions", "failure_handoff")
    op.drop_column("agent_versions", "failure_reply")
    op.drop_column("runs", "checkpoint")
