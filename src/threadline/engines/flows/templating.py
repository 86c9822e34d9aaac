"""``{{name}}`` placeholders in flow texts: dictionary lookups only, one pass, nothing evaluated.

Syntax: ``{{ path }}`` or ``{{ path | fallback }}``. A path is a root name followed by dotted keys or list
indexes (``user.display_name``, ``order.items.0.sku``). The fallback is literal text, used when the value
is missing, null or the empty string. Values are looked up in plain JSON data (dicts, lists, scalars);
there are no attributes, calls, filters or expressions, so a template cannot reach past the data it is
given. Substituted values are never scanned again: an end user who types ``{{secret}}`` gets it back
verbatim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

PLACEHOLDER: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_INNER: Final = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*(?:\|(.*))?$", re.DOTALL)
PATH_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z0-9_-]{1,64}){0,15}$")
MAX_RENDERED_CHARS: Final = 60_000


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()


def template_problem(text: str) -> str | None:
    """What is wrong with the placeholders of ``text``, or None."""
    for match in PLACEHOLDER.finditer(text):
        inner = _INNER.match(match.group(1))
        if inner is None or PATH_RE.match(inner.group(1)) is None:
            shown = match.group(0) if len(match.group(0)) <= 60 else match.group(0)[:57] + "..."
            return (
                f"bad placeholder {shown!r}: write {{{{name}}}}, {{{{user.display_name}}}} or {{{{name | fallback}}}}"
            )
    return None


def lookup(scope: Any, path: str) -> Any:
    """The value at ``path`` (dotted keys, list indexes) in ``scope`` (JSON data), or ``MISSING``."""
    value: Any = scope
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def is_blank(value: Any) -> bool:
    return value is MISSING or value is None or value == ""


def to_text(value: Any) -> str:
    """How a value reads in a message: strings as they are, JSON for the rest (true, 3, {"a":1})."""
    if is_blank(value):
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def render(text: str, scope: Mapping[str, Any], *, escape: Callable[[str], str] | None = None) -> str:
    """``text`` with its placeholders replaced (``escape`` applied to each substituted value)."""
    if "{{" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        inner = _INNER.match(match.group(1))
        if inner is None:
            return match.group(0)  # refused at parse time; kept verbatim if it ever gets here
        value = lookup(scope, inner.group(1))
        if is_blank(value) and inner.group(2) is not None:
            return inner.group(2).strip()  # the fallback is the author's text, not escaped
        rendered = to_text(value)
        return escape(rendered) if escape is not None else rendered

    out = PLACEHOLDER.sub(substitute, text)
    return out if len(out) <= MAX_RENDERED_CHARS else out[:MAX_RENDERED_CHARS]


def render_json(value: Any, scope: Mapping[str, Any]) -> Any:
    """A JSON value with the placeholders of its strings replaced. A string that is exactly one
    placeholder becomes the value itself (a number stays a number); missing, it becomes its fallback
    text, or null."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        inner = _INNER.match(whole.group(1)) if whole is not None else None
        if inner is not None:
            found = lookup(scope, inner.group(1))
            if is_blank(found):
                return inner.group(2).strip() if inner.group(2) is not None else None
            return _copy(found)
        return render(value, scope)
    if isinstance(value, dict):
        return {k: render_json(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render_json(v, scope) for v in value]
    return value


def json_template_problem(value: Any) -> tuple[str, str] | None:
    """The first string of a JSON value with a bad placeholder: (relative path, problem), or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if (problem := template_problem(item)) is not None:
                return path, problem
        elif isinstance(item, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in reversed(list(enumerate(item))))
    return None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
