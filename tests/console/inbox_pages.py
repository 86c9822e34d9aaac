"""Reading the console's HTML in tests: a small tree (html.parser, standard library) to find elements by id, class
or attribute and read their text, and the steps a browser takes on the inbox (sign in, open a view, load more)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        """The text inside, white space folded (what a person reads)."""
        parts: list[str] = []

        def walk(node: Node) -> None:
            for child in node.children:
                if isinstance(child, str):
                    parts.append(child)
                else:
                    walk(child)

        walk(self)
        return " ".join("".join(parts).split())

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, *, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for node in self.iter():
            if tag is not None and node.tag != tag:
                continue
            if cls is not None and cls not in node.classes:
                continue
            if any(node.attrs.get(name.replace("_", "-")) != value for name, value in attrs.items()):
                continue
            found.append(node)
        return found

    def by_id(self, element_id: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def has_id(self, element_id: str) -> bool:
        return any(n.attrs.get("id") == element_id for n in self.iter())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def row_ids(html: str | Node) -> list[str]:
    """The threads the list shows, top to bottom."""
    doc = parse(html) if isinstance(html, str) else html
    return [n.attrs["data-thread-id"] for n in doc.find_all(cls="thread-row")]


def rows_by_id(html: str | Node) -> dict[str, Node]:
    doc = parse(html) if isinstance(html, str) else html
    return {n.attrs["data-thread-id"]: n for n in doc.find_all(cls="thread-row")}


def counts(html: str | Node) -> dict[str, str]:
    """The views' counts as the sidebar shows them ("" for none)."""
    doc = parse(html) if isinstance(html, str) else html
    return {view: doc.by_id(f"count-{view}").text for view in ("needs_human", "mine", "unassigned", "all")}


def more_url(html: str | Node) -> str | None:
    """Where the "load more" button asks for the next rows (None when there is none)."""
    doc = parse(html) if isinstance(html, str) else html
    found = doc.find_all(id="inbox-more")
    return found[0].attrs["hx-get"] if found else None


HTMX_LIST = {"HX-Request": "true", "HX-Target": "thread-list"}
HTMX_MORE = {"HX-Request": "true", "HX-Target": "inbox-more"}


async def inbox(client: httpx.AsyncClient, **params: Any) -> Node:
    """The inbox page for these query fields (a whole page)."""
    r = await client.get("/console/inbox", params=params)
    assert r.status_code == 200, r.text[:2000]
    return parse(r.text)


async def walk(client: httpx.AsyncClient, first: str, *, between: Any = None) -> list[str]:
    """Every thread the list shows, following "load more" from the page at URL ``first`` as htmx does;
    ``between(page_number)`` runs after each page."""
    r = await client.get(first)
    assert r.status_code == 200, r.text[:2000]
    seen = row_ids(r.text)
    url = more_url(r.text)
    number = 1
    while url is not None:
        if between is not None:
            await between(number)
        r = await client.get(url, headers=HTMX_MORE)
        assert r.status_code == 200, r.text[:2000]
        assert "<html" not in r.text
        seen += row_ids(r.text)
        url = more_url(r.text)
        number += 1
    return seen
