"""Settings, read from ``THREADLINE_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a threadline process; one instance per process (or per test app)."""

    model_config = SettingsConfigDict(env_prefix="THREADLINE_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where the embedded SQLite database lives.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; postgresql://... or sqlite:///... (async drivers are added).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    auto_migrate: bool = Field(default=True, description="Apply pending migrations when the server starts.")
    bootstrap: bool = Field(
        default=True,
        description="On an empty database, create workspace 'default', an admin key and a demo agent.",
    )
    log_level: str = "info"
    log_format: Literal["console", "json"] = "console"
    db_pool_size: int = 10
    db_max_overflow: int = 20
    sqlite_busy_timeout_ms: int = 10_000
    idempotency_ttl_hours: int = 24
    idempotency_purge_interval_s: float = Field(default=3600, description="How often expired keys are deleted.")
    api_key_touch_interval_s: int = Field(
        default=60, description="last_used_at is written at most this often per key, to keep reads read-only."
    )

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL with the async driver this codebase uses."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'threadline.db').resolve()}"
        return normalize_database_url(url)


def normalize_database_url(url: str) -> str:
    """Map plain ``postgresql://`` / ``sqlite://`` URLs onto asyncpg / aiosqlite."""
    for prefix, replacement in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(prefix):
            return replacement + url[len(prefix) :]
    return url
