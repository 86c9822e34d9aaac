"""structlog set-up: key=value (console) or JSON lines, request id from contextvars on every line.

Whatever a log line holds can come from a client (a path with ``%1B`` or ``%00`` in it, a header, an
exception that quotes its input), so control characters never reach the output raw: C0 (with tab and
newline), DEL, C1 and the Unicode line and paragraph separators are written as escapes (``\\x1b``, ``\\n``,
``\\u2028``), in keys and values, nested ones, the event and exception text, in both formats and in the
standard library's log lines too. A terminal then shows no escape sequence and nobody can start a forged
line. Other text, printable non-ASCII included, is left as it is.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import NoneType
from typing import Any

import structlog
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_SCALARS = frozenset({int, float, bool, NoneType})
MAX_DEPTH = 8  # nested deeper than this, a value is logged as its (escaped) repr


class SafeText(str):
    """Text already escaped where it had to be, with line breaks of its own: a formatted traceback."""

    __slots__ = ()


def escape_controls(text: str) -> str:
    """``text`` with every control character and line separator written as an escape."""
    # Every character escaped is unprintable to str.isprintable, which runs in C: most text takes this path.
    if text.isprintable():
        return text
    return text.translate(_ESCAPES)


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` (a string, a container of them, anything) with the text in it escaped; itself when clean."""
    if isinstance(value, str):
        return value if isinstance(value, SafeText) else escape_controls(value)
    if type(value) in _SCALARS:
        return value
    if depth < MAX_DEPTH:
        if isinstance(value, dict):
            return {_clean(k, depth + 1): _clean(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = [_clean(v, depth + 1) for v in value]
            return items if isinstance(value, list) else tuple(items) if isinstance(value, tuple) else set(items)
    # Anything else is rendered by its repr (both renderers do so): keep it unless that repr needs escaping.
    try:
        shown = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
    return value if shown.isprintable() and depth < MAX_DEPTH else escape_controls(shown)


def escape_control_characters(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: every key and value of the event, nested ones too, with control characters and
    line separators escaped. An event of plain strings and numbers (the usual one) is passed on untouched."""
    # The usual event is checked in one loop without calls (keys at once): a log call must stay cheap.
    if "".join(event_dict).isprintable():
        for value in event_dict.values():
            if value.isprintable() if type(value) is str else type(value) in _SCALARS:
                continue
            break
        else:
            return event_dict
    return {_clean(k): _clean(v) for k, v in event_dict.items()}


def format_exception(exc_info: ExcInfo) -> str:
    """The traceback Python would print, one line per line, with control characters escaped inside each
    line: an exception's message or note (which may quote a request) cannot break a line of its own."""
    exc = exc_info[1]
    if exc is None:
        return SafeText("NoneType: None")
    return SafeText("".join(_exception_lines(exc, set())).rstrip("\n"))


def _exception_lines(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    lines: list[str] = []
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        lines += _exception_lines(cause, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        lines += _exception_lines(context, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if exc.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        for frame in traceback.format_tb(exc.__traceback__):  # "  File ..., line N, in f\n    source\n"
            lines.append("\n".join(escape_controls(line) for line in frame.split("\n")))
    lines.append(escape_controls(_exception_only(exc)) + "\n")
    lines.extend(escape_controls(str(note)) + "\n" for note in getattr(exc, "__notes__", None) or ())
    if isinstance(exc, BaseExceptionGroup):
        for number, member in enumerate(exc.exceptions, 1):
            lines.append(f"+---------------- {number} ----------------\n")
            lines.extend(f"| {line}\n" for line in "".join(_exception_lines(member, seen)).rstrip("\n").split("\n"))
    return lines


def _exception_only(exc: BaseException) -> str:
    kind, name = type(exc), type(exc).__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    return f"{name}: {text}" if text else name


class EscapingFormatter(logging.Formatter):
    """The standard library's lines (uvicorn's, SQLAlchemy's...) escaped as structlog's are."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return format_exception(ei)

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(escape_controls(line) for line in stack_info.split("\n"))


def processors(fmt: str = "console") -> list[Processor]:
    """structlog's chain: context, level and time, the exception as text, everything escaped, then rendered."""
    # The traceback becomes plain text before rendering: never rich's pretty printer, which prints local
    # variables (slow on large payloads, and locals may hold secrets).
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.ExceptionRenderer(format_exception),
        escape_control_characters,
        renderer,
    ]


def stdlib_formatter(fmt: str = "console") -> logging.Formatter:
    """How the standard library's lines (uvicorn's start-up and errors, SQLAlchemy's, alembic's...) are written:
    ``LEVEL logger message`` in the console format; in the JSON one, JSON objects like structlog's own (with
    ``logger``, and the traceback as ``exception``), so that every line of the process parses as JSON."""
    if fmt != "json":
        return EscapingFormatter("%(levelname)s %(name)s %(message)s")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.ExceptionRenderer(format_exception),
            escape_control_characters,
            structlog.processors.JSONRenderer(),
        ],
    )


class SharedStreamHandler(logging.Handler):
    """Python's log records, written through a structlog ``PrintLogger``: under the one lock structlog keeps
    per stream, so a line from another thread (aiosqlite's, a thread pool's) never lands inside a line of
    the event loop's, and every line stays one JSON document."""

    def __init__(self, file: Any) -> None:
        super().__init__()
        self._out = structlog.PrintLogger(file)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._out.msg(self.format(record))
        except Exception:
            self.handleError(record)


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=processors(fmt),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = SharedStreamHandler(sys.stderr)
    handler.setFormatter(stdlib_formatter(fmt))
    logging.basicConfig(level=numeric, handlers=[handler])
    if fmt == "json":  # Python's warnings too, as py.warnings lines, not straight to stderr in a format of their own
        logging.captureWarnings(True)
    # uvicorn's own access log would duplicate ours (and has no request id).
    logging.getLogger("uvicorn.access").disabled = True
