"""The test suite's own layout: no test module imports another (pytest would collect its tests twice over
and its module-level skips would skip the importer); shared helpers live in helpers.py and the fixtures in
conftest.py."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_no_test_module_imports_another():
    test_modules = {path.stem for path in TESTS.glob("test_*.py")}
    offenders = {
        path.name: sorted(modules)
        for path in sorted(TESTS.rglob("*.py"))
        if (modules := {m for m in imported_modules(path) if m.removeprefix("tests.") in test_modules})
    }
    assert offenders == {}
