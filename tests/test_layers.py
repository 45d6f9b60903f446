"""Imports point down the layers, never up, and no module imports itself back in a circle.

Read with docs/architecture.md: a module's layer says what it may use. A new module
must be placed in LAYERS (by its own name or a package above it) before it can land.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    # Pure rules and folds; tests/domain/test_domain_is_pure.py keeps I/O out.
    ("domain",),
    # Infrastructure: configuration, where the database is, metrics, API keys, read-model
    # queries. Each stands on its own; the store records its timings in `metrics`.
    (
        "services.settings",
        "services.limit_settings",
        "services.embedded_db",
        "services.database",
        "services.metrics",
        "services.keys",
        "services.queries",
        "services.privacy",
    ),
    # The one way in and out of `events` and `event_tags`.
    ("services.store",),
    # The write path below HTTP: the items a tool may ask for, the state the rules need,
    # and the handler that loads, decides and appends.
    ("services.items", "services.loading", "services.intake", "services.handler"),
    # Projections; `migrate` sits with them because a schema at head includes the
    # empty live read models the projector takes over.
    # The webhook dispatcher is a job like them, over the same feed.
    ("services.projector", "services.migrate", "services.webhooks"),
    # The edges that take requests and files: HTTP and the importers.
    ("services.api", "services.importers"),
    # Entry points: the composition root and the modules that run a command or a server.
    (
        "services.bootstrap",
        "services.cli",
        "services.demo",
        "services.serve",
        "services.keys_cli",
        "services.api.app",
        "services.api.spec",
        "services.importers.cli",
        "services.projector.cli",
        "services.privacy.cli",
        "services.webhooks.cli",
    ),
)
"""Lowest first. A module may import its own layer or any below; the most specific name wins."""

ENTRY = len(LAYERS) - 1
API = "services.api"


def modules() -> dict[str, Path]:
    found = {}
    for top in ("domain", "services"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The project modules `name` imports, anywhere in the file (function bodies too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from services import bootstrap` imports the module services.bootstrap.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        yield from (target for target in targets if target in known and target != name)


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports_of(name, path, known)) for name, path in found.items()}


def layer_of(module: str) -> int | None:
    matches = [
        (len(prefix), index)
        for index, names in enumerate(LAYERS)
        for prefix in names
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in graph() if m not in ("domain", "services") and layer_of(m) is None]
    assert not unplaced, "place these modules in LAYERS:\n" + "\n".join(unplaced)


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [
        f"{source} (layer {layer_of(source)}) imports {target} (layer {layer_of(target)})"
        for source, targets in sorted(graph().items())
        for target in sorted(targets)
        if (layer_of(source) or 0) < (layer_of(target) or 0)
    ]
    assert not upward, "imports must point down the layers:\n" + "\n".join(upward)


def test_no_import_circle() -> None:
    assert not cycles(graph()), f"import circles: {cycles(graph())}"


def test_nothing_below_the_entry_points_imports_the_http_layer_but_itself() -> None:
    offences = [
        f"{source} imports {target}"
        for source, targets in sorted(graph().items())
        for target in sorted(targets)
        if (target == API or target.startswith(API + "."))
        and not (source == API or source.startswith(API + "."))
        and layer_of(source) != ENTRY
    ]
    assert not offences, "only services/api and the entry points import it:\n" + "\n".join(offences)


def test_the_checks_see_layers_circles_and_relative_imports(tmp_path: Path) -> None:
    assert layer_of("services.api.app") == ENTRY
    assert layer_of("services.api.schemas") == layer_of("services.importers.git")
    assert layer_of("services.store.ledger") == 2
    assert layer_of("domain.projections.connections") == 0
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    sample = tmp_path / "sample.py"
    sample.write_text("from . import b\nfrom .c import d\nimport services.x\n")
    known = {"pkg.b", "pkg.c", "services.x"}
    assert set(imports_of("pkg.sample", sample, known)) == known
