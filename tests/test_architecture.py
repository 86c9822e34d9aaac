"""The house plan, checked on the source tree with the standard library's ``ast`` (nothing is imported).

1. SQL only in repositories: statements are built (``select(...)``, ``insert``, ``update``, ``delete``,
   ``text``, ``exists``, ``func``...) and run (``.execute``, ``.scalar(s)``, ``.stream``, ``session.get``,
   ``with_for_update``...) only in a domain's ``repository.py`` (or ``repository/`` package), in ``db/``
   (engine, migrations) and in ``models/``. A dialect's ``repository.py`` does not count: dialects are
   mapping only.
2. Imports go down the layers of ARCHITECTURE.md ("Layers"), never up: ``LAYER_RULES`` below says which
   module is in which layer.
3. No two modules import each other (any cycle of modules), and no two packages do through their
   services, repositories and base modules (surfaces and flows sit above every package, so their imports
   go down by construction and do not make a package cycle).
4. A dialect maps: it imports no repository and does not read ``request.state``.

What counts as an import: ``import x`` and ``from x import y`` anywhere in a module (at module level or
inside a function: both run), ``importlib.import_module("<a literal name>")``, and the package
``__init__`` modules an import runs on the way (``threadline.channels`` for ``threadline.channels.outbox``),
except those of the importer's own packages. Imports under ``if TYPE_CHECKING:`` do not count: they never
run, they only name types for annotations.

Each check has a list of known violations, empty since issue 14 removed the last: a new violation fails
the test, and so does a listed one that no longer occurs, so the lists never hold stale entries.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import threadline

SRC = Path(threadline.__file__).parent
ROOT = "threadline"

# ------------------------------------------------------------------------------------------------ layers

SURFACE, FLOW, SERVICE, REPOSITORY, BASE = 1, 2, 3, 4, 5
LAYER_NAMES = {
    SURFACE: "surface",
    FLOW: "flow",
    SERVICE: "service",
    REPOSITORY: "repository/plug-in",
    BASE: "base",
}
# (pattern over the module's name without "threadline.", layer): the first that matches decides ("*" spans dots).
# Anything else in a domain package is a service.
LAYER_RULES: tuple[tuple[str, int], ...] = (
    # 5 base: the ORM, the engine and migrations, small shared pieces, settings, the error family.
    ("", BASE),  # threadline/__init__.py: the version
    ("models", BASE),
    ("models.*", BASE),
    ("db", BASE),
    ("db.*", BASE),
    ("kit", BASE),
    ("kit.*", BASE),
    ("config", BASE),
    ("errors", BASE),
    ("logging", BASE),
    # 4 repositories and plug-ins: SQL; what services exchange with them (schemas, enumerations of types and
    # actions); the agent's providers, tools and scripted flows; the channels' provider clients.
    ("dialects.*.repository", SURFACE),  # a dialect is a surface whatever it names its modules
    ("*.repository", REPOSITORY),
    ("*.schemas", REPOSITORY),
    ("web.openapi", REPOSITORY),  # the error body's schema, which domain schemas reuse for their docs
    ("events.types", REPOSITORY),
    ("audit.actions", REPOSITORY),
    ("engines", REPOSITORY),  # the agent's plug-ins: providers, tools, scripted flows
    ("engines.*", REPOSITORY),
    ("channels", REPOSITORY),  # the package's __init__, with the plug-ins it holds
    ("channels.client", REPOSITORY),
    ("channels.errors", REPOSITORY),
    ("channels.sender", REPOSITORY),  # the ChannelSender protocol
    ("channels.registry", REPOSITORY),  # the senders by channel type
    ("channels.segments", REPOSITORY),
    ("channels.twilio", REPOSITORY),  # a provider's package: its client, its sender
    ("channels.whatsapp", REPOSITORY),
    ("channels.*.client", REPOSITORY),
    ("channels.*.sender", REPOSITORY),
    ("integrations.channel_config", REPOSITORY),
    # 1 surfaces: the entry points of processes, HTTP and the worker.
    ("cli", SURFACE),
    ("app", SURFACE),
    ("web", SURFACE),
    ("web.*", SURFACE),  # ASGI middleware and the request dependencies
    ("dialects", SURFACE),
    ("dialects.*", SURFACE),
    ("*.endpoints", SURFACE),
    ("*.deps", SURFACE),  # FastAPI dependencies (audit.deps)
    ("channels.*.inbound", SURFACE),  # the providers' webhooks
    ("*.tasks", SURFACE),  # the worker's entry points: job wrappers around services
    ("console.routes", SURFACE),  # the operator console's pages (its service and repository sit below)
    ("console.web", SURFACE),  # its templates, headers, cookies and error pages
    ("console.inbox", SURFACE),  # the inbox's list, views, filters and search results
    ("console.live", SURFACE),  # the inbox's live stream (SSE)
    ("console.agents", SURFACE),  # the agents page (read-only)
    ("console.thread", SURFACE),  # the thread view: transcript, composer, actions
    ("console.thread_live", SURFACE),  # the thread view's live stream (SSE)
    ("terminal", SURFACE),  # the command's output for people and scripts, and `threadline chat`: an HTTP client
    ("terminal.*", SURFACE),
    # 2 flows: orchestration across domains.
    ("flows", FLOW),
    ("flows.*", FLOW),
    ("channels.inbound", FLOW),  # a provider's message in: end user, thread, message, run
    ("workspaces.bootstrap", FLOW),  # first start: workspace, admin key, demo agent and thread
    # The run path, in its three steps and the runtime that drives them: a run claims its thread and version,
    # calls the model and tools, then appends the replies (flows.send) and applies the thread changes.
    ("runs.runtime", FLOW),
    ("runs.claim", FLOW),
    ("runs.turn", FLOW),
    ("runs.finish", FLOW),
    # 3 services: everything else.
    ("*", SERVICE),
)

# ------------------------------------------------------------------------------------------------ known

# Known violations: none. An entry needs a reason and an issue that removes it.
KNOWN_SQL_OUTSIDE_REPOSITORIES: dict[str, str] = {}
KNOWN_UPWARD_IMPORTS: dict[tuple[str, str], str] = {}
# A cycle is listed by the import that closes it, the one going the wrong way: (importer, imported).
KNOWN_MODULE_BACK_EDGES: dict[tuple[str, str], str] = {}
KNOWN_PACKAGE_BACK_EDGES: dict[tuple[str, str], str] = {}
KNOWN_DIALECT_REACHES: dict[tuple[str, str], str] = {}

# Where SQL is in place outside a repository, and why. The test fails on any other.
SQL_ALLOWED: dict[str, str] = {
    "threadline.kit.pagination": "keyset_page runs the statement a repository built and handed it",
}
# importlib.import_module with a name computed at run time, which no static check can follow.
DYNAMIC_IMPORTS_ALLOWED: dict[str, str] = {
    "threadline.dialects": "the vendors' endpoint modules, by the names in dialects.mapping.VENDORS",
    "threadline.channels.endpoints": "the channels' inbound webhooks (<name>/inbound.py), by channels.registry",
    "threadline.jobs.registry": "the task modules named in the settings (THREADLINE_TASK_MODULES)",
    # A back reference (events -> webhooks) that no import shows: a candidate for registration by the process.
    "threadline.events.service": "the built-in event sinks (webhooks.sink): a plug-in registering itself",
    "threadline.engines.providers.openai": "optional third-party transport modules, for their error types",
}

# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def short(self) -> str:
        return self.name.removeprefix(ROOT).removeprefix(".")

    @property
    def where(self) -> str:
        return str(self.path.relative_to(SRC.parent))


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    target: str
    line: int


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        found[name] = Module(name, path, is_package)
    return found


@cache
def tree(name: str) -> ast.Module:
    module = modules()[name]
    return ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))


def _type_checking_nodes(root: ast.AST) -> set[int]:
    """The ids of every node under an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) block."""
    skipped: set[int] = set()
    for node in ast.walk(root):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _known_module(name: str) -> str | None:
    """``name`` if it is a threadline module, else the nearest package or module that holds it."""
    mods = modules()
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def imports_of(name: str) -> tuple[Import, ...]:
    return _imports(name, modules()[name].is_package, tree(name))


def _imports(name: str, is_package: bool, root: ast.Module) -> tuple[Import, ...]:
    package = name if is_package else name.rpartition(".")[0]
    skipped = _type_checking_nodes(root)
    direct: list[tuple[str, int]] = []
    for node in ast.walk(root):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            direct.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                direct.append((submodule if submodule in modules() else source, node.lineno))
        elif _is_dynamic_import(node):
            assert isinstance(node, ast.Call)
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                direct.append((arg.value, node.lineno))
    found: dict[tuple[str, int], None] = {}
    own_packages = set(_ancestors(name))
    for target, line in direct:
        if target != ROOT and not target.startswith(ROOT + "."):
            continue
        resolved = _known_module(target)
        if resolved is None:
            continue
        # Importing a.b.c runs a/__init__ and a/b/__init__ first (those of the importer's own packages have run).
        ran = [a for a in _ancestors(resolved) if a not in own_packages and not _empty_package(a)]
        for target in [*ran, resolved]:
            if target != name:
                found[(target, line)] = None
    return tuple(Import(name, target, line) for target, line in found)


@cache
def _empty_package(name: str) -> bool:
    """A package whose ``__init__`` holds only a docstring (and ``from __future__``): running it does nothing."""
    return modules()[name].is_package and all(
        (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        or (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        for node in tree(name).body
    )


def _is_dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    called = ast.unparse(node.func)
    return called in {"importlib.import_module", "import_module", "__import__"}


def layer_of(name: str) -> int:
    short = name.removeprefix(ROOT).removeprefix(".")
    for pattern, layer in LAYER_RULES:
        if short == pattern or (pattern and fnmatch.fnmatchcase(short, pattern)):
            return layer
    raise AssertionError(f"no layer for {name}")  # pragma: no cover - the last rule matches everything


def package_of(name: str) -> str:
    """The top-level package (``threadline.engines`` for ``threadline.engines.providers.openai``); Alembic's
    environment and revisions count apart from ``db``: Alembic loads them, no module imports them."""
    if name.startswith(f"{ROOT}.db.migrations"):
        return f"{ROOT}.db.migrations"
    return ".".join(name.split(".")[:2])


def _edges() -> dict[str, set[str]]:
    return {name: {i.target for i in imports_of(name)} for name in modules()}


def _report(title: str, lines: list[str]) -> str:
    return f"{title}:\n  " + "\n  ".join(lines)


def _stale(kind: str, known: object, found: set[object]) -> list[str]:
    assert isinstance(known, dict)
    return [
        f"{kind} {entry!r} is listed as known but no longer occurs: remove it" for entry in known if entry not in found
    ]


# ------------------------------------------------------------------------------------------------ 1. SQL

# Names from sqlalchemy that build SQL; calling one (or one of its attributes: func.count) is building a statement.
SQL_BUILDERS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "text",
        "exists",
        "func",
        "literal_column",
        "union",
        "union_all",
        "bindparam",
        "case",
        "and_",
        "or_",
        "not_",
        "tuple_",
        "values",
        "table",
        "column",
        "cast",
    }
)
# Methods that run SQL when called on a session or connection (asyncpg's included).
SQL_RUNNERS = frozenset(
    {
        "execute",
        "executemany",
        "exec_driver_sql",
        "scalar",
        "scalars",
        "stream",
        "stream_scalars",
        "get",
        "get_one",
        "refresh",
        "merge",
        "fetch",
        "fetchrow",
        "fetchval",
    }
)
SESSION_LIKE = re.compile(r"(session|conn|connection)$")


def _repository_module(module: Module) -> bool:
    short = module.short
    if short.startswith("dialects."):
        return False
    parts = short.split(".")
    return parts[-1] == "repository" or "repository" in parts[:-1]


def sql_sites(name: str) -> list[str]:
    """Each place in ``name`` that builds or runs SQL, as ``line: what``."""
    return _sql_sites(tree(name))


def _sql_sites(root: ast.Module) -> list[str]:
    builders: set[str] = set()  # the names SQL builders go by in this module
    modules_: set[str] = set()  # and sqlalchemy's own (import sqlalchemy as sa: sa.select)
    for node in ast.walk(root):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            builders.update(a.asname or a.name for a in node.names if a.name in SQL_BUILDERS)
        elif isinstance(node, ast.Import):
            modules_.update(a.asname or a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy")
    sites: list[str] = []
    for node in ast.walk(root):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = ast.unparse(func)
        if isinstance(func, ast.Name) and func.id in builders:
            sites.append(f"{node.lineno}: {func.id}(...)")
        elif any(called.startswith(f"{m}.") and set(called.split(".")) & SQL_BUILDERS for m in modules_):
            sites.append(f"{node.lineno}: {called}(...)")
        elif isinstance(func, ast.Attribute):
            receiver = func.value
            last = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
            if isinstance(receiver, ast.Name) and receiver.id in builders:
                sites.append(f"{node.lineno}: {receiver.id}.{func.attr}(...)")
            elif func.attr == "with_for_update":
                sites.append(f"{node.lineno}: .with_for_update()")
            elif func.attr in SQL_RUNNERS and SESSION_LIKE.search(last):
                sites.append(f"{node.lineno}: {ast.unparse(receiver)}.{func.attr}(...)")
    return sorted(set(sites), key=lambda site: (int(site.split(":")[0]), site))


def sql_outside_repositories() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, module in modules().items():
        short = module.short
        if _repository_module(module) or short.split(".")[0] in {"db", "models"}:
            continue
        sites = sql_sites(name)
        if sites:
            found[name] = sites
    return found


def test_sql_lives_in_repositories() -> None:
    found = sql_outside_repositories()
    new = {name: sites for name, sites in found.items() if name not in KNOWN_SQL_OUTSIDE_REPOSITORIES}
    new = {name: sites for name, sites in new.items() if name not in SQL_ALLOWED}
    problems = [f"{modules()[name].where}: {site}" for name, sites in sorted(new.items()) for site in sites]
    problems += _stale("SQL outside a repository in", KNOWN_SQL_OUTSIDE_REPOSITORIES, set(found))
    problems += _stale("allowed SQL in", SQL_ALLOWED, set(found))
    assert not problems, _report("SQL outside a repository (move it into the domain's repository.py)", problems)


def test_no_new_dynamic_imports() -> None:
    """A module loaded by a name computed at run time is an import no check can see: each is listed."""
    found: dict[str, list[int]] = defaultdict(list)
    for name in modules():
        for node in ast.walk(tree(name)):
            if _is_dynamic_import(node):
                assert isinstance(node, ast.Call)
                if not (node.args and isinstance(node.args[0], ast.Constant)):
                    found[name].append(node.lineno)
    problems = [
        f"{modules()[name].where}:{line}: importlib.import_module(<a computed name>)"
        for name, lines in sorted(found.items())
        if name not in DYNAMIC_IMPORTS_ALLOWED
        for line in lines
    ]
    problems += _stale("dynamic import in", DYNAMIC_IMPORTS_ALLOWED, set(found))
    assert not problems, _report("imports by a computed name (import the module, or list it with a reason)", problems)


# ------------------------------------------------------------------------------------------------ 2. layers


def upward_imports() -> dict[tuple[str, str], Import]:
    found: dict[tuple[str, str], Import] = {}
    for name in modules():
        for imp in imports_of(name):
            if layer_of(imp.target) < layer_of(name):
                found.setdefault((name, imp.target), imp)
    return found


def _describe(imp: Import) -> str:
    importer, target = layer_of(imp.importer), layer_of(imp.target)
    return (
        f"{modules()[imp.importer].where}:{imp.line}: {imp.importer} ({importer} {LAYER_NAMES[importer]}) imports "
        f"{imp.target} ({target} {LAYER_NAMES[target]})"
    )


def test_imports_go_down_the_layers() -> None:
    found = upward_imports()
    problems = [_describe(imp) for key, imp in sorted(found.items()) if key not in KNOWN_UPWARD_IMPORTS]
    problems += _stale("upward import", KNOWN_UPWARD_IMPORTS, set(found))
    assert not problems, _report("imports of a higher layer (ARCHITECTURE.md, Layers)", problems)


# ------------------------------------------------------------------------------------------------ 3. cycles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(root: str) -> None:
        nonlocal counter
        # Iterative, so a deep graph cannot hit the recursion limit.
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _check_cycles(
    graph: dict[str, set[str]], where: dict[tuple[str, str], str], known: dict[tuple[str, str], str]
) -> list[str]:
    """The cycles ``graph`` still has once the ``known`` back edges are left out, each with its edges; and the
    known back edges that are no longer on a cycle (removed, or no longer closing one)."""
    reduced = {a: {b for b in targets if (a, b) not in known} for a, targets in graph.items()}
    problems = []
    for members in _cycles(reduced):
        inside = set(members)
        edges = [f"{a} -> {b}  ({where[(a, b)]})" for a in members for b in sorted(reduced.get(a, set()) & inside)]
        problems.append("cycle of " + ", ".join(members) + ":\n      " + "\n      ".join(edges))
    component = {member: i for i, members in enumerate(_cycles(graph)) for member in members}
    on_a_cycle = {
        (a, b) for a, targets in graph.items() for b in targets if a in component and component[a] == component.get(b)
    }
    return problems + _stale("back edge", known, set(on_a_cycle))


def test_no_two_modules_import_each_other() -> None:
    """No cycle of modules, however long."""
    where = {
        (i.importer, i.target): f"{modules()[i.importer].where}:{i.line}" for n in modules() for i in imports_of(n)
    }
    problems = _check_cycles(_edges(), where, KNOWN_MODULE_BACK_EDGES)
    assert not problems, _report("modules that import each other", problems)


def test_no_two_packages_import_each_other() -> None:
    """No cycle of top-level packages, through their services, repositories and base modules."""
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for name in modules():
        if layer_of(name) <= FLOW:
            continue
        for imp in imports_of(name):
            a, b = package_of(name), package_of(imp.target)
            if a != b:
                graph[a].add(b)
                where.setdefault((a, b), f"{modules()[name].where}:{imp.line} imports {imp.target}")
    problems = _check_cycles(graph, where, KNOWN_PACKAGE_BACK_EDGES)
    assert not problems, _report("packages that import each other (below the surfaces and flows)", problems)


# ------------------------------------------------------------------------------------------------ 4. dialects


def dialect_reaches() -> dict[tuple[str, str], str]:
    """What a dialect must not touch: a repository (its own too), ``request.state``."""
    found: dict[tuple[str, str], str] = {}
    for name, module in modules().items():
        if not module.short.startswith("dialects"):
            continue
        for imp in imports_of(name):
            if imp.target.rpartition(".")[2] == "repository":
                found.setdefault((name, imp.target), f"{module.where}:{imp.line}: imports {imp.target}")
        for node in ast.walk(tree(name)):
            if isinstance(node, ast.Attribute) and node.attr == "state" and ast.unparse(node.value) == "request":
                found.setdefault((name, "request.state"), f"{module.where}:{node.lineno}: reads request.state")
    return found


def test_dialects_only_map() -> None:
    found = dialect_reaches()
    problems = [text for key, text in sorted(found.items()) if key not in KNOWN_DIALECT_REACHES]
    problems += _stale("dialect reach", KNOWN_DIALECT_REACHES, set(found))
    assert not problems, _report("a dialect reaching past services, flows and schemas", problems)


# ------------------------------------------------------------------------------------------------ the checker itself

_SAMPLE = """
from typing import TYPE_CHECKING
import importlib
import sqlalchemy as sa
from sqlalchemy import func, select as sel
from threadline.runs import runtime
from . import repository

if TYPE_CHECKING:
    from threadline.app import create_app

async def f(self, session, provider, q):
    from threadline.messages.service import append_message
    importlib.import_module("threadline.cli")
    await self.session.execute(sel(1))
    await session.get(X, 1)
    q.with_for_update()
    func.count()
    sa.update(X)
    await provider.stream()
    session.add(X)
"""


def test_the_checks_see_what_they_look_for() -> None:
    """On a sample module (what the lists of known violations show on the real tree, once they are empty)."""
    sample = ast.parse(_SAMPLE)
    targets = {i.target for i in _imports("threadline.tags.service", False, sample)}
    assert {"threadline.runs.runtime", "threadline.messages.service", "threadline.cli"} <= targets
    assert "threadline.tags.repository" in targets  # relative
    assert "threadline.app" not in targets  # TYPE_CHECKING
    sites = [site.split(": ", 1)[1] for site in _sql_sites(sample)]
    assert sites == [
        "sel(...)",
        "self.session.execute(...)",
        "session.get(...)",
        ".with_for_update()",
        "func.count(...)",
        "sa.update(...)",
    ]
    assert layer_of("threadline.cli") < layer_of("threadline.tags.service")  # so that import would be reported
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = {"a": {"b"}, "b": {"a"}}
    assert _check_cycles(graph, {}, {("b", "a"): ""}) == []
    assert _check_cycles(graph, {("a", "b"): "x", ("b", "a"): "y"}, {})[0].startswith("cycle of a, b")
    assert "no longer occurs" in _check_cycles({"a": {"b"}, "b": set()}, {}, {("b", "a"): ""})[0]


def test_every_module_has_a_layer_and_the_checks_see_the_tree() -> None:
    """The checks read what they should: a known import, a known SQL site and a TYPE_CHECKING import."""
    assert len(modules()) > 100
    assert layer_of("threadline.messages.endpoints") == SURFACE
    assert layer_of("threadline.dialects.feather.repository") == SURFACE
    assert layer_of("threadline.messages.repository") == REPOSITORY
    assert layer_of("threadline.engines.flows.engine") == REPOSITORY
    assert layer_of("threadline.messages.service") == SERVICE
    assert layer_of("threadline.models.message") == BASE
    targets = {i.target for i in imports_of("threadline.messages.service")}
    assert "threadline.events.service" in targets
    assert "threadline.events" not in targets  # its __init__ is a docstring: nothing runs
    assert "threadline.models" in {i.target for i in imports_of("threadline.auth.principal")}  # models/__init__ runs
    assert "threadline.metrics" not in {i.target for i in imports_of("threadline.jobs.registry")}  # TYPE_CHECKING
    assert any(site.endswith("select(...)") for site in sql_sites("threadline.messages.repository"))
