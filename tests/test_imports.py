"""The package's modules import each other in one direction only.

- No cycle, lazy imports (inside functions) and type-only imports included, so each module can
  be read, tested and changed from the modules below it.
- The layers (see each package's docstring): the base modules at the ground; ``text``;
  ``sources``; ``llm`` and ``blog`` side by side; ``runs``; ``cli``, ``settings`` and the
  documentation generators at the top. A module imports its own package and the layers below
  it, never one above, nor a package beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "digest"

# The top-level modules every stage may use: errors, models, files, the retry policy...
BASE = {"__init__", "errors", "redact", "validation", "models", "files", "net", "options"}
LAYER = {"base": 0, "text": 1, "sources": 2, "llm": 3, "blog": 3, "runs": 4, "top": 5}


def module_name(path: Path) -> str:
    """``runs.pipeline`` for digest/runs/pipeline.py, ``cli`` for digest/cli.py, ``llm`` for
    digest/llm/__init__.py."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _resolve(dotted: str) -> str | None:
    """The module of this package that ``digest.x.y`` names, if any."""
    parts = dotted.split(".")
    if parts[0] != "digest" or len(parts) < 2:
        return None
    for end in range(len(parts), 1, -1):
        candidate = PACKAGE.joinpath(*parts[1:end])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts[1:end])
    return None


def imports_of(path: Path) -> set[str]:
    """The ``digest`` modules that ``path`` imports anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from digest.blog import render" imports digest.blog.render; "from digest.x
            # import y", x (y being a name in it).
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            module = _resolve(name)
            if module is not None:
                found.add(module)
    if path.is_relative_to(PACKAGE):
        found.discard(module_name(path))
    # "from digest.runs.pipeline import X" also names the package digest.runs on the way.
    return {module for module in found if module not in _packages_of(found)}


def _packages_of(modules: set[str]) -> set[str]:
    return {module.rsplit(".", 1)[0] for module in modules if "." in module}


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> tuple[str, int]:
    """The module's group (its package, or base or top) and that group's layer."""
    group = module.split(".")[0]
    if group in LAYER:
        return group, LAYER[group]
    return ("base", 0) if group in BASE else ("top", LAYER["top"])


def layering_problems(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imported in sorted(graph.items()):
        group, layer = layer_of(module)
        for other in sorted(imported):
            other_group, other_layer = layer_of(other)
            if other_group == group:
                continue
            if other_layer > layer:
                problems.append(f"{module} (layer {layer}) imports {other}, above it")
            elif other_layer == layer:
                problems.append(f"{module} imports {other}, a package beside it")
    return problems


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
    assert len(graph) > 30 and graph["cli"]  # the walk found the package and its imports
    assert cycles(graph) == []


def test_the_check_finds_a_cycle() -> None:
    graph = {"day": {"pipeline", "models"}, "pipeline": {"models", "day"}, "models": set()}
    assert cycles(graph) == [["day", "pipeline", "day"], ["pipeline", "day", "pipeline"]]


def test_no_module_imports_a_layer_above_it_or_a_package_beside_it() -> None:
    graph = import_graph()
    assert {layer_of(module)[0] for module in graph} == set(LAYER) | {"top"}
    assert layering_problems(graph) == []


def test_the_layering_check_finds_an_import_upwards_and_sideways() -> None:
    graph = {
        "models": {"runs.pipeline"},  # base importing runs
        "llm.batch": {"blog.store", "errors"},  # llm beside blog
        "runs.day": {"blog.render", "llm.summarize", "runs.pipeline"},  # all fine
        "cli": {"runs.day"},
    }
    assert layering_problems(graph) == [
        "llm.batch imports blog.store, a package beside it",
        "models (layer 0) imports runs.pipeline, above it",
    ]


def test_lazy_and_type_only_imports_count(tmp_path: Path) -> None:
    module = tmp_path / "x.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from digest.runs.pipeline import Pipeline\n"
        "def f():\n    from digest.blog import render\n    import digest.runs.day\n",
        encoding="utf-8",
    )
    assert imports_of(module) == {"runs.pipeline", "blog.render", "runs.day"}
