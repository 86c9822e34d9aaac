"""console operators: roles, passwords, sessions, one-time sign-in links

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08

``users.role`` (admin | operator) and ``users.password_hash`` (argon2id; null: no password yet).
``console_sessions``: the operator console's server-side sessions, by the SHA-256 of the cookie's token, with
the session's CSRF token and its expiry. ``sign_in_links``: one-time sign-in links, by the SHA-256 of their
token, used at most once before they expire. Both go with their user and their workspace.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import threadline.db.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _token_table(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f(f"fk_{name}_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{name}_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("token_hash", name=op.f(f"uq_{name}_token_hash")),
    )
    with op.batch_alter_table(name, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{name}_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index(batch_op.f(f"ix_{name}_user_id"), ["user_id"], unique=False)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "role",
                sa.Enum("admin", "operator", name="userrole", native_enum=False, length=32),
                nullable=False,
                server_default="operator",
            )
        )
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
    _token_table(
        "console_sessions",
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
    )
    _token_table(
        "sign_in_links",
        sa.Column("created_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", threadline.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", threadline.db.types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    for name in ("sign_in_links", "console_sessions"):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{name}_user_id"))
            batch_op.drop_index(batch_op.f(f"ix_{name}_workspace_id"))
        op.drop_table(name)
    # Not in batch mode: on SQLite that rebuilds the table, and dropping the old one would cascade to every row
    # that references a user (thread assignments); ALTER TABLE DROP COLUMN does not.
    op.drop_column("users", "password_hash")
    op.drop_column("users", "role")
