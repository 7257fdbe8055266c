"""The package's shape: no import circles, no imports hidden in functions, modules of a size a
reader can hold, folders that only import downwards, and a README module map that is the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "forwarder"
# Optional dependencies imported where they are used, with the reason.
LAZY_ALLOWED = {("forwarder.commands.demo", "moto.server")}  # the demo extra, only for `forwarder demo`
MAX_LINES = 300
# Which folders a folder may import from (besides itself): the architecture, bottom up.
LAYERS = {
    "errors": set(),
    "config": {"errors"},
    "formats": {"errors", "config"},
    "sources": {"errors", "config", "formats"},
    "transports": {"errors", "config", "formats"},
    "core": {"errors", "config", "formats", "sources", "transports"},
    "observe": {"errors", "config", "core", "sources"},
    "coordination": {"errors", "config", "core", "sources"},
    "compose": {"errors", "config", "formats", "sources", "transports", "core", "observe", "coordination"},
    "commands": {
        "errors",
        "config",
        "formats",
        "sources",
        "transports",
        "core",
        "observe",
        "coordination",
        "compose",
        "samples",
    },
    "samples": set(),
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules imported at the top level, modules imported inside functions or classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    nested: set[str] = set()

    def names(node: ast.AST) -> set[str]:
        if isinstance(node, ast.Import):
            return {alias.name for alias in node.names}
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            return {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        return set()

    for node in tree.body:
        if isinstance(node, ast.Try):  # try: import orjson / except ImportError
            for inner in node.body:
                top |= names(inner)
        top |= names(node)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for inner in ast.walk(node):
                nested |= names(inner)
    return top, nested


def internal_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        top, _ = imports(path)
        graph[name] = {target for target in top if target in known and target != name}
    return graph


def folder(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else "forwarder"


def test_no_import_circles() -> None:
    """No module imports itself through others (a circle hidden or not)."""
    graph = internal_graph()
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append([*trail[trail.index(target) :], target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_no_imports_hidden_in_functions() -> None:
    """Imports are at the top of each module (a lazy import would hide a circle), but for the
    demo's optional S3 server."""
    hidden = set()
    for name, path in modules().items():
        _, nested = imports(path)
        hidden |= {
            (name, target)
            for target in nested
            if not any(name == where and target.startswith(lazy) for where, lazy in LAZY_ALLOWED)
        }
    assert hidden == set()


def test_folders_import_only_downwards() -> None:
    """A folder imports only from the folders below it (LAYERS): sources and transports know
    nothing of the pipeline, the pipeline nothing of the commands."""
    wrong = []
    for name, targets in internal_graph().items():
        here = folder(name)
        for target in targets:
            there = folder(target)
            if there != here and here in LAYERS and there not in LAYERS[here] and there != "forwarder":
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_modules_are_short_or_say_why() -> None:
    """No module is over MAX_LINES lines unless its docstring says why it is one module."""
    long = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > MAX_LINES and "One module for one class" not in docstring:
            long.append(f"{name}: {text.count(chr(10))} lines")
    assert long == []


def readme_map() -> set[str]:
    """The modules the README's module map names, as paths under forwarder/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Module map", 1)[1].split("```", 2)[1]
    named, folder_name = set(), ""
    for line in block.splitlines():
        entry = line.split()[0] if line.strip() else ""
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            folder_name = ""
        elif entry.endswith("/") and indent == 2:
            folder_name = entry
        elif entry.endswith(".py"):
            named.add(folder_name + entry if indent == 4 else entry)
    return named


def test_readme_module_map_is_the_tree() -> None:
    """Every module is named in the README's module map, and the map names no module that is gone."""
    present = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    present.discard("__main__.py")
    named = readme_map()
    assert sorted(present - named) == [] and sorted(named - present) == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_says_what_it_is(name: str) -> None:
    """Each module starts with a docstring."""
    assert ast.get_docstring(ast.parse(modules()[name].read_text(encoding="utf-8")))
