"""threads and messages numbered per workspace

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

``threads.number`` and ``messages.number`` replace the primary key as the integer id the API shows: a
primary key counts the rows of every workspace, so it told one tenant how busy the others were. Rows that
exist keep their id as their number (no id handed out changes); ``workspace_counters`` starts each
workspace after the highest number it already has, so new numbers never meet old ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_NUMBERED = ("threads", "messages")


def upgrade() -> None:
    op.create_table(
        "workspace_counters",
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_thread_number", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_message_number", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_workspace_counters_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_workspace_counters")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _NUMBERED:
        # SQLite adds a NOT NULL column only with a default. Its default stays there (taking it off means
        # rebuilding the table, whose DROP would cascade-delete every row that references it); threadline
        # names every row's number, and PostgreSQL, with no default, refuses a row that does not.
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("number", sa.BigInteger(), server_default="0", nullable=False))
        op.execute(sa.text(f"UPDATE {table} SET number = id"))
        if postgres:
            op.alter_column(table, "number", server_default=None)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"uq_{table}_workspace_id_number", ["workspace_id", "number"], unique=True)
    op.execute(
        sa.text(
            "INSERT INTO workspace_counters (workspace_id, last_thread_number, last_message_number) "
            "SELECT w.id, "
            "COALESCE((SELECT MAX(t.number) FROM threads t WHERE t.workspace_id = w.id), 0), "
            "COALESCE((SELECT MAX(m.number) FROM messages m WHERE m.workspace_id = w.id), 0) "
            "FROM workspaces w"
        )
    )


def downgrade() -> None:
    for table in reversed(_NUMBERED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"uq_{table}_workspace_id_number")
        # Not in batch mode: on SQLite that rebuilds the table (see upgrade); ALTER TABLE DROP COLUMN does not.
        op.drop_column(table, "number")
    op.drop_table("workspace_counters")
