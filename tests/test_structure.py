"""The package's own structure rules (docs/ARCHITECTURE.md): checked on the source, not by eye."""

from __future__ import annotations

import ast
from pathlib import Path

import radialog

SRC = Path(radialog.__file__).resolve().parent


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def underscore_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of each `from radialog... import` that names a private module or name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("radialog"):
            parts = node.module.split(".") + [a.name for a in node.names]
            if any(_private(p) for p in parts):
                found.append((node.lineno, node.module))
    return found


def test_the_check_sees_underscore_imports() -> None:
    source = "from radialog.x import _hidden\nfrom radialog._y import z\nfrom radialog.a import b\n"
    assert underscore_imports(source) == [(1, "radialog.x"), (2, "radialog._y")]


def test_no_module_imports_another_modules_underscore_names() -> None:
    offenders = {
        str(path.relative_to(SRC)): hits
        for path in sorted(SRC.rglob("*.py"))
        if (hits := underscore_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
