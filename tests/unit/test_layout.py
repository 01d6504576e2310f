"""The package layout keeps its promises (docs/architecture.md): the dependency rule between
the packages, no import cycle between modules, no module named after a standard-library or an
installed third-party top-level package, and every package opening with its modules listed.

Imports are read from the source (ast), so the rule also covers imports made inside functions
(lazy, for start-up speed) and under ``TYPE_CHECKING``: a dependency is a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tracktiond"

# What each top-level part of tracktiond may import of tracktiond (besides itself).
BASE = {"errors", "config"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "media": {"errors"},
    "catalog": {"media", "fingerprint", *BASE},
    "analysis": {"media", "fingerprint", *BASE},
    "tagwrite": {"media", *BASE},
    "graph": {"catalog", "media", *BASE},
    "pipeline": {
        "catalog",
        "media",
        "analysis",
        "tagwrite",
        "organise",
        "tracklists",
        "fingerprint",
        *BASE,
    },
    "service": {
        "catalog",
        "media",
        "analysis",
        "tagwrite",
        "graph",
        "pipeline",
        "organise",
        "tracklists",
        "fingerprint",
        "startup",
        *BASE,
    },
    "cli": {
        "catalog",
        "media",
        "analysis",
        "tagwrite",
        "graph",
        "pipeline",
        "organise",
        "tracklists",
        "fingerprint",
        "service",
        "startup",
        *BASE,
    },
    "organise": {"catalog", "media", *BASE},
    "tracklists": {"catalog", "media", *BASE},
    "fingerprint": {"media", *BASE},
    # The entry point: standard library only at import time; it hands over to the CLI.
    "startup": {"cli"},
    "__init__": set(),
    "__main__": {"startup"},
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported tracktiond module, dotted
    line: int
    eager: bool  # executed when the importing module is imported (not lazy, not type-only)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST, eager: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), False)
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), eager)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "tracktiond":
                        yield Import(module, alias.name, child.lineno, eager)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    name = ".".join(base + ([child.module] if child.module else []))
                else:
                    name = child.module or ""
                if name.split(".")[0] != "tracktiond":
                    continue
                for alias in child.names:
                    # `from tracktiond.media import probe` imports the module tracktiond.media.probe
                    sub = f"{name}.{alias.name}"
                    yield Import(module, sub if sub in MODULES else name, child.lineno, eager)
            else:
                yield from visit(child, eager)

    yield from visit(tree, True)


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_dependency_rule() -> None:
    assert set(ALLOWED) >= {_part(m) for m in MODULES}, "a new package needs its place in ALLOWED"
    broken = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if _part(imp.target) != _part(imp.source)
        and _part(imp.target) != "__init__"
        and _part(imp.target) not in ALLOWED[_part(imp.source)]
    ]
    assert not broken, "imports against the dependency rule:\n" + "\n".join(broken)


def test_nothing_imports_service_or_cli_but_their_users() -> None:
    users = {"service": {"service", "cli"}, "cli": {"cli", "startup"}}
    broken = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in IMPORTS
        if _part(imp.target) in users and _part(imp.source) not in users[_part(imp.target)]
    ]
    assert not broken, "\n".join(broken)


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        target = imp.target if imp.target in MODULES else imp.target.rpartition(".")[0]
        # A module importing its own package's __init__ (which may re-export that module)
        # is how packages work, not a cycle of concern.
        own_package = target == imp.source.rpartition(".")[0]
        if imp.eager and target in MODULES and target != imp.source and not own_package:
            graph[imp.source].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _taken_names() -> set[str]:
    names = set(sys.stdlib_module_names)
    names |= {n for n in packages_distributions() if not n.startswith("_")}
    return names - {"tracktiond", "tests"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_named_after_a_top_level_package(module: str) -> None:
    name = module.rpartition(".")[2]
    if name in {"tracktiond", "__main__"}:
        return
    assert name not in _taken_names(), (
        f"{module} shadows the top-level package {name!r} for any code run with its folder on "
        "sys.path; rename it"
    )


@pytest.mark.parametrize(
    "package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py" and "." in m)
)
def test_every_package_opens_with_its_modules_listed(package: str) -> None:
    path = MODULES[package]
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    own = sorted(
        m.rpartition(".")[2]
        for m in MODULES
        if m.rpartition(".")[0] == package and MODULES[m].name != "__init__.py"
    )
    missing = [m for m in own if f"``{m}``" not in doc and f"`{m}`" not in doc]
    assert not missing, f"{package}'s docstring does not name its modules {missing}"
