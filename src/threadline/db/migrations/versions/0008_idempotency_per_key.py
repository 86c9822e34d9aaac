"""idempotency_keys: a key belongs to the API key that used it; a claim's resumable reference

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The keys stored so far name no API key, and a stored response must only ever go back to the key
    # that made it: they are dropped (they last a day; a retry across the upgrade is processed afresh).
    op.execute("DELETE FROM idempotency_keys")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.BigInteger(), nullable=False))
        batch_op.add_column(sa.Column("resume_ref", sa.String(length=512), nullable=True))
        batch_op.drop_constraint("uq_idempotency_keys_workspace_id_key", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_idempotency_keys_api_key_id_key"), ["api_key_id", "key"])
        batch_op.create_foreign_key(
            batch_op.f("fk_idempotency_keys_api_key_id_api_keys"),
            "api_keys",
            ["api_key_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_keys")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_constraint("fk_idempotency_keys_api_key_id_api_keys", type_="foreignkey")
        batch_op.drop_constraint("uq_idempotency_keys_api_key_id_key", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_idempotency_keys_workspace_id_key"), ["workspace_id", "key"])
        batch_op.drop_column("resume_ref")
        batch_op.drop_column("api_key_id")
