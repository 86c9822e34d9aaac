"""Output for people and for scripts: on a terminal, Rich tables and colours; anywhere else (a pipe, a file),
plain text aligned in columns with no escape codes; with ``--json``, one JSON array of objects that keep every
value whole (times in ISO 8601, nulls as null, lists as lists)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

Record = dict[str, Any]


def cell_text(value: Any) -> str:
    """How a value reads in a table cell: ``-`` for nothing, UTC times to the second, lists joined by commas."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def first_line(text: str | None, limit: int = 60) -> str:
    """The first line of ``text``, cut at ``limit`` characters (an error in a table's cell)."""
    return ((text or "-").splitlines() or ["-"])[0][:limit]


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a table: its header, the record's key it shows, and how the cell reads when that is not
    simply the value (``text`` gets the whole record). ``whole``: never wrapped nor cut on a terminal (ids that
    people copy)."""

    header: str
    key: str
    text: Callable[[Record], str] | None = None
    whole: bool = False

    def cell(self, record: Record) -> str:
        return self.text(record) if self.text is not None else cell_text(record.get(self.key))


def console(file: IO[str] | None = None, *, stderr: bool = False) -> Console:
    """A Rich console on ``file`` (default stdout, or stderr): colours only when it is a terminal (and
    ``NO_COLOR`` is unset); never Rich's guesses at highlighting."""
    return Console(file=file, stderr=stderr, highlight=False, emoji=False)


def print_records(
    columns: Sequence[Column], records: Sequence[Record], *, as_json: bool = False, file: IO[str] | None = None
) -> None:
    """Show ``records``: JSON with ``as_json``, a Rich table on a terminal, aligned plain text otherwise."""
    out = file if file is not None else sys.stdout
    if as_json:
        click.echo(json.dumps(list(records), default=json_default, ensure_ascii=False, indent=2), file=out)
        return
    rows = [[column.cell(record) for column in columns] for record in records]
    screen = console(out)
    if not screen.is_terminal:
        plain_table([c.header for c in columns], rows, file=out)
        return
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    for i, column in enumerate(columns):
        widest = max((len(row[i]) for row in rows), default=len(column.header))
        table.add_column(
            column.header, no_wrap=column.whole, min_width=widest if column.whole else None, overflow="fold"
        )
    for row in rows:
        table.add_row(*(Text(cell, style="dim" if cell == "-" else "") for cell in row))
    screen.print(table)
    if not rows:
        screen.print(Text("(none)", style="dim"))


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, file: IO[str] | None = None) -> None:
    """Columns aligned with spaces, two between columns, no trailing blanks: what scripts cut with ``awk``."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    for row in [list(headers), *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=file)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)  # UUIDs, enumerations that are not str, Decimals
