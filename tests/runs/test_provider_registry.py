"""Providers by name, one per configuration, and the checks an agent version goes through at creation."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import pytest

from threadline.config import Settings
from threadline.engines.providers.base import UnsupportedFeature
from threadline.engines.providers.local import LocalProvider
from threadline.engines.providers.openai import OpenAIProvider
from threadline.engines.providers.registry import UnknownProvider, check_version, close_providers, get_provider

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture
async def config(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Settings]:
    for name in ("OPENAI_API_KEY", "THREADLINE_OPENAI_API_KEY", "THREADLINE_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield Settings(openai_base_url="http://127.0.0.1:9/v1", openai_api_key="sk-registry-test")
    await close_providers()


async def test_one_provider_per_name_and_configuration(config: Settings) -> None:
    first = get_provider("openai", config)
    assert isinstance(first, OpenAIProvider)
    assert get_provider("openai", config) is first
    same = Settings(openai_base_url=config.providers.openai_base_url, openai_api_key="sk-registry-test")
    assert get_provider("openai", same) is first
    assert get_provider("openai", Settings(openai_base_url="http://127.0.0.1:10/v1")) is not first
    local = get_provider("local", config)
    assert isinstance(local, LocalProvider)
    assert local.loads == 0, "building the provider loads no model"


async def test_an_unknown_provider_is_a_clear_value_error(config: Settings) -> None:
    with pytest.raises(UnknownProvider, match="unknown provider 'antropic'; the providers are: local, openai"):
        get_provider("antropic", config)
    assert issubclass(UnknownProvider, ValueError)


def test_the_key_comes_from_openai_api_key_when_threadline_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THREADLINE_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-plain-env")
    plain = Settings()
    assert (
        plain.providers.openai_api_key is not None
        and plain.providers.openai_api_key.get_secret_value() == "sk-from-plain-env"
    )
    monkeypatch.setenv("THREADLINE_OPENAI_API_KEY", "sk-from-threadline-env")
    ours = Settings()
    assert (
        ours.providers.openai_api_key is not None
        and ours.providers.openai_api_key.get_secret_value() == "sk-from-threadline-env"
    )
    assert "sk-from" not in repr(ours) and "sk-from" not in str(ours.model_dump())


@pytest.mark.parametrize(
    ("tools", "version_settings", "message"),
    [
        ([WEATHER], {"tool_choice": "get_time"}, "names 'get_time', which is not one of the version's tools"),
        ([], {"tool_choice": "required"}, "'required' needs at least one tool"),
        ([WEATHER], {"tool_choice": 3}, "must be 'auto', 'none', 'required' or the name of a tool"),
        ([], {"context_window": "big"}, "context_window must be a whole number"),
        ([], {"context_window": 10}, "context_window must be a whole number"),
    ],
)
async def test_settings_that_cannot_work_are_refused(
    config: Settings, tools: list[dict[str, Any]], version_settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_version("openai", "gpt-4o-mini", tools, version_settings, config)


async def test_a_working_openai_version_passes(config: Settings) -> None:
    check_version("openai", "gpt-4o-mini", [WEATHER], {"tool_choice": "get_weather", "context_window": 32_000}, config)
    check_version("openai", "gpt-4o-mini", [{"name": "bare", "parameters": {}}], {"tool_choice": "bare"}, config)


async def test_a_version_needs_a_provider_and_the_openai_one_a_model(config: Settings) -> None:
    with pytest.raises(ValueError, match="needs a provider"):
        check_version(None, "gpt-4o", [], {}, config)
    with pytest.raises(UnknownProvider):
        check_version("antropic", "claude", [], {}, config)
    with pytest.raises(UnsupportedFeature, match="needs a model"):
        check_version("openai", None, [], {}, config)


@pytest.mark.parametrize("version_settings", [{}, {"tool_choice": "auto"}])
async def test_the_local_provider_refuses_tools_it_would_have_to_choose(
    config: Settings, version_settings: dict[str, Any]
) -> None:
    with pytest.raises(UnsupportedFeature, match=r"tool_choice|threadline\[local\]"):
        check_version("local", None, [WEATHER], version_settings, config)


@pytest.mark.skipif(not HAS_LLAMA, reason="needs the threadline[local] extra")
async def test_the_local_provider_takes_a_forced_tool_or_none(config: Settings) -> None:
    check_version("local", None, [WEATHER], {"tool_choice": "get_weather"}, config)
    check_version("local", None, [WEATHER], {"tool_choice": "required"}, config)
    check_version("local", None, [WEATHER], {"tool_choice": "none"}, config)
    check_version("local", None, [], {}, config)
    two = [WEATHER, {"name": "get_time", "description": "", "parameters": {}}]
    with pytest.raises(UnsupportedFeature, match="cannot choose among tools"):
        check_version("local", None, two, {"tool_choice": "required"}, config)


@pytest.mark.skipif(HAS_LLAMA, reason="only without the threadline[local] extra")
async def test_without_the_extra_the_local_provider_says_how_to_install_it(config: Settings) -> None:
    with pytest.raises(UnsupportedFeature, match=r"pip install 'threadline\[local\]'"):
        check_version("local", None, [], {}, config)
