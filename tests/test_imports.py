"""The package's modules import each other in one direction only: no cycle, lazy imports (inside
functions) and type-only imports included, so each module can be read, tested and changed
from the modules below it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "digest"


def imports_of(path: Path) -> set[str]:
    """The ``digest`` modules that ``path`` imports anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from digest import render" imports digest.render; "from digest.x import y", x.
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "digest" and len(parts) > 1 and (PACKAGE / f"{parts[1]}.py").is_file():
                found.add(parts[1])
    return found - {path.stem}


def import_graph() -> dict[str, set[str]]:
    return {path.stem: imports_of(path) for path in PACKAGE.glob("*.py")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself, with the path back to it."""
    found = []
    for start in sorted(graph):
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            module, path = stack.pop()
            for imported in sorted(graph.get(module, ())):
                if imported == start:
                    found.append([*path, start])
                    stack.clear()
                    break
                if imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*path, imported]))
    return found


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = import_graph()
    assert len(graph) > 20 and graph["cli"]  # the walk found the package and its imports
    assert cycles(graph) == []


def test_the_check_finds_a_cycle() -> None:
    graph = {"day": {"pipeline", "models"}, "pipeline": {"models", "day"}, "models": set()}
    assert cycles(graph) == [["day", "pipeline", "day"], ["pipeline", "day", "pipeline"]]


def test_lazy_and_type_only_imports_count(tmp_path: Path) -> None:
    module = tmp_path / "x.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from digest.pipeline import Pipeline\n"
        "def f():\n    from digest import render\n    import digest.day\n",
        encoding="utf-8",
    )
    assert imports_of(module) == {"pipeline", "render", "day"}
