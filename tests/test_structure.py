# Copyright 2026 The diffusers-matte authors. Licensed under the Apache License, Version 2.0.
"""The package's shape: no import circle between its modules, and modules short enough to read in one sitting."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "diffusers_matte"
MAX_LINES = 700


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set) -> set:
    """The package modules `path` imports, at the top or inside functions (both make a design dependency)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _graph() -> dict:
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def _find_cycle(graph: dict):
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, stack + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [node])):
            return cycle
    return None


def test_the_walk_sees_the_imports():
    graph = _graph()
    assert "diffusers_matte.cli.common" in graph["diffusers_matte.cli.predict"]
    assert "diffusers_matte.evaluation.protocols" in graph["diffusers_matte.evaluation.harness"]


def test_the_walk_finds_a_circle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_between_package_modules():
    """A package's `__init__` re-exporting its submodules is not a circle; submodules importing each other is."""
    graph = _graph()
    # a submodule may import names its parent package re-exports only by their own module; drop parent edges
    graph = {m: {t for t in deps if not m.startswith(t + ".")} for m, deps in graph.items()}
    assert _find_cycle(graph) is None


def test_no_module_over_the_length_limit():
    long = {
        _module_name(p): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES and "assets" not in p.parts
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
