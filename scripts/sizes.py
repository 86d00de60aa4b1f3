"""List functions over 50 lines and modules over 400 lines in engine/, app/, cli/ and api/.

Function length is counted as ast sees it: end_lineno - lineno + 1, decorators excluded.
Exit status 1 when anything is listed, so CI can run it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("engine", "app", "cli", "api")
MAX_FUNCTION_LINES = 50
MAX_MODULE_LINES = 400


def long_functions(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of each function in `path` longer than the limit."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append((prefix + child.name, child.lineno, length))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def main(root: Path) -> int:
    listed = 0
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_MODULE_LINES:
                print(f"module   {relative}: {lines} lines")
                listed += 1
            for name, lineno, length in long_functions(path):
                print(f"function {relative}:{lineno} {name}: {length} lines")
                listed += 1
    return 1 if listed else 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent))
