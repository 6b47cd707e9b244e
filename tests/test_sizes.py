"""No class of the package is over 300 lines: one that grows past it does two jobs, and is
split where they part. The settings declaration is the exception: its length is its fields and
their descriptions, each setting declared once there.

(Functions have their own gate: ruff's C901, at the complexity set in pyproject.toml.)
"""

from __future__ import annotations

import ast

from tests.test_imports import PACKAGE, module_name

MAX_CLASS_LINES = 300
DECLARATIONS = {"settings.Settings"}


def class_sizes() -> dict[str, int]:
    """``module.Class`` → its lines, decorators and docstring included."""
    sizes = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                sizes[f"{module_name(path)}.{node.name}"] = (node.end_lineno or first) - first + 1
    return sizes


def test_no_class_is_over_300_lines() -> None:
    sizes = class_sizes()
    assert sizes["runs.pipeline.Pipeline"] > 100  # the walk found the package's classes
    over = {
        name: lines
        for name, lines in sizes.items()
        if lines > MAX_CLASS_LINES and name not in DECLARATIONS
    }
    assert over == {}, f"split these along a seam: {over}"


def test_the_declarations_set_aside_are_classes_of_the_package() -> None:
    assert DECLARATIONS.issubset(class_sizes())
