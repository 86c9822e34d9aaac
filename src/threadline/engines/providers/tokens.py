"""Counting the tokens of a chat request, offline, the way OpenAI documents it.

tiktoken downloads its encodings at run time, which a self-hosted server may not be allowed to do. The two
encodings that current OpenAI chat models use ship with threadline instead (``data/*.tiktoken.gz``: OpenAI's
published rank files, unchanged) and are checked against the SHA-256 that tiktoken itself pins before use:

- ``o200k_base``: gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4, gpt-oss;
- ``cl100k_base``: gpt-4, gpt-4-turbo, gpt-3.5-turbo.

A chat request costs, per OpenAI's cookbook ("How to count tokens with tiktoken", checked there against the
API's ``usage.prompt_tokens``): 3 tokens per message, the tokens of each field's value, 1 more for a
``name``, 3 to prime the reply; tool definitions are rendered by OpenAI in a compact form whose cost the
cookbook measured (per function, per property, per enum value). Those rules are exact for plain messages
and for flat tool schemas; for nested schemas and for assistant tool calls in the history the rendering is
not documented, so we count the JSON text, which overstates rather than understates.

Any other model (served by vLLM, Ollama, llama.cpp, LM Studio...) has a tokenizer we cannot know. Its
request is counted with ``cl100k_base`` (the closest common ancestor of Llama 3's and Qwen's tokenizers),
tool definitions as the JSON most chat templates paste into the prompt, and the result is multiplied by a
safety margin: :data:`UNKNOWN_MODEL_MARGIN`, or the ratio the server itself reported (``usage``) for that
model, when it has (see :class:`MarginBook`).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import tiktoken

from threadline.engines.providers.base import ChatMessage, ToolSpec

DATA_DIR = Path(__file__).parent / "data"

# Multiplies counts made with a borrowed tokenizer until the server reports real usage for the model.
# SentencePiece tokenizers (Mistral, Gemma, Llama 2, Phi) need up to ~20-30% more tokens than cl100k for
# English text, and chat templates add their own markup.
UNKNOWN_MODEL_MARGIN = 1.25

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True, slots=True)
class _EncodingSpec:
    sha256: str  # of the uncompressed rank file, as pinned in tiktoken_ext/openai_public.py
    pat_str: str
    special_tokens: dict[str, int]


_SPECS: dict[str, _EncodingSpec] = {
    "cl100k_base": _EncodingSpec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        special_tokens={
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": _EncodingSpec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
}

_load_lock = threading.Lock()


@cache
def _load(name: str) -> tiktoken.Encoding:
    spec = _SPECS[name]
    raw = gzip.decompress((DATA_DIR / f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != spec.sha256:
        raise RuntimeError(f"the bundled {name} rank file is damaged (its SHA-256 does not match tiktoken's)")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in raw.splitlines() if line)}
    return tiktoken.Encoding(name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens)


def get_encoding(name: str) -> tiktoken.Encoding:
    """``cl100k_base`` or ``o200k_base``, loaded from the bundled file once per process (thread-safe)."""
    with _load_lock:  # @cache alone would let two threads parse the 200k-line file at once
        return _load(name)


# Longest prefix first; a fine-tuned model ("ft:gpt-4o-mini:org::id") counts as its base model.
_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35")


@dataclass(frozen=True, slots=True)
class Tokenizer:
    """How a model's requests are counted: its encoding, and whether OpenAI's documented rules apply."""

    encoding_name: str
    exact: bool  # an OpenAI model whose tokenizer and chat rendering we know
    func_init: int = 7  # the cookbook's measured cost of one function definition (gpt-4o family)

    @property
    def encoding(self) -> tiktoken.Encoding:
        return get_encoding(self.encoding_name)


def base_model(model: str) -> str:
    """``ft:gpt-4o-mini:org::id`` -> ``gpt-4o-mini``; ``openai/gpt-4o`` -> ``gpt-4o``; lower case."""
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name.rsplit("/", 1)[-1]


def tokenizer_for(model: str | None) -> Tokenizer:
    """The tokenizer of an OpenAI model, or ``cl100k_base`` marked inexact for anything else."""
    if model:
        name = base_model(model)
        if name.startswith(_O200K_PREFIXES):
            # gpt-oss speaks OpenAI's "harmony" format, not the chat format the rules below describe.
            return Tokenizer("o200k_base", exact=not name.startswith("gpt-oss"))
        if name.startswith(_CL100K_PREFIXES):
            return Tokenizer("cl100k_base", exact=True, func_init=10)
    return Tokenizer("cl100k_base", exact=False)


def count_chat_tokens(messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...], tokenizer: Tokenizer) -> int:
    """The prompt tokens of a chat request, before any margin: per-message overhead, fields, tools, primer."""
    enc = tokenizer.encoding
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3 + _n(enc, message.role)
        if message.content:
            total += _n(enc, message.content)
        if message.name:
            total += 1 + _n(enc, message.name)
        for call in message.tool_calls:
            # Undocumented rendering: the call's id, name and arguments plus a few tokens of markup.
            total += 3 + _n(enc, f"{call.id}{call.name}{call.arguments}")
        if message.tool_call_id:
            total += _n(enc, message.tool_call_id)
    if tools:
        total += _openai_tools(tools, tokenizer) if tokenizer.exact else _json_tools(tools, enc)
    return total


def _n(enc: tiktoken.Encoding, text: str) -> int:
    """Tokens of ``text``; special-token markers in it count as the plain text they are."""
    return len(enc.encode(text, disallowed_special=()))


def _openai_tools(tools: tuple[ToolSpec, ...], tokenizer: Tokenizer) -> int:
    """The cookbook's count for OpenAI's rendering of function definitions, JSON text where it has no rule."""
    enc = tokenizer.encoding
    total = 12  # func_end: once for the whole tools block
    for tool in tools:
        total += tokenizer.func_init + _n(enc, f"{tool.name}:{tool.description.removesuffix('.')}")
        properties = tool.parameters.get("properties") or {}
        if properties:
            total += 3  # prop_init
        for key, prop in properties.items():
            total += 3  # prop_key
            if not isinstance(prop, dict) or not _flat(prop):
                total += _n(enc, f"{key}:{json.dumps(prop, ensure_ascii=False)}")
                continue
            if "enum" in prop:
                total -= 3  # enum_init
                for item in prop["enum"]:
                    total += 3 + _n(enc, str(item))  # enum_item
            description = str(prop.get("description", "")).removesuffix(".")
            total += _n(enc, f"{key}:{prop.get('type')}:{description}")
    return total


def _flat(prop: dict[str, Any]) -> bool:
    """A property the cookbook's rule covers: a scalar type, a description, maybe an enum; nothing nested."""
    return isinstance(prop.get("type"), str) and set(prop) <= {"type", "description", "enum"}


def _json_tools(tools: tuple[ToolSpec, ...], enc: tiktoken.Encoding) -> int:
    """Tools the way most open models' chat templates show them: each definition as JSON, plus markup."""
    total = 0
    for tool in tools:
        definition = {"type": "function", "function": _function(tool)}
        total += 4 + _n(enc, json.dumps(definition, ensure_ascii=False))
    return total


def _function(tool: ToolSpec) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


class MarginBook:
    """Per model, how much a borrowed tokenizer undercounts, learnt from the usage the server reports.

    The factor for a model starts at :data:`UNKNOWN_MODEL_MARGIN`; once the server has reported
    ``prompt_tokens`` for a request we counted, it becomes the largest ratio seen (reported / counted) plus
    5% headroom, never below 1. Thread-safe; kept in memory per provider, so it resets with the process.
    """

    HEADROOM = 1.05
    MAX_FACTOR = 4.0

    def __init__(self, default: float = UNKNOWN_MODEL_MARGIN) -> None:
        self._default = default
        self._ratios: dict[str, float] = {}
        self._lock = threading.Lock()

    def factor(self, model: str | None) -> float:
        with self._lock:
            ratio = self._ratios.get(model or "")
        if ratio is None:
            return self._default
        return min(self.MAX_FACTOR, max(1.0, ratio * self.HEADROOM))

    def observe(self, model: str, *, counted: int, reported: int) -> None:
        if counted <= 0 or reported <= 0:
            return
        with self._lock:
            self._ratios[model] = max(self._ratios.get(model, 0.0), reported / counted)

    def apply(self, model: str | None, raw: int) -> int:
        return math.ceil(raw * self.factor(model))
