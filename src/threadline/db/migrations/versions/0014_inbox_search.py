"""inbox order and full-text search

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08

The inbox (threads.inbox) walks a workspace's threads by last activity, ``coalesce(last_message_at,
created_at)`` then ``number``: ``ix_threads_workspace_id_activity``, and the same over the threads handed to a
human only (``..._inactive``, for the "needs a human" view). ``ix_messages_thread_id_unread`` holds only the end
user's unread messages, so an unread count reads those and nothing else.

Full-text search (search.repository) over message content and end users' name and address:
- PostgreSQL: stored generated ``tsvector`` columns ``messages.search_vector`` and ``end_users.search_vector``
  with GIN indexes. Not in the models (nothing but search.repository reads them, and SQLite has no such column):
  ``db.migrate.include_name`` keeps autogenerate from proposing to drop them. Adding them computes every
  existing row (a table rewrite).
- SQLite: FTS5 external-content tables ``messages_fts`` and ``end_users_fts`` (the row id is the row's ``id``),
  filled from the existing rows here and kept in sync by triggers on insert, update and delete (deletes by
  ON DELETE CASCADE fire them too). A later migration that rebuilds ``messages`` or ``end_users`` in batch mode
  (copy and rename) drops these triggers with the old table: it must create them again (``_sqlite_up``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ACTIVITY = sa.text("coalesce(last_message_at, created_at)")
UNREAD = "read_at IS NULL AND direction = 'INBOUND'"

# unicode61: words are runs of letters and digits, case-insensitive; diacritics kept (é does not find e), as on
# PostgreSQL, whose 'simple' configuration keeps them.
_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 0'"
_SQLITE_UP = (
    f"CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id', {_TOKENIZE})",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
    "CREATE VIRTUAL TABLE end_users_fts USING fts5(display_name, address, content='end_users', content_rowid='id', "
    f"{_TOKENIZE})",
    "CREATE TRIGGER end_users_fts_insert AFTER INSERT ON end_users BEGIN "
    "INSERT INTO end_users_fts(rowid, display_name, address) VALUES (new.id, new.display_name, new.address); END",
    "CREATE TRIGGER end_users_fts_delete AFTER DELETE ON end_users BEGIN "
    "INSERT INTO end_users_fts(end_users_fts, rowid, display_name, address) "
    "VALUES ('delete', old.id, old.display_name, old.address); END",
    "CREATE TRIGGER end_users_fts_update AFTER UPDATE OF display_name, address ON end_users BEGIN "
    "INSERT INTO end_users_fts(end_users_fts, rowid, display_name, address) "
    "VALUES ('delete', old.id, old.display_name, old.address); "
    "INSERT INTO end_users_fts(rowid, display_name, address) VALUES (new.id, new.display_name, new.address); END",
    "INSERT INTO end_users_fts(end_users_fts) VALUES ('rebuild')",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS end_users_fts_update",
    "DROP TRIGGER IF EXISTS end_users_fts_delete",
    "DROP TRIGGER IF EXISTS end_users_fts_insert",
    "DROP TABLE IF EXISTS end_users_fts",
    "DROP TRIGGER IF EXISTS messages_fts_update",
    "DROP TRIGGER IF EXISTS messages_fts_delete",
    "DROP TRIGGER IF EXISTS messages_fts_insert",
    "DROP TABLE IF EXISTS messages_fts",
)
# The text PostgreSQL indexes: ASCII punctuation but '%' turned into spaces first, so that words split where
# SQLite's unicode61 tokenizer splits them (an address '+41 79 ...' or an email is its words, not one token), then
# the 'simple' configuration (no stemming, no stop words: any language). Stored generated columns, so that checking
# a row against a query reads its tsvector instead of parsing its text again (a backward walk of the newest
# messages checks each one it passes).
_TRANSLATE = """'!"#$&''()*+,-./:;<=>?@[\\]^_`{|}~', '                               '"""
_POSTGRES_UP = (
    "ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
    f"(to_tsvector('simple'::regconfig, translate(content, {_TRANSLATE}))) STORED",
    "CREATE INDEX ix_messages_search ON messages USING gin (search_vector)",
    "ALTER TABLE end_users ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
    f"(to_tsvector('simple'::regconfig, translate(display_name || ' ' || coalesce(address, ''), {_TRANSLATE}))) STORED",
    "CREATE INDEX ix_end_users_search ON end_users USING gin (search_vector)",
)
_POSTGRES_DOWN = (
    "DROP INDEX IF EXISTS ix_end_users_search",
    "ALTER TABLE end_users DROP COLUMN IF EXISTS search_vector",
    "DROP INDEX IF EXISTS ix_messages_search",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search_vector",
)


def upgrade() -> None:
    op.create_index("ix_threads_workspace_id_activity", "threads", ["workspace_id", ACTIVITY, "number"])
    op.create_index(
        "ix_threads_workspace_id_activity_inactive",
        "threads",
        ["workspace_id", ACTIVITY, "number"],
        postgresql_where=sa.text("NOT active"),
        sqlite_where=sa.text("active = 0"),
    )
    op.create_index(
        "ix_messages_thread_id_unread",
        "messages",
        ["thread_id"],
        postgresql_where=sa.text(UNREAD),
        sqlite_where=sa.text(UNREAD),
    )
    for statement in _SQLITE_UP if op.get_bind().dialect.name == "sqlite" else _POSTGRES_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else _POSTGRES_DOWN:
        op.execute(statement)
    op.drop_index("ix_messages_thread_id_unread", table_name="messages")
    op.drop_index("ix_threads_workspace_id_activity_inactive", table_name="threads")
    op.drop_index("ix_threads_workspace_id_activity", table_name="threads")
