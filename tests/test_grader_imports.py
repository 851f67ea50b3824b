"""grader/ is a pipeline of rooms, and its imports show it: no circles, and only downward.

Why a test: an import circle is easy to add and hard to see (two function-local imports that
point at each other import fine today and break the day one of them moves to the top), and
the map in grader/README.md is only true while every import agrees with it. The standard
library's ``ast`` reads every import statement of every module (top level, inside functions,
under ``if TYPE_CHECKING``, in ``try``), so hiding a circle in a function does not hide it here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "grader"

#: The rooms of grader/, lowest first: a module may import its own room and the rooms before
#: it, never one after it (grader/README.md, "Map"). "" is the package's top: cli, demo.
ROOMS = ["stores", "sandbox", "handout", "verdicts", "grading", "results", ""]


@dataclass(frozen=True)
class Edge:
    """One import statement of one grader module that names another grader module."""

    source: str
    target: str
    file: str  # relative to the scanned root
    line: int

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file, for every module and package of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (an attribute's module)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _imported(node: ast.AST, source: str, is_package: bool) -> list[str]:
    """Dotted names an Import/ImportFrom node loads, relative imports made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:
        anchor = source.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]


def import_edges(root: Path, package: str) -> tuple[dict[str, Path], list[Edge]]:
    """Every import between modules of ``package``: the module a name resolves to and the
    packages above it that importing it runs (their ``__init__``), except the importer's own."""
    modules = module_names(root, package)
    edges = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        rel = path.relative_to(root).as_posix()
        own = {".".join(source.split(".")[:i]) for i in range(1, source.count(".") + 2)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            targets: set[str] = set()
            for name in _imported(node, source, is_package):
                target = _resolve(name, modules)
                if target is None:
                    continue
                parts = target.split(".")
                targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
            for target in sorted(targets - own - {source}):
                edges.append(Edge(source, target, rel, node.lineno))
    return modules, edges


def find_cycles(modules: dict[str, Path], edges: list[Edge]) -> list[list[Edge]]:
    """One import circle per strongly connected group of modules, as the edges that close it."""
    graph: dict[str, list[Edge]] = {name: [] for name in modules}
    for edge in edges:
        graph[edge.source].append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm (the graph is a few dozen modules)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return [_circle(sorted(group)[0], group, graph) for group in groups]


def _circle(start: str, group: set[str], graph: dict[str, list[Edge]]) -> list[Edge]:
    """The shortest path of edges from ``start`` back to itself inside ``group`` (BFS)."""
    came: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target not in group or edge.target in came:
                    continue
                came[edge.target] = edge
                if edge.target == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, came[path[0].source])
                    return path
                following.append(edge.target)
        frontier = following
    raise AssertionError(f"no circle through {start} in {sorted(group)}")


def describe(circle: list[Edge]) -> str:
    """``a -> b -> a`` with the file and line of each import."""
    names = " -> ".join([circle[0].source, *(e.target for e in circle)])
    lines = "; ".join(f"{e.source} imports {e.target} at {e.where()}" for e in circle)
    return f"{names} ({lines})"


def room_of(module: str) -> str:
    """``grader.verdicts.trusted`` and ``grader.verdicts`` -> "verdicts"; ``grader.cli`` -> ""."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and MODULES[module].name == "__init__.py"):
        return parts[1]
    return ""


# -- the real grader/ ------------------------------------------------------------------------
MODULES, EDGES = import_edges(ROOT, PACKAGE)


def test_the_scan_sees_grader():
    """Guards the other tests against scanning nothing (a moved package, a wrong root)."""
    assert len(MODULES) > 25, sorted(MODULES)
    assert any(e.source == "grader.cli" for e in EDGES), "cli imports nothing from grader?"


def test_no_import_circles_in_grader():
    circles = find_cycles(MODULES, EDGES)
    assert not circles, "import circles in grader/:\n" + "\n".join(map(describe, circles))


def test_every_module_is_in_a_room():
    """A new module goes in the room of its step (see the map in grader/README.md)."""
    strays = [m for m in MODULES if m != PACKAGE and room_of(m) not in ROOMS]
    assert not strays, f"modules outside the rooms {ROOMS}: {strays}"
    assert not [m for m in MODULES if m.count(".") > 2], "rooms have no sub-rooms"


def test_imports_point_down_the_pipeline():
    """Each room imports only itself and the rooms below it (ROOMS, lowest first)."""
    upward = [
        f"{e.source} imports {e.target} at {e.where()}"
        for e in EDGES
        if ROOMS.index(room_of(e.target)) > ROOMS.index(room_of(e.source)) and e.target != PACKAGE
    ]
    assert not upward, "imports against the pipeline's order " + f"{ROOMS}:\n" + "\n".join(upward)


def test_room_packages_only_describe_their_room():
    """``__init__`` files import nothing but ``sys`` (the top package marks a slow optional
    import absent): importing one step never drags in its neighbours, and the sandboxed
    kernel's guard (loaded by path) stays free of grader imports."""
    for path in MODULES.values():
        if path.name == "__init__.py":
            tree = ast.parse(path.read_text())
            imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
            other = [
                n for n in imports if not (isinstance(n, ast.Import) and n.names[0].name == "sys")
            ]
            assert not other, f"{path.relative_to(ROOT)} imports something"


def test_the_collectors_old_dotted_name_still_loads():
    """Instructors' nbgrader configs may name ``grader.collect.CourseFileNameCollector``
    (grader/README.md said so before the rooms); nbgrader loads it with ``import_item``."""
    from traitlets.utils.importstring import import_item

    from grader.grading.collect import CourseFileNameCollector

    assert import_item("grader.collect.CourseFileNameCollector") is CourseFileNameCollector
    assert not [e for e in EDGES if e.target == "grader.collect"], "only for outside configs"


# -- the checker itself: it must see what it claims to see ----------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> tuple[dict[str, Path], list[Edge]]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return import_edges(tmp_path, "pkg")


@pytest.mark.parametrize(
    "back",
    [
        "from pkg.low.a import f\n",  # top level
        "def g():\n    from pkg.low.a import f\n",  # hidden in a function
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.low.a\n",
        "try:\n    from ..low import a\nexcept ImportError:\n    a = None\n",  # relative, in try
        "import pkg.low.a as a\n",
    ],
)
def test_a_circle_is_found_however_it_is_written(tmp_path, back):
    modules, edges = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "",
            "pkg/low/a.py": "import os\n\n\ndef f():\n    from pkg.high.b import h\n",
            "pkg/high/__init__.py": "",
            "pkg/high/b.py": back,
        },
    )
    circles = find_cycles(modules, edges)
    assert len(circles) == 1
    text = describe(circles[0])
    assert text.startswith("pkg.high.b -> pkg.low.a -> pkg.high.b ("), text
    assert "pkg/low/a.py:5" in text, text


def test_a_longer_circle_is_reported_as_its_path(tmp_path):
    modules, edges = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "from pkg.c import x\n",
            "pkg/c.py": "x = 1\n\n\ndef y():\n    import pkg.a\n",
            "pkg/d.py": "from pkg import a, b, c\n",  # imports all, in no circle
        },
    )
    (circle,) = find_cycles(modules, edges)
    assert describe(circle).startswith("pkg.a -> pkg.b -> pkg.c -> pkg.a ("), describe(circle)


def test_a_package_init_that_imports_its_importer_is_a_circle(tmp_path):
    """Importing ``pkg.room.a`` runs ``pkg/room/__init__.py`` first."""
    modules, edges = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/room/__init__.py": "from pkg.other import z\n",
            "pkg/room/a.py": "",
            "pkg/other.py": "from pkg.room.a import *\n",
        },
    )
    (circle,) = find_cycles(modules, edges)
    assert describe(circle).startswith("pkg.other -> pkg.room -> pkg.other"), describe(circle)


def test_no_circle_no_report(tmp_path):
    modules, edges = _package(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/a.py": "import pkg.b\n", "pkg/b.py": "import json\n"},
    )
    assert [(e.source, e.target) for e in edges] == [("pkg.a", "pkg.b")]
    assert find_cycles(modules, edges) == []


def test_grader_processes_skip_the_slow_iri_checker():
    """nbformat -> jsonschema -> rfc3987_syntax builds a lark grammar on import (1.4 s of CPU
    per grader process); the grader marks it absent before anything imports nbformat."""
    code = (
        "import sys, grader.grading.autograde, jsonschema\n"
        "assert sys.modules['rfc3987_syntax'] is None, sys.modules['rfc3987_syntax']\n"
        "assert 'lark' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
