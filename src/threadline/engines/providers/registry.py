"""Which provider answers for a name, and whether an agent version's configuration can work with it.

``get_provider`` builds one instance per process and configuration and hands the same one to every run
(the HTTP client and the loaded local model are shared). ``check_version`` is what creating an agent version
calls, so that a configuration that cannot work fails there, as a 422, and not at the first message.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from threadline.config import Settings
from threadline.engines.providers.base import Provider, UnsupportedFeature

PROVIDERS = ("local", "openai")

_cache: dict[tuple[Any, ...], Provider] = {}
_lock = threading.Lock()


class UnknownProvider(UnsupportedFeature):
    """No provider has that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown provider {name!r}; the providers are: {', '.join(PROVIDERS)}")
        self.provider = name


def _key(name: str, settings: Settings) -> tuple[Any, ...]:
    if name == "openai":
        secret = settings.providers.openai_api_key.get_secret_value() if settings.providers.openai_api_key else ""
        # A digest rather than the key itself, so that the cache holds no second copy of it.
        digest = hashlib.sha256(secret.encode()).hexdigest()
        return (
            name,
            settings.providers.openai_base_url,
            digest,
            settings.providers.openai_timeout_s,
            settings.providers.default_context_window,
        )
    if name == "local":
        return (name, str(settings.providers.local_model_path or ""), settings.providers.local_context_window)
    raise UnknownProvider(name)


def provider_class(name: str) -> type[Provider]:
    """The class of provider ``name``, imported on first use; raises :class:`UnknownProvider` for any other."""
    if name == "openai":
        from threadline.engines.providers.openai import OpenAIProvider

        return OpenAIProvider
    if name == "local":
        from threadline.engines.providers.local import LocalProvider

        return LocalProvider
    raise UnknownProvider(name)


def needs_model(name: str) -> bool:
    """Whether an agent version of provider ``name`` must name its model. A provider that serves one model of
    its own (``local``) does not: its ``default_model`` answers for a version that names none. Raises
    :class:`UnknownProvider` for a name no provider has."""
    return provider_class(name).default_model is None


def _build(name: str, settings: Settings) -> Provider:
    if name == "openai":
        from threadline.engines.providers.openai import OpenAIProvider

        key = settings.providers.openai_api_key.get_secret_value() if settings.providers.openai_api_key else None
        return OpenAIProvider(
            base_url=settings.providers.openai_base_url,
            api_key=key,
            timeout_s=settings.providers.openai_timeout_s,
            default_context_window=settings.providers.default_context_window,
        )
    from threadline.engines.providers.local import LocalProvider

    return LocalProvider(
        model_path=settings.providers.local_model_path, context_window=settings.providers.local_context_window
    )


def get_provider(name: str, settings: Settings) -> Provider:
    """The provider called ``name`` ("openai" or "local") for this configuration, built on first use.

    Raises :class:`UnknownProvider` (a ``ValueError``) for any other name. Building is cheap: the OpenAI
    client connects on its first call, the local model loads on its first request.
    """
    key = _key(name, settings)
    with _lock:
        provider = _cache.get(key)
        if provider is None:
            provider = _cache[key] = _build(name, settings)
        return provider


async def close_providers() -> None:
    """Close every provider built so far (their HTTP clients) and forget them; for shutdown and tests."""
    with _lock:
        providers = list(_cache.values())
        _cache.clear()
    for provider in providers:
        await provider.aclose()


def _tool_names(tools: list[dict[str, Any]]) -> list[str]:
    """The names of a version's tools, whichever shape they come in (their validation is the tools' own)."""
    names = []
    for tool in tools:
        inner = tool.get("function")
        name = (inner if isinstance(inner, dict) else tool).get("name")
        if isinstance(name, str):
            names.append(name)
    return names


DEFAULT_PROVIDER = "openai"  # what a PROMPT version without a provider uses


def check_version(
    provider_name: str | None,
    model: str | None,
    tools: list[dict[str, Any]],
    version_settings: dict[str, Any],
    settings: Settings,
) -> None:
    """Raise ``ValueError`` (``UnsupportedFeature`` for what the provider cannot do) with a message fit for
    a 422 when an agent version's provider, model, tools or settings cannot work together."""
    if not provider_name:
        raise ValueError("a PROMPT agent version needs a provider: " + ", ".join(PROVIDERS))
    provider = get_provider(provider_name, settings)
    names = _tool_names(tools)
    window = version_settings.get("context_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 256):
        raise ValueError("settings.context_window must be a whole number of tokens, at least 256")
    choice = version_settings.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, str) or not choice:
            raise ValueError("settings.tool_choice must be 'auto', 'none', 'required' or the name of a tool")
        if choice not in ("auto", "none", "required") and choice not in names:
            raise ValueError(f"settings.tool_choice names {choice!r}, which is not one of the version's tools")
        if choice == "required" and not names:
            raise ValueError("settings.tool_choice 'required' needs at least one tool")
    provider.check(model=model, tools=tools, settings=version_settings)
