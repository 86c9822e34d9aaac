"""Settings: grouped per subsystem, read from the flat ``THREADLINE_*`` variables, handed on explicitly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from threadline.config import FLAT, GROUPS, Settings, env_name, explain

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for key in list(os.environ):
        if key.upper().startswith("THREADLINE_") or key.upper() == "OPENAI_API_KEY":
            monkeypatch.delenv(key)
    return monkeypatch


def test_every_field_of_every_group_has_one_variable_and_back() -> None:
    fields = {(group, field) for group, model in GROUPS.items() for field in model.model_fields}
    assert set(FLAT.values()) == fields
    assert len(set(FLAT)) == len(FLAT)
    assert env_name("jobs", "max_attempts") == "THREADLINE_JOB_MAX_ATTEMPTS"
    assert env_name("runs", "wait_max_s") == "THREADLINE_MESSAGE_WAIT_MAX_S"
    assert env_name("console", "enabled") == "THREADLINE_CONSOLE_ENABLED"
    assert env_name("webhooks", "timeout_s") == "THREADLINE_WEBHOOK_TIMEOUT_S"


def test_every_variable_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [f"THREADLINE_{name.upper()}" for name in FLAT if f"`THREADLINE_{name.upper()}`" not in text]
    assert missing == []
    documented = set(re.findall(r"`THREADLINE_([A-Z0-9_]+)`", text))
    # Variables that are not settings: the test suite's, the CLI's.
    others = {"TEST_DATABASE_URL", "REQUIRE_COMPAT", "REQUIRE_BROWSER", "API_KEY", "URL"}
    assert {name.lower() for name in documented - others} <= set(FLAT)


def test_the_environment_sets_fields_in_their_groups(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("THREADLINE_JOB_MAX_ATTEMPTS", "5")
    clean_env.setenv("threadline_port", "9001")  # names in any case, as before
    clean_env.setenv("THREADLINE_RUN_DEBOUNCE_MESSAGING_S", "0.5")
    clean_env.setenv("THREADLINE_CONSOLE_ENABLED", "false")
    clean_env.setenv("THREADLINE_SECRET_KEYS", "k1,k2")
    settings = Settings()
    assert settings.jobs.max_attempts == 5
    assert settings.server.port == 9001
    assert settings.runs.debounce_messaging_s == 0.5
    assert settings.console.enabled is False
    assert isinstance(settings.database.secret_keys, SecretStr)
    assert settings.database.secret_keys.get_secret_value() == "k1,k2"
    # Everything else keeps its default.
    assert settings.jobs.lease_s == 60 and settings.runs.max_attempts == 3


def test_the_openai_key_falls_back_to_openai_api_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_API_KEY", "sk-plain")
    assert Settings().providers.openai_api_key == SecretStr("sk-plain")
    clean_env.setenv("THREADLINE_OPENAI_API_KEY", "sk-ours")
    assert Settings().providers.openai_api_key == SecretStr("sk-ours")


def test_arguments_go_over_the_environment_flat_or_grouped(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("THREADLINE_JOB_MAX_ATTEMPTS", "5")
    clean_env.setenv("THREADLINE_JOB_LEASE_S", "30")
    assert Settings(job_max_attempts=2).jobs.max_attempts == 2
    grouped = Settings(jobs={"max_attempts": 3})
    assert (grouped.jobs.max_attempts, grouped.jobs.lease_s) == (3, 30)  # the rest of the group from the env


def test_replace_changes_only_what_it_names_and_validates(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("THREADLINE_JOB_MAX_ATTEMPTS", "5")
    settings = Settings(port=7000)
    changed = settings.replace(job_max_attempts=2, console_enabled=False)
    assert (changed.jobs.max_attempts, changed.console.enabled, changed.server.port) == (2, False, 7000)
    assert settings.jobs.max_attempts == 5  # the original is untouched
    with pytest.raises(ValidationError):
        settings.replace(port="not a port")
    with pytest.raises(ValidationError):
        settings.replace(rate_limit_per_key="lots")


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.jobs.max_attempts = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.jobs = settings.jobs  # type: ignore[misc]


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown setting 'job_max_attempt'"):
        Settings(job_max_attempt=3)


def test_errors_name_the_variable_and_never_echo_values(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("THREADLINE_PORT", "eighty")
    clean_env.setenv("THREADLINE_OPENAI_API_KEY", "sk-very-secret")
    clean_env.setenv("THREADLINE_RATE_LIMIT_PER_KEY", "sk-very-secret-too")
    with pytest.raises(ValidationError) as caught:
        Settings()
    text = explain(caught.value)
    assert "THREADLINE_PORT" in text and "THREADLINE_RATE_LIMIT_PER_KEY" in text
    assert "sk-very-secret" not in text and "eighty" not in text
    assert "sk-very-secret" not in str(caught.value)


def test_the_cli_names_a_bad_variable_without_its_value(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("THREADLINE_")}
    env.update(THREADLINE_DATA_DIR=str(tmp_path), THREADLINE_WORKER_CONCURRENCY="many", THREADLINE_SECRET_KEYS="x")
    done = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "workspaces", "list"], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "invalid settings: THREADLINE_WORKER_CONCURRENCY" in done.stderr
    assert "many" not in done.stderr and "Traceback" not in done.stderr


def test_no_module_keeps_settings_of_its_own() -> None:
    """The services read policies from the session they are handed (``db.engine.session_settings``): no module
    holds configuration set at start-up, and nothing falls back to reading the environment on its own."""
    src = Path(__file__).resolve().parents[1] / "src" / "threadline"
    offenders = []
    for path in src.rglob("*.py"):
        text = path.read_text()
        if re.search(r"^_defaults\b|^def configure\(|environment_settings|configure_services", text, re.M):
            offenders.append(str(path.relative_to(src)))
        if path.name != "app.py" and path.name != "cli.py" and re.search(r"\bSettings\(\)", text):
            offenders.append(f"{path.relative_to(src)}: Settings()")
    assert offenders == []
