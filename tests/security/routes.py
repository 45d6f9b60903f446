"""Every operation of the API, read from the committed OpenAPI document (which a test keeps
equal to the app's), so a hostile request is replayed against each route that takes it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from litestar.testing import AsyncTestClient

from services.api.problems import MEDIA_TYPE
from services.api.spec import SPEC_PATH
from services.store.ledger import Ledger
from tests.conftest import ROOT

DOCUMENT: dict[str, Any] = json.loads((ROOT / SPEC_PATH).read_text())

# A well-formed value for each path parameter, so only the hostile part is wrong.
PATH_VALUES = {
    "metric": "contributions",
    "platform": "github",
    "handle": "ana",
    "name": "member_profiles",
}
SCORE_PATH_VALUES = {"name": "connector", "component": "reach"}
"""Under /scores/ a `name` is a score's, and a component one of its own."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    parameters: tuple[dict[str, Any], ...]
    has_body: bool
    needs_admin: bool = False
    """Its security requirement names the admin scope: a read key meets a 403 first."""

    @property
    def id(self) -> str:
        return f"{self.method} {self.template}"

    def path(self, **overrides: str) -> str:
        path = self.template
        for param in self.parameters:
            if param["in"] == "path":
                known = SCORE_PATH_VALUES if "/scores/" in self.template else PATH_VALUES
                value = overrides.get(param["name"]) or known.get(
                    param["name"], PATH_VALUES.get(param["name"], str(uuid.uuid4()))
                )
                path = path.replace("{" + param["name"] + "}", value)
        return path

    def takes(self, name: str, where: str = "query") -> bool:
        return any(p["name"] == name and p["in"] == where for p in self.parameters)


def operations() -> list[Operation]:
    return [
        Operation(
            method=method.upper(),
            template=template,
            parameters=tuple(op.get("parameters", [])),
            has_body="requestBody" in op,
            needs_admin=any(
                "admin" in scopes for r in op.get("security", []) for scopes in r.values()
            ),
        )
        for template, item in DOCUMENT["paths"].items()
        for method, op in item.items()
    ]


def is_integer(param: dict[str, Any]) -> bool:
    schema = param["schema"]
    variants = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    return any(variant.get("type") == "integer" for variant in variants)


def integer_params() -> list[tuple[Operation, str]]:
    return [
        (op, p["name"])
        for op in operations()
        for p in op.parameters
        if p["in"] == "query" and is_integer(p)
    ]


def text_params() -> list[tuple[Operation, dict[str, Any]]]:
    """Every query and path parameter (a NUL is refused whatever the type)."""
    return [(op, p) for op in operations() for p in op.parameters if p["in"] in {"query", "path"}]


def assert_problem(answer: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx problem+json (one of `statuses` when given), never a 500."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    if statuses:
        assert answer.status_code in statuses, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith(MEDIA_TYPE), answer.headers
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == answer.status_code
    return problem


async def head(ledger: Ledger) -> int:
    return await ledger.head()


Client = AsyncTestClient[Any]
