"""The committed OpenAPI document is the one the app serves, and it is complete."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services.api.spec import SPEC_PATH, render
from services.queries.stats import METRICS
from tests.appliers import APPLIERS
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


def test_the_committed_spec_matches_the_app() -> None:
    committed = (ROOT / SPEC_PATH).read_text()

    assert committed == render(), (
        "api-spec/openapi.json is stale: run `.venv/bin/community-ledger api-spec` and commit it"
    )


async def test_the_served_document_is_the_committed_one(client: AsyncTestClient[Any]) -> None:
    served = (await client.get("/schema/openapi.json")).json()

    assert served == json.loads((ROOT / SPEC_PATH).read_text())


def test_every_operation_has_an_id_a_summary_and_documents_its_problems() -> None:
    document = json.loads((ROOT / SPEC_PATH).read_text())
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]

    assert len(operations) >= 25
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("operationId"), where
        assert operation.get("summary"), where
        assert "application/problem+json" in operation["responses"]["400"]["content"], where
        if "requestBody" in operation:
            examples = operation["requestBody"]["content"]["application/json"].get("examples")
            assert examples, f"{where} has no request example"
        answers = [r for status, r in operation["responses"].items() if status.startswith("2")]
        # A 204 (DeleteWebhook) has no content to show.
        contents = [media for r in answers for media in r.get("content", {}).values()]
        assert all(media.get("examples") for media in contents), f"{where} has no response example"


def test_path_parameters_from_a_closed_set_are_enums_so_a_fuzzer_reaches_each_value() -> None:
    paths = json.loads((ROOT / SPEC_PATH).read_text())["paths"]

    def enum(path: str, method: str, name: str) -> list[str]:
        parameters = {p["name"]: p for p in paths[path][method]["parameters"]}
        values: list[str] = parameters[name]["schema"]["enum"]
        return values

    assert enum("/v1/leaderboards/{metric}", "get", "metric") == list(METRICS)
    assert enum("/v1/projections/{name}/rebuild", "post", "name") == [a.name for a in APPLIERS]
