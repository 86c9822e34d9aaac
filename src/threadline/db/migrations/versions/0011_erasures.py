"""end-user erasures

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``erasures``: one per erased end user, with its progress and the counts kept. ``end_users.erased_at`` and
``threads.erased_at`` mark an erasure under way (the person is gone for every lookup, their threads take no
new message). Two partial indexes let deleting messages find what points at them (the replies to a
message, the runs it triggered) without scanning the tables once per deleted message.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import threadline.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
REPLIES = sa.text("in_response_to_id IS NOT NULL")
TRIGGERS = sa.text("trigger_message_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("end_user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "running", "completed", "failed", name="erasurestatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("planned", JSON, nullable=True),
        sa.Column("erased", JSON, nullable=False),
        sa.Column("kept", JSON, nullable=False),
        sa.Column("thread_ids", JSON, nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("started_at", threadline.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", threadline.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("public_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("created_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_erasures_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.UniqueConstraint("public_id", name=op.f("uq_erasures_public_id")),
        sa.UniqueConstraint("workspace_id", "end_user_id", name=op.f("uq_erasures_workspace_id_end_user_id")),
    )
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erasures_workspace_id"), ["workspace_id"], unique=False)

    with op.batch_alter_table("end_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", threadline.db.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", threadline.db.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_in_response_to_id",
            ["in_response_to_id"],
            unique=False,
            postgresql_where=REPLIES,
            sqlite_where=REPLIES,
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_trigger_message_id",
            ["trigger_message_id"],
            unique=False,
            postgresql_where=TRIGGERS,
            sqlite_where=TRIGGERS,
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_trigger_message_id", postgresql_where=TRIGGERS, sqlite_where=TRIGGERS)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_in_response_to_id", postgresql_where=REPLIES, sqlite_where=REPLIES)
    # Not in batch mode: on SQLite that rebuilds the table, and dropping the old one would cascade-delete every
    # row that references it (threads of end users, messages and runs of threads); ALTER TABLE DROP COLUMN does not.
    op.drop_column("threads", "erased_at")
    op.drop_column("end_users", "erased_at")
    with op.batch_alter_table("erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasures_workspace_id"))
    op.drop_table("erasures")
