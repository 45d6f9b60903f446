"""The write vocabulary lives below the API: only entry points above it import `services.api`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"cli.py", "serve.py", "keys_cli.py", "demo.py", "bootstrap.py"}
"""The commands that start the API (or read its settings) sit above it."""


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def test_nothing_below_the_api_imports_it() -> None:
    below = [
        path
        for folder in ("domain", "services")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not path.is_relative_to(ROOT / "services" / "api")
        and not (path.parent == ROOT / "services" and path.name in ENTRY_POINTS)
    ]
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported(path) if name.split(".")[:2] == ["services", "api"]
        )
        for path in below
    }

    assert {path: names for path, names in offenders.items() if names} == {}
    assert ROOT / "services" / "items.py" in below and ROOT / "services" / "intake.py" in below
