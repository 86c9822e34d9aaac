"""runs: agent runs, one running per thread; threads.flow_state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import threadline.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flow_state", JSON, nullable=True))

    op.create_table(
        "runs",
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_version_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued", "running", "completed", "failed", "cancelled", name="runstatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("trigger_message_id", sa.BigInteger(), nullable=True),
        sa.Column("input_seq", sa.BigInteger(), nullable=False),
        sa.Column("run_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", threadline.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", threadline.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("usage", JSON, nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("created_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_version_id"],
            ["agent_versions.id"],
            name=op.f("fk_runs_agent_version_id_agent_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_runs_thread_id_threads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trigger_message_id"],
            ["messages.id"],
            name=op.f("fk_runs_trigger_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_runs_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("public_id", name=op.f("uq_runs_public_id")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_thread_id_id", ["thread_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index(
            "uq_runs_one_running_per_thread",
            ["thread_id"],
            unique=True,
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_runs_one_running_per_thread",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        )
        batch_op.drop_index(batch_op.f("ix_runs_workspace_id"))
        batch_op.drop_index("ix_runs_thread_id_id")
    op.drop_table("runs")
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_column("flow_state")
