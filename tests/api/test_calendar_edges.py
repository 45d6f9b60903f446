"""Dates at the calendar's edges: every date and date-time query parameter the API spec
documents, set to the first or last day Python's calendar holds (alone, and beside the
other values of the operation's enumerated parameters), gets an answer or a 400 problem,
never a 500: period arithmetic there overflows, and that is the client's range to hear of.
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from services.api.spec import SPEC_PATH
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

EDGES = {
    "date": ["0001-01-01", "0001-01-08", "9999-12-01", "9999-12-27", "9999-12-31"],
    "date-time": [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-14:00",
    ],
}
EDGES["day or moment"] = EDGES["date"] + EDGES["date-time"]
TIME_NAMES = {"since", "until", "as_of", "period_start"}
"""Query parameters taken as text and read as a day or a moment (a leaderboard's `until`)."""


def _date_parameters() -> list[tuple[str, str, str, dict[str, list[str]]]]:
    """(path, parameter, which edges, the operation's enumerated query parameters) for
    every GET whose query takes a date or a date-time."""
    spec = json.loads((ROOT / SPEC_PATH).read_text())
    found = []
    for path, operations in spec["paths"].items():
        parameters = operations.get("get", {}).get("parameters", [])
        enums = {
            p["name"]: [str(v) for v in p["schema"]["enum"]]
            for p in parameters
            if p["in"] == "query" and "enum" in p.get("schema", {})
        }
        for parameter in parameters:
            schemas = [parameter.get("schema", {}), *parameter.get("schema", {}).get("oneOf", [])]
            formats = {s.get("format") for s in schemas} & EDGES.keys()
            if parameter["in"] != "query":
                continue
            if formats:
                found.append((path, parameter["name"], formats.pop(), enums))
            elif parameter["name"] in TIME_NAMES:
                found.append((path, parameter["name"], "day or moment", enums))
    return found


DATE_PARAMETERS = _date_parameters()


def test_the_spec_documents_date_parameters() -> None:
    names = {(path, name) for path, name, _, _ in DATE_PARAMETERS}
    assert ("/v1/stats/cohorts/members", "period_start") in names
    assert ("/v1/members/{member_id}/history", "until") in names
    assert ("/v1/scores/{name}/leaderboard", "until") in names


@pytest.mark.parametrize(
    ("path", "name", "format_", "enums"),
    DATE_PARAMETERS,
    ids=[f"{path} {name}" for path, name, _, _ in DATE_PARAMETERS],
)
async def test_a_date_at_the_calendars_edge_is_answered_or_refused_never_a_500(
    client: AsyncTestClient[Any],
    admin: dict[str, str],
    path: str,
    name: str,
    format_: str,
    enums: dict[str, list[str]],
) -> None:
    concrete = (
        path.replace("{member_id}", str(uuid4()))
        .replace("{introduction_id}", str(uuid4()))
        .replace("{name}", "connector")
    )
    combinations = itertools.product(*enums.values())
    choices = [dict(zip(enums, values, strict=True)) for values in combinations]
    for value, others in itertools.product(EDGES[format_], choices or [{}]):
        params = {**others, name: value}
        answer = await client.get(concrete, headers=admin, params=params)

        assert answer.status_code < 500, (params, answer.text)
        if answer.status_code == 400:
            assert answer.headers["content-type"].startswith("application/problem+json")
