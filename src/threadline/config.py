"""Settings, read from ``THREADLINE_*`` environment variables."""

from __future__ import annotations

from functools import cache, cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
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
    public_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        description="The externally visible base URL that Twilio and Meta call, e.g. https://chat.example.com (with "
        "any path prefix a proxy strips): the inbound channel webhooks rebuild from it the exact URL Twilio signed "
        "(X-Twilio-Signature). Unset: the URL of the request as it arrived (see trust_forwarded_headers).",
    )
    trust_forwarded_headers: bool = Field(
        default=False,
        description="When public_base_url is unset, take the scheme and host of the URL Twilio signed from "
        "X-Forwarded-Proto and X-Forwarded-Host (their first values). Only behind a proxy that sets them: "
        "otherwise a client picks them.",
    )
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
    max_request_bytes: int = Field(default=1024 * 1024, description="Larger request bodies get a 413.")
    request_body_timeout_s: float = Field(
        default=10,
        gt=0,
        description="The whole request body must arrive within this many seconds (a 408 after); until it has, "
        "the request holds no database connection and no lock.",
    )
    console_enabled: bool = Field(
        default=True, description="Serve the operator console at /console (and redirect / to it)."
    )
    console_session_ttl_hours: float = Field(
        default=168, gt=0, description="How long a console sign-in lasts before the operator signs in again."
    )
    console_link_ttl_hours: float = Field(
        default=72, gt=0, description="How long a one-time sign-in link (CLI, first start) stays usable."
    )
    console_sign_in_failures: str = Field(
        default="5/minute",
        description="Failed console sign-ins allowed per email and per client address; past it, sign-in is a 429.",
    )
    idempotency_ttl_hours: int = 24
    idempotency_purge_interval_s: float = Field(default=3600, description="How often expired keys are deleted.")
    api_key_touch_interval_s: int = Field(
        default=60, description="last_used_at is written at most this often per key, to keep reads read-only."
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at GET /metrics (no auth).")
    metrics_refresh_interval_s: float = Field(
        default=5, gt=0, description="How often the job queue depth for /metrics is counted in the database."
    )

    run_workers: bool = Field(
        default=False, description="Run job workers inside the API process (`threadline serve` turns this on)."
    )
    worker_concurrency: int = Field(default=4, ge=1, description="Jobs one worker process runs at a time.")
    worker_outbound_concurrency: int = Field(
        default=8,
        ge=1,
        description="Slots for jobs that wait on third parties (webhook deliveries), apart from the others.",
    )
    worker_poll_interval_s: float = Field(default=1.0, gt=0, description="How often an idle worker looks for jobs.")
    worker_shutdown_timeout_s: float = Field(
        default=10, ge=0, description="On shutdown, how long running jobs may finish before they are released."
    )
    job_lease_s: float = Field(
        default=60, gt=0, description="A claimed job's lease; renewed while it runs, taken again once it lapses."
    )
    job_max_attempts: int = Field(default=8, ge=1, description="Attempts before a job is dead (default per job).")
    job_backoff_base_s: float = Field(default=5, ge=0, description="Retry delay before jitter: base * 2**(attempt-1).")
    job_backoff_cap_s: float = Field(default=3600, ge=0, description="The longest retry delay.")
    task_modules: str = Field(
        default="", description="Comma-separated modules to import at worker start; they register job tasks."
    )

    run_debounce_s: float = Field(
        default=0.0,
        ge=0,
        description="On the plain API, how long a run waits for more end-user messages to answer them together.",
    )
    run_debounce_messaging_s: float = Field(
        default=2.0, ge=0, description="The same on SMS and WhatsApp, where people double-text."
    )
    run_max_attempts: int = Field(default=3, ge=1, description="Attempts of a run before it fails (with a note).")
    run_max_iterations: int = Field(default=8, ge=1, description="Model calls per run (tool loop) at most.")
    tools_allow_private_urls: bool = Field(
        default=False,
        description="Let agents' HTTP tools and flows' http nodes call loopback, private and link-local addresses.",
    )
    message_wait_max_s: float = Field(
        default=60, gt=0, description="The largest `wait` a POST of a message may ask for (longer is capped)."
    )
    events_poll_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="Live streams also re-read the event log this often, in case a wake-up was lost.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0: rate limits and concurrency caps are shared by every process pointed at "
        "it (unset: each process counts on its own).",
    )
    redis_prefix: str = Field(default="threadline", description="Prefix of every Redis key threadline writes.")
    rate_limit_per_key: str = Field(
        default="6000/minute",
        description="Requests per API key ('N/second', 'N/minute', several joined by ';', or 'none').",
    )
    rate_limit_per_address: str = Field(
        default="3000/minute",
        description="Requests per client address without a valid key: channel webhooks, sign-in, 401s.",
    )
    rate_limit_auth_failures: str = Field(
        default="30/minute",
        description="Keys that do not authenticate, per client address; past it, requests with a key are 429s.",
    )
    streams_per_key: int = Field(default=20, ge=1, description="Event streams one API key may hold open at once.")
    streams_per_workspace: int = Field(default=100, ge=1, description="Event streams open at once per workspace.")
    waits_per_key: int = Field(
        default=50, ge=1, description="Requests waiting for an agent's reply (wait, stream) at once per API key."
    )
    waits_per_workspace: int = Field(default=200, ge=1, description="The same per workspace.")
    credential_check_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=4,
        description="How often each process checks that the keys of its open event streams still authenticate; "
        "a revoked key's streams end within this (plus a query).",
    )
    sse_max_duration_s: float = Field(
        default=3600,
        gt=0,
        description="An event stream is ended after this long; clients resume with Last-Event-ID (browsers do it "
        "themselves), which also spreads long-lived streams over the processes as they come and go.",
    )
    sse_keepalive_s: float = Field(default=15, gt=0, description="A comment line on idle event streams this often.")
    event_retention_days: float = Field(
        default=30, gt=0, description="Events older than this are deleted (hourly); streams resume within it."
    )
    audit_retention_days: float = Field(
        default=365, gt=0, description="Audit events (GET /v1/audit_events) older than this are deleted (hourly)."
    )

    secret_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys that encrypt stored secrets (webhook signing secrets, channel "
        "credentials, HTTP tools' header values); the first encrypts, every one decrypts (rotate: put a new key "
        "first, run `threadline secrets rotate`, drop the old one). Unset: a key generated into "
        "<data_dir>/secret.key.",
    )
    channel_send_max_attempts: int = Field(
        default=6,
        ge=1,
        description="Attempts to hand an SMS or WhatsApp message to its provider while the provider fails "
        "transiently (no connection, 5xx, 429), with the job backoff between them, before it is FAILED.",
    )
    channel_send_timeout_s: float = Field(
        default=15, gt=0, description="The whole of one request to Twilio or the WhatsApp Graph API."
    )
    channel_allow_private_urls: bool = Field(
        default=False,
        description="Let an integration's api_base_url reach loopback and private addresses (a provider stand-in "
        "or a relay of your own); off, only public addresses are called (SSRF).",
    )
    webhook_allow_private_urls: bool = Field(
        default=False,
        description="Let webhook URLs point at loopback, private, link-local and other non-public addresses (SSRF).",
    )
    webhook_timeout_s: float = Field(default=10, gt=0, description="The whole of one webhook request, connect to body.")
    webhook_retry_schedule_s: str = Field(
        default="5,30,120,600,3600,21600,86400",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="Seconds before each retry of a failed webhook delivery; one retry per entry.",
    )
    webhook_disable_after_failures: int = Field(
        default=10, ge=1, description="Consecutive failed attempts that disable a webhook endpoint..."
    )
    webhook_disable_after_s: float = Field(
        default=86400, ge=0, description="...once they also span at least this many seconds."
    )

    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="The `openai` provider's server: OpenAI, or any OpenAI-compatible one (vLLM, Ollama, ...).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("THREADLINE_OPENAI_API_KEY", "OPENAI_API_KEY", "openai_api_key"),
        description="API key of the `openai` provider (falls back to OPENAI_API_KEY); local servers need none.",
    )
    openai_model: str = Field(
        default="gpt-4o-mini",
        description="The model of the PROMPT demo agent made at first start (e.g. llama3.2 for Ollama).",
    )
    openai_timeout_s: float = Field(
        default=60, gt=0, description="A model call's wait to connect, and between two streamed chunks."
    )
    local_model_path: Path | None = Field(
        default=None,
        description="GGUF file of the `local` provider; unset: Gemma 3 270M from the threadline[local] extra.",
    )
    local_context_window: int = Field(
        default=8192, ge=256, description="Context the `local` provider allocates (memory grows with it)."
    )
    default_context_window: int = Field(
        default=8192,
        ge=256,
        description="Context window of models the `openai` provider does not know (vLLM, Ollama, ...).",
    )

    @field_validator(
        "rate_limit_per_key", "rate_limit_per_address", "rate_limit_auth_failures", "console_sign_in_failures"
    )
    @classmethod
    def _valid_rates(cls, value: str) -> str:
        from threadline.kit.ratelimit import parse_rates

        try:
            parse_rates(value)
        except ValueError as exc:
            raise ValueError(f"expected e.g. '600/minute' or '10/second;600/minute' or 'none': {exc}") from None
        return value

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


@cache
def environment_settings() -> Settings:
    """The process's settings from its environment, read once: for code handed none (a job whose worker
    was built without settings, ``JobContext.settings`` None)."""
    return Settings()
