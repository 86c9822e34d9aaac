"""The log processor that escapes control characters: in keys and values, nested ones, the event, the exception
text (its lines kept) and the standard library's lines, in both formats; and an ordinary event untouched."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from typing import Any

import pytest
import structlog

from threadline.logging import EscapingFormatter, escape_control_characters, escape_controls, processors

# Every character that must never reach a log raw, one of each kind, and what each becomes.
NASTY = "\x00\x07\t\n\r\x1b\x7f\x80\x85\x9b\x9f\u2028\u2029"
ESCAPED = "\\x00\\x07\\t\\n\\r\\x1b\\x7f\\x80\\x85\\x9b\\x9f\\u2028\\u2029"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # the newline alone may end a line


def rendered(fmt: str, emit: Any) -> str:
    """What ``emit(log)`` writes with threadline's chain for ``fmt`` (the one ``configure_logging`` sets)."""
    out = io.StringIO()
    wrapper = structlog.make_filtering_bound_logger(logging.DEBUG)  # whatever level the app set
    emit(structlog.wrap_logger(structlog.PrintLogger(out), processors=processors(fmt), wrapper_class=wrapper))
    return out.getvalue()


def test_every_control_character_and_line_separator_is_escaped_and_the_rest_kept() -> None:
    assert escape_controls(NASTY) == ESCAPED
    assert escape_controls("GET /v1/threads café ünïcödé 日本 \u00a0 emoji \U0001f600") == (
        "GET /v1/threads café ünïcödé 日本 \u00a0 emoji \U0001f600"
    )
    for code in range(0x110000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        must = code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029)
        assert (escape_controls(char) != char) is must, hex(code)


def test_an_ordinary_event_is_passed_on_as_it_is() -> None:
    event = {"event": "request", "method": "GET", "path": "/v1/threads", "status": 200, "ms": 1.5, "ok": None}
    assert escape_control_characters(None, "info", event) is event


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_keys_values_nested_values_and_the_event_are_escaped_in_both_formats(fmt: str) -> None:
    class Shown:
        def __repr__(self) -> str:
            return f"Shown({NASTY})"

    ident = uuid.uuid4()
    text = rendered(
        fmt,
        lambda log: log.info(
            f"event{NASTY}",
            path=f"/v1/{NASTY}",
            **{f"key{NASTY}": {f"inner{NASTY}": [NASTY, (NASTY,), {NASTY}], "n": 1}},
            other=Shown(),
            ident=ident,
            deep=[[[[[[[[[[NASTY]]]]]]]]]],
        ),
    )
    assert RAW.search(text.rstrip("\n")) is None, text
    assert text.count("\n") == 1
    if fmt == "json":
        line = json.loads(text)
        assert line["event"] == f"event{ESCAPED}"
        assert line["path"] == f"/v1/{ESCAPED}"
        # (JSON has no sets: structlog writes a set's repr, here of the escaped text)
        assert line[f"key{ESCAPED}"] == {f"inner{ESCAPED}": [ESCAPED, [ESCAPED], repr({ESCAPED})], "n": 1}
        assert line["other"] == f"Shown({ESCAPED})"
        assert line["ident"] == repr(ident)  # other objects keep their repr
        deepest = line["deep"]
        while isinstance(deepest, list):
            (deepest,) = deepest
        assert ESCAPED in deepest  # past MAX_DEPTH: the rest as its repr, escaped
    else:
        assert text.split(" ")[0].endswith("Z")
        assert f"event{ESCAPED}" in text
        assert f"path=/v1/{ESCAPED}" in text
        assert f"key{ESCAPED}=" in text
        assert f"ident={ident!r}" in text


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_exception_text_is_escaped_and_a_traceback_keeps_its_own_lines(fmt: str) -> None:
    def emit(log: Any) -> None:
        try:
            try:
                raise KeyError(f"key{NASTY}")
            except KeyError as inner:
                error = ValueError(f"bad input: /v1/\x1b[2J\n2030-01-01 [info ] FORGED{NASTY}")
                error.add_note(f"note{NASTY}")
                raise error from inner
        except ValueError:
            log.exception(f"failed{NASTY}", where=f"x{NASTY}")

    text = rendered(fmt, emit)
    if fmt == "json":
        assert text.count("\n") == 1
        exception = json.loads(text)["exception"]
    else:
        exception = text
    assert RAW.search(exception.replace("\n", "")) is None, exception
    lines = exception.split("\n")
    assert not any(line.startswith("2030-01-01") for line in lines), exception
    assert "Traceback (most recent call last):" in lines
    assert "The above exception was the direct cause of the following exception:" in lines
    assert f"KeyError: 'key{ESCAPED}'" in lines  # KeyError shows its key's repr, escaped alike
    assert f"ValueError: bad input: /v1/\\x1b[2J\\n2030-01-01 [info ] FORGED{ESCAPED}" in lines
    assert f"note{ESCAPED}" in lines
    assert any(line.strip() == "raise error from inner" for line in lines)  # source lines stay lines


def test_an_exception_group_lists_its_members_escaped_on_lines_of_their_own() -> None:
    def emit(log: Any) -> None:
        try:
            raise ExceptionGroup("two", [ValueError(f"one{NASTY}"), TypeError("other\nFORGED")])
        except ExceptionGroup:
            log.exception("failed")

    text = rendered("console", emit)
    assert RAW.search(text.replace("\n", "")) is None, text
    assert f"| ValueError: one{ESCAPED}" in text.split("\n")
    assert "| TypeError: other\\nFORGED" in text.split("\n")


def test_the_standard_librarys_lines_are_escaped_too() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger(f"tests.logging.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("received %s", f"/v1/{NASTY}")
    try:
        raise RuntimeError(f"from a library\n{NASTY}")
    except RuntimeError:
        logger.exception("failed %s", NASTY)
    text = out.getvalue()
    lines = text.split("\n")
    assert lines[0] == f"WARNING {logger.name} received /v1/{ESCAPED}"
    assert lines[1] == f"ERROR {logger.name} failed {ESCAPED}"
    assert f"RuntimeError: from a library\\n{ESCAPED}" in lines
    assert RAW.search(text.replace("\n", "")) is None, text
