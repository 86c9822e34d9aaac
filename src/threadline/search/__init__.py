"""Full-text search over messages and end users: PostgreSQL's tsvector with GIN indexes, SQLite's FTS5."""
