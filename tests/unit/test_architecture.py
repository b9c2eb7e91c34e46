"""The import graph of domain/, contracts/ and services/: no cycles, nothing upward.

Read from the source with ``ast`` (nothing is imported), so the test runs in
milliseconds and also sees imports inside functions and under TYPE_CHECKING. The
layers, from the bottom:

- ``domain`` imports nothing of ``contracts`` or ``services``;
- ``contracts`` imports nothing of ``services``;
- ``services.settings`` imports no other ``services`` module;
- ``services.infrastructure`` imports none of the processes nor the composition root;
- the processes, ``services.api``, ``services.dispatcher`` and ``services.relay``,
  import nothing of each other nor of ``services.cli``; only ``services.cli``, the
  WSGI entry point (``services.api.wsgi``) and the composition root
  (``services.bootstrap``) may import across processes, and only the entry points
  import the composition root.

A failure lists every offending import as ``importer (file:line) -> imported: rule``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "contracts", "services")
PROCESSES = ("services.api", "services.dispatcher", "services.relay")
ENTRY_POINTS = ("services.cli", "services.api.wsgi")
MAY_IMPORT_ACROSS_PROCESSES = (*ENTRY_POINTS, "services.bootstrap")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        where = f"{self.path.relative_to(ROOT)}:{self.line}"
        return f"{self.importer} ({where}) -> {self.imported}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """Our modules that ``module`` imports; ``from package import module`` names the
    module, ``from module import name`` the module."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            names = [f"{base}.{alias.name}" for alias in node.names]
            names = [name if name in modules else base for name in names]
        else:
            continue
        for name in dict.fromkeys(names):
            if name in modules and name != module:
                yield Import(module, name, path, node.lineno)


def the_import_graph() -> list[Import]:
    modules = our_modules()
    return [found for name, path in modules.items() for found in imports_of(name, path, modules)]


def broken_rule(importer: str, imported: str) -> str | None:
    """Which layering rule this import breaks, if any."""
    if within(importer, "domain") and not within(imported, "domain"):
        return "domain imports only domain"
    if within(importer, "contracts") and within(imported, "services"):
        return "contracts import nothing of services"
    if importer == "services.settings" and within(imported, "services"):
        return "services.settings imports no other services module"
    if within(importer, "services.infrastructure") and any(
        within(imported, upper) for upper in (*PROCESSES, "services.cli", "services.bootstrap")
    ):
        return "services.infrastructure imports no process and not the composition root"
    if within(imported, "services.bootstrap") and not any(
        within(importer, entry) for entry in ENTRY_POINTS
    ):
        return "only the entry points (services.cli, services.api.wsgi) import the composition root"
    if any(within(importer, allowed) for allowed in MAY_IMPORT_ACROSS_PROCESSES):
        return None
    for process in PROCESSES:
        if within(importer, process):
            for other in (*PROCESSES, "services.cli"):
                if other != process and within(imported, other):
                    return f"{process} imports nothing of {other}"
    return None


def cycles(graph: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    edges: dict[str, set[str]] = {}
    for found in graph:
        edges.setdefault(found.importer, set()).add(found.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(edges.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_the_graph_is_read():
    graph = the_import_graph()
    pairs = {(found.importer, found.imported) for found in graph}
    assert ("services.bootstrap", "domain.application") in pairs
    assert ("services.infrastructure.catalog", "services.infrastructure.storage") in pairs


def test_no_module_imports_upward_or_across_processes():
    violations = [
        f"{found}: {rule}"
        for found in the_import_graph()
        if (rule := broken_rule(found.importer, found.imported))
    ]
    if violations:
        pytest.fail("imports against the layers:\n  " + "\n  ".join(violations), pytrace=False)


def test_no_import_cycles():
    graph = the_import_graph()
    found = []
    for component in cycles(graph):
        members = set(component)
        inside = [str(i) for i in graph if i.importer in members and i.imported in members]
        found.append(" <-> ".join(component) + "\n    " + "\n    ".join(inside))
    if found:
        pytest.fail("modules importing each other:\n  " + "\n  ".join(found), pytrace=False)


def test_the_rules_catch_what_they_should():
    assert broken_rule("domain.application", "contracts.audit")
    assert broken_rule("contracts.public", "services.settings")
    assert broken_rule("services.settings", "services.infrastructure.storage")
    assert broken_rule("services.infrastructure.catalog", "services.bootstrap")
    assert broken_rule("services.dispatcher.consumer", "services.relay.relay")
    assert broken_rule("services.api.app", "services.cli.main")
    assert broken_rule("services.api.context", "services.bootstrap")
    assert not broken_rule("services.bootstrap", "services.dispatcher.payloads")
    assert not broken_rule("services.cli.main", "services.relay.relay")
    assert not broken_rule("services.api.wsgi", "services.bootstrap")
    assert not broken_rule("services.api.admin", "services.api.problems")
    assert cycles(
        [Import("a", "b", ROOT, 1), Import("b", "c", ROOT, 1), Import("c", "a", ROOT, 1)]
    ) == [["a", "b", "c"]]
