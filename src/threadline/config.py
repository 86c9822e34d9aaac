"""Settings, read from ``THREADLINE_*`` environment variables, grouped by the subsystem that reads them.

Each group is a frozen model (``settings.database``, ``settings.jobs``, ...). The environment keeps its flat
names (``THREADLINE_JOB_MAX_ATTEMPTS`` sets ``settings.jobs.max_attempts``): ``FLAT`` maps each variable to
its group and field, and the same flat names work as keyword arguments (``Settings(database_url=...)``) and
in ``settings.replace(...)``. Nothing reads settings from a module global: a process builds one ``Settings``
and hands it on (the app's state for requests, the worker's job context for handlers, and the session of
each unit of work: ``threadline.db.session_settings``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "THREADLINE_"


class _Group(BaseModel):
    # No input in errors: a bad value must not print the secrets beside it.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class DatabaseSettings(_Group):
    """Where the data lives and how it is reached (``db/``), and the key that encrypts stored secrets."""

    data_dir: Path = Field(default=Path("data"), description="Where the embedded SQLite database lives.")
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; postgresql://... or sqlite:///... (async drivers are added).",
    )
    pool_size: int = 10
    max_overflow: int = 20
    sqlite_busy_timeout_ms: int = 10_000
    auto_migrate: bool = Field(default=True, description="Apply pending migrations when the server starts.")
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys that encrypt stored secrets (webhook signing secrets, channel "
        "credentials, HTTP tools' header values); the first encrypts, every one decrypts (rotate: put a new key "
        "first, run `threadline secrets rotate`, drop the old one). Unset: a key generated into "
        "<data_dir>/secret.key.",
    )

    @property
    def resolved_url(self) -> str:
        """The database URL with the async driver this codebase uses."""
        url = self.url or f"sqlite:///{(self.data_dir / 'threadline.db').resolve()}"
        return normalize_database_url(url)


class ServerSettings(_Group):
    """The HTTP process: where it listens, how it logs, what it accepts, what it serves besides the API."""

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
    bootstrap: bool = Field(
        default=True,
        description="On an empty database, create workspace 'default', an admin key and a demo agent.",
    )
    log_level: str = "info"
    log_format: Literal["console", "json"] = "console"
    max_request_bytes: int = Field(default=1024 * 1024, description="Larger request bodies get a 413.")
    request_body_timeout_s: float = Field(
        default=10,
        gt=0,
        description="The whole request body must arrive within this many seconds (a 408 after); until it has, "
        "the request holds no database connection and no lock.",
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


class LimitSettings(_Group):
    """Rate limits and concurrency caps (``web/``), counted per process or shared through Redis."""

    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0: rate limits and concurrency caps are shared by every process pointed at "
        "it (unset: each process counts on its own).",
    )
    redis_prefix: str = Field(default="threadline", description="Prefix of every Redis key threadline writes.")
    per_key: str = Field(
        default="6000/minute",
        description="Requests per API key ('N/second', 'N/minute', several joined by ';', or 'none').",
    )
    per_address: str = Field(
        default="3000/minute",
        description="Requests per client address without a valid key: channel webhooks, sign-in, 401s.",
    )
    auth_failures: str = Field(
        default="30/minute",
        description="Keys that do not authenticate, per client address; past it, requests with a key are 429s.",
    )
    streams_per_key: int = Field(default=20, ge=1, description="Event streams one API key may hold open at once.")
    streams_per_workspace: int = Field(default=100, ge=1, description="Event streams open at once per workspace.")
    waits_per_key: int = Field(
        default=50, ge=1, description="Requests waiting for an agent's reply (wait, stream) at once per API key."
    )
    waits_per_workspace: int = Field(default=200, ge=1, description="The same per workspace.")

    @field_validator("per_key", "per_address", "auth_failures")
    @classmethod
    def _valid_rates(cls, value: str) -> str:
        return _valid_rates(value)


class JobSettings(_Group):
    """The job queue and its workers (``jobs/``)."""

    run_workers: bool = Field(
        default=False, description="Run job workers inside the API process (`threadline serve` turns this on)."
    )
    concurrency: int = Field(default=4, ge=1, description="Jobs one worker process runs at a time.")
    outbound_concurrency: int = Field(
        default=8,
        ge=1,
        description="Slots for jobs that wait on third parties (webhook deliveries), apart from the others.",
    )
    poll_interval_s: float = Field(default=1.0, gt=0, description="How often an idle worker looks for jobs.")
    shutdown_timeout_s: float = Field(
        default=10, ge=0, description="On shutdown, how long running jobs may finish before they are released."
    )
    lease_s: float = Field(
        default=60, gt=0, description="A claimed job's lease; renewed while it runs, taken again once it lapses."
    )
    max_attempts: int = Field(default=8, ge=1, description="Attempts before a job is dead (default per job).")
    backoff_base_s: float = Field(default=5, ge=0, description="Retry delay before jitter: base * 2**(attempt-1).")
    backoff_cap_s: float = Field(default=3600, ge=0, description="The longest retry delay.")
    task_modules: str = Field(
        default="", description="Comma-separated modules to import at worker start; they register job tasks."
    )


class RunSettings(_Group):
    """Agent runs (``runs/``, ``engines/``): when they start, how often they are tried, how long a POST waits."""

    debounce_s: float = Field(
        default=0.0,
        ge=0,
        description="On the plain API, how long a run waits for more end-user messages to answer them together.",
    )
    debounce_messaging_s: float = Field(
        default=2.0, ge=0, description="The same on SMS and WhatsApp, where people double-text."
    )
    max_attempts: int = Field(default=3, ge=1, description="Attempts of a run before it fails (with a note).")
    max_iterations: int = Field(default=8, ge=1, description="Model calls per run (tool loop) at most.")
    tools_allow_private_urls: bool = Field(
        default=False,
        description="Let agents' HTTP tools and flows' http nodes call loopback, private and link-local addresses.",
    )
    wait_max_s: float = Field(
        default=60, gt=0, description="The largest `wait` a POST of a message may ask for (longer is capped)."
    )


class ProviderSettings(_Group):
    """The model providers (``engines/providers``)."""

    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="The `openai` provider's server: OpenAI, or any OpenAI-compatible one (vLLM, Ollama, ...).",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
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


class ChannelSettings(_Group):
    """Sending to SMS and WhatsApp (``channels/``)."""

    send_max_attempts: int = Field(
        default=6,
        ge=1,
        description="Attempts to hand an SMS or WhatsApp message to its provider while the provider fails "
        "transiently (no connection, 5xx, 429), with the job backoff between them, before it is FAILED.",
    )
    send_timeout_s: float = Field(
        default=15, gt=0, description="The whole of one request to Twilio or the WhatsApp Graph API."
    )
    allow_private_urls: bool = Field(
        default=False,
        description="Let an integration's api_base_url reach loopback and private addresses (a provider stand-in "
        "or a relay of your own); off, only public addresses are called (SSRF).",
    )


class WebhookSettings(_Group):
    """Outgoing webhooks (``webhooks/``)."""

    allow_private_urls: bool = Field(
        default=False,
        description="Let webhook URLs point at loopback, private, link-local and other non-public addresses (SSRF).",
    )
    timeout_s: float = Field(default=10, gt=0, description="The whole of one webhook request, connect to body.")
    retry_schedule_s: str = Field(
        default="5,30,120,600,3600,21600,86400",
        pattern=r"^\s*(\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*)?\s*$",
        description="Seconds before each retry of a failed webhook delivery; one retry per entry (empty: none).",
    )
    disable_after_failures: int = Field(
        default=10, ge=1, description="Consecutive failed attempts that disable a webhook endpoint..."
    )
    disable_after_s: float = Field(
        default=86400, ge=0, description="...once they also span at least this many seconds."
    )


class EventSettings(_Group):
    """The event log and its live streams (``events/``), and how long the logs are kept."""

    poll_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="Live streams also re-read the event log this often, in case a wake-up was lost.",
    )
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
    retention_days: float = Field(
        default=30, gt=0, description="Events older than this are deleted (hourly); streams resume within it."
    )
    audit_retention_days: float = Field(
        default=365, gt=0, description="Audit events (GET /v1/audit_events) older than this are deleted (hourly)."
    )


class ConsoleSettings(_Group):
    """The operator console (``console/``)."""

    enabled: bool = Field(default=True, description="Serve the operator console at /console (and redirect / to it).")
    session_ttl_hours: float = Field(
        default=168, gt=0, description="How long a console sign-in lasts before the operator signs in again."
    )
    link_ttl_hours: float = Field(
        default=72, gt=0, description="How long a one-time sign-in link (CLI, first start) stays usable."
    )
    sign_in_failures: str = Field(
        default="5/minute",
        description="Failed console sign-ins allowed per email and per client address; past it, sign-in is a 429.",
    )

    @field_validator("sign_in_failures")
    @classmethod
    def _valid_rates(cls, value: str) -> str:
        return _valid_rates(value)


GROUPS: dict[str, type[_Group]] = {
    "database": DatabaseSettings,
    "server": ServerSettings,
    "limits": LimitSettings,
    "jobs": JobSettings,
    "runs": RunSettings,
    "providers": ProviderSettings,
    "channels": ChannelSettings,
    "webhooks": WebhookSettings,
    "events": EventSettings,
    "console": ConsoleSettings,
}


def _flat_names() -> dict[str, tuple[str, str]]:
    """``THREADLINE_<NAME>`` (lowercase, without the prefix) -> (group, field)."""
    renamed = {
        "database": {"url": "database_url", "pool_size": "db_pool_size", "max_overflow": "db_max_overflow"},
        "limits": {
            "per_key": "rate_limit_per_key",
            "per_address": "rate_limit_per_address",
            "auth_failures": "rate_limit_auth_failures",
        },
        "jobs": {
            "concurrency": "worker_concurrency",
            "outbound_concurrency": "worker_outbound_concurrency",
            "poll_interval_s": "worker_poll_interval_s",
            "shutdown_timeout_s": "worker_shutdown_timeout_s",
            "lease_s": "job_lease_s",
            "max_attempts": "job_max_attempts",
            "backoff_base_s": "job_backoff_base_s",
            "backoff_cap_s": "job_backoff_cap_s",
        },
        "runs": {
            "debounce_s": "run_debounce_s",
            "debounce_messaging_s": "run_debounce_messaging_s",
            "max_attempts": "run_max_attempts",
            "max_iterations": "run_max_iterations",
            "wait_max_s": "message_wait_max_s",
        },
        "channels": {"send_max_attempts": "channel_send_max_attempts", "send_timeout_s": "channel_send_timeout_s"},
        "events": {"poll_interval_s": "events_poll_interval_s", "retention_days": "event_retention_days"},
    }
    prefixed = {"channels": "channel_", "webhooks": "webhook_", "console": "console_"}
    flat: dict[str, tuple[str, str]] = {}
    for group, model in GROUPS.items():
        for field in model.model_fields:
            name = renamed.get(group, {}).get(field) or (
                field if group not in prefixed or field.startswith(prefixed[group]) else prefixed[group] + field
            )
            if name in flat:
                raise RuntimeError(f"two settings read THREADLINE_{name.upper()}")
            flat[name] = (group, field)
    return flat


FLAT: dict[str, tuple[str, str]] = _flat_names()
# Variables also read without the prefix, after the prefixed one: what other tools already set.
FALLBACKS: dict[str, str] = {"openai_api_key": "OPENAI_API_KEY"}


def env_name(group: str, field: str) -> str:
    """The environment variable that sets ``settings.<group>.<field>``."""
    for name, where in FLAT.items():
        if where == (group, field):
            return ENV_PREFIX + name.upper()
    raise KeyError(f"{group}.{field}")


def _regroup(values: dict[str, Any]) -> dict[str, Any]:
    """Flat names (``job_max_attempts``) into their groups (``{"jobs": {"max_attempts": ...}}``). A value given
    in its group wins over the same one given flat (which may come from the environment), and a group given
    as a model is taken whole."""
    out: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key in GROUPS:
            out[key] = dict(value) if isinstance(value, dict) else value
        elif key in FLAT:
            flat[key] = value
        else:
            raise ValueError(f"unknown setting {key!r}")
    for key, value in flat.items():
        group, field = FLAT[key]
        target = out.setdefault(group, {})
        if isinstance(target, dict):  # (a group given as a model is taken whole)
            target.setdefault(field, value)
    return out


class _FlatEnvironment(PydanticBaseSettingsSource):
    """The ``THREADLINE_*`` variables (names in any case), by their flat names; regrouped by the model."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {key.lower(): value for key, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in FLAT:
            value = environ.get((ENV_PREFIX + name).lower())
            if value is None and name in FALLBACKS:
                value = environ.get(FALLBACKS[name].lower())
            if value is not None:
                values[name] = value
        return values


class Settings(BaseSettings):
    """Every knob of a threadline process, in groups; one instance per process (or per test app)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    runs: RunSettings = Field(default_factory=RunSettings)
    providers: ProviderSettings = Field(default_factory=ProviderSettings)
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _FlatEnvironment(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _grouped(cls, data: Any) -> Any:
        return _regroup(data) if isinstance(data, dict) else data

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (flat names or whole groups), validated; the environment is not read again."""
        current = {name: getattr(self, name) for name in GROUPS}
        for key, value in _regroup(changes).items():
            base = current[key]
            current[key] = type(base).model_validate({**dict(base), **value}) if isinstance(value, dict) else value
        return type(self).model_validate(current)


def explain(exc: ValidationError) -> str:
    """A settings error as the variables a person sets: ``THREADLINE_PORT: Input should be a valid integer``
    (never the value: it may be a secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        try:
            name = env_name(loc[0], loc[1]) if len(loc) >= 2 else (ENV_PREFIX + loc[0].upper() if loc else "")
        except KeyError:
            name = ".".join(loc)
        lines.append(f"{name}: {error['msg']}" if name else error["msg"])
    return "; ".join(lines)


def _valid_rates(value: str) -> str:
    from threadline.kit.ratelimit import parse_rates

    try:
        parse_rates(value)
    except ValueError:  # (its text quotes the value: not repeated, whatever the variable holds)
        raise ValueError("expected e.g. '600/minute' or '10/second;600/minute' or 'none'") from None
    return value


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
