"""Scores over HTTP: the formulas, a member's components, leaderboards, the events behind
each point; hand-computed on a five-member story; never a read of `events`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID as uuid

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from domain.scores import CONNECTOR_V1, CONNECTOR_V2_DRAFT
from services import demo
from services.importers.common import run_import
from services.importers.jsonl import jsonl_source
from services.projector.appliers import make_appliers
from services.projector.appliers.scores import ScoreApplier, score_applier
from services.projector.runner import Runner
from services.queries import scores as q
from services.queries.stats import Window
from services.store.ledger import Ledger
from tests.api.test_leaderboards import Story
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


async def tell(story: Story) -> None:
    """A introduces B and C, who talk the next day; A recognises D twice; E recognises A
    and takes it back. The graph: A-B, A-C, B-C, A-D, so A is on the B-D and C-D paths."""
    for name in ("A", "B", "C", "D", "E"):
        await story.member(name)
    await story.on("2009-08-01T10:00:00Z", "introductions", introducer="A", introduced=["B", "C"])
    await story.on("2009-08-02T10:00:00Z", "mentions", member="B", mentioned="C")
    await story.on("2009-08-03T10:00:00Z", "recognitions", from_="A", to="D")
    await story.on("2009-08-04T10:00:00Z", "recognitions", from_="A", to="D")
    taken_back = await story.on("2009-08-05T10:00:00Z", "recognitions", from_="E", to="A")
    await story.post(f"/v1/recognitions/{taken_back}/withdrawal", {})


@pytest.fixture
async def told(client: Client, writer: dict[str, str], projector_url: str) -> Story:
    story = Story(client, writer)
    await tell(story)
    assert not await Runner(projector_url).run()  # catches up, then the graph job runs
    return story


async def test_a_members_score_comes_with_its_components_as_of_a_position(
    told: Story, client: Client, reader: dict[str, str]
) -> None:
    answer = await client.get(f"/v1/members/{told.ids['A']}/scores", headers=reader)

    assert answer.status_code == 200, answer.text
    [score] = answer.json()["scores"]
    components = {c["name"]: (c["value"], c["points"]) for c in score["components"]}
    # 1 pair took (x3), reached B, C, D (x1), recognised D (x1), on 2 of the 3 paths
    # between the other three members of the graph (B-D, C-D; not B-C): 66.6667 %.
    assert components == {
        "pairs_took": (1, 3),
        "reach": (3, 3),
        "recognitions_given": (1, 1),
        "answers_drawn": (0, 0),
        "brokerage": (66.6667, 66.6667),
    }
    assert (score["name"], score["version"], score["value"]) == ("connector", 1, 73.6667)
    assert score["as_of"]["position"] == told.position
    assert score["as_of"]["brokerage_position"] == told.position


async def test_the_leaderboard_ranks_by_the_score_and_a_window_by_what_was_earned_in_it(
    told: Story, client: Client, reader: dict[str, str]
) -> None:
    async def board(**params: str) -> list[tuple[str, float]]:
        answer = await client.get("/v1/scores/connector/leaderboard", headers=reader, params=params)
        assert answer.status_code == 200, answer.text
        return [(e["display_name"], e["value"]) for e in answer.json()["entries"]]

    assert await board() == [("A", 73.6667), ("B", 1.0)]
    # Within August 2009 without brokerage: A 3 + 3 + 1, B reached C.
    assert await board(window="30d", until="2009-08-31") == [("A", 7.0), ("B", 1.0)]
    # The first three days: the introduction, the pair that took, the first recognition.
    assert await board(window="7d", until="2009-08-04") == [("A", 7.0), ("B", 1.0)]
    assert await board(window="7d", until="2009-08-03") == [("A", 5.0), ("B", 1.0)]
    assert await board(window="7d", until="2008-08-03") == []


def without_graph_job() -> tuple[Any, ...]:
    """Appliers whose graph jobs wait their minute: the runner folds, ranks nothing."""
    appliers = make_appliers()
    for applier in appliers:
        if isinstance(applier, ScoreApplier):
            applier._graph_at = time.monotonic()
    return appliers


async def test_a_leaderboard_is_the_graph_jobs_ranking_as_of_its_position_until_asked_past_it(
    told: Story,
    client: Client,
    reader: dict[str, str],
    admin: dict[str, str],
    projector_url: str,
) -> None:
    async def board(**params: Any) -> tuple[int, list[tuple[str, float]]]:
        answer = await client.get("/v1/scores/connector/leaderboard", headers=reader, params=params)
        assert answer.status_code == 200, answer.text
        found = answer.json()
        return found["as_of"]["position"], [
            (e["display_name"], e["value"]) for e in found["entries"]
        ]

    ranked_at = told.position
    await told.on(None, "mentions", member="B", mentioned="D")
    assert not await Runner(projector_url, appliers=without_graph_job()).run()

    # The kept ranking, saying which position it reflects; B's new reach not in it yet.
    assert await board() == (ranked_at, [("A", 73.6667), ("B", 1.0)])
    assert (await board(window="30d"))[0] == ranked_at
    # A window ending on a past day is the job's too, read from its boards of every day.
    august = {"window": "30d", "until": "2009-08-31"}
    assert await board(**august) == (ranked_at, [("A", 7.0), ("B", 1.0)])
    assert (await board(**august, min_position=told.position))[0] == told.position
    # Asked for the write, it ranks at read time: B reached C and D.
    assert await board(min_position=told.position) == (
        told.position,
        [("A", 73.6667), ("B", 2.0)],
    )
    # A member merged since the ranking is left out of it, not shown twice.
    merged = await client.post(
        f"/v1/members/{told.ids['A']}/merges", json={"duplicate": told.ids["B"]}, headers=admin
    )
    assert merged.status_code == 201, merged.text
    assert not await Runner(projector_url, appliers=without_graph_job()).run()
    assert await board() == (ranked_at, [("A", 73.6667)])
    # The next graph job ranks the survivor with the duplicate's history.
    assert not await Runner(projector_url).run()
    position, entries = await board()
    assert position == merged.json()["positions"][-1]
    assert [name for name, _ in entries] == ["A"]


async def test_the_events_behind_a_component_are_paged_with_a_typed_cursor(
    told: Story, client: Client, reader: dict[str, str]
) -> None:
    path = f"/v1/members/{told.ids['A']}/scores/connector/components/reach/events"
    first = await client.get(path, headers=reader, params={"limit": 3})
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["value"] == 3
    cursor = page["next_cursor"]
    second = await client.get(path, headers=reader, params={"limit": 3, "cursor": cursor})
    events = page["events"] + second.json()["events"]
    assert second.json()["next_cursor"] is None
    # The introduction reached B and C; both recognitions reached D.
    by_counterpart = sorted(told.ids[n] for n in ("B", "C", "D", "D"))
    assert sorted(e["counterpart_id"] for e in events) == by_counterpart
    assert all(e["event_id"] for e in events)
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)

    took = await client.get(path.replace("/reach/", "/pairs_took/"), headers=reader)
    [pair] = took.json()["events"]
    assert sorted(pair["pair"]) == sorted([told.ids["B"], told.ids["C"]])
    assert pair["evidence_event_id"] and pair["evidence_position"] > pair["position"]

    forged = await client.get(path, headers=reader, params={"cursor": "x"})
    assert forged.status_code == 400
    assert forged.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/scores/nosuch/leaderboard",
        "/v1/scores/connector/leaderboard?version=9",
        "/v1/members/{A}/scores?name=nosuch",
        "/v1/members/{A}/scores?name=connector&version=9",
        "/v1/members/{A}/scores/connector/components/sought_out/events",
        "/v1/members/{A}/scores/connector/components/nosuch/events",
        "/v1/members/00000000-0000-4000-8000-000000000000/scores",
    ],
)
async def test_an_unknown_score_version_component_or_member_is_a_404_problem(
    told: Story, client: Client, reader: dict[str, str], path: str
) -> None:
    answer = await client.get(path.format(A=told.ids["A"]), headers=reader)

    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_the_list_gives_every_version_with_its_formula(
    client: Client, reader: dict[str, str]
) -> None:
    answer = await client.get("/v1/scores", headers=reader)

    assert answer.status_code == 200, answer.text
    [connector] = answer.json()["scores"]
    assert (connector["name"], connector["version"], connector["status"]) == (
        "connector",
        1,
        "published",
    )
    assert {c["name"]: c["weight"] for c in connector["components"]} == {
        "pairs_took": 3.0,
        "reach": 1.0,
        "recognitions_given": 1.0,
        "answers_drawn": 1.0,
        "brokerage": 1.0,
    }


async def test_no_score_read_touches_the_ledger(
    told: Story, database_url: str, projector_url: str
) -> None:
    member = told.ids["A"]
    windows = [None, Window(first_day=datetime(2009, 8, 1, tzinfo=UTC).date(), end_day=None)]
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as holder,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as reader,
        holder.transaction(),
    ):
        # Anything that reads `events` now waits for this lock, and gives up at once.
        await holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        await reader.execute("SET lock_timeout = '100ms'")
        window = q.DEFAULT_TOOK_WINDOW
        score = await q.member_score(reader, CONNECTOR_V1, member, window)
        assert score.value > 0
        for days in windows:
            assert await q.leaderboard(reader, CONNECTOR_V1, days, window, 10)
        kept = await q.ranked(reader, CONNECTOR_V1, "all", None, window, None, 10)
        assert kept is not None and kept[1]
        for component in ("pairs_took", "reach", "recognitions_given", "brokerage"):
            await q.evidence(reader, CONNECTOR_V1, member, component, window, None, 10)


async def test_v2_built_beside_v1_from_the_same_ledger_answers_beside_it(
    client: Client, writer: dict[str, str], projector_url: str, database_url: str
) -> None:
    story = Story(client, writer)
    await tell(story)
    v2 = score_applier(CONNECTOR_V2_DRAFT)()
    assert not await Runner(projector_url, appliers=(*make_appliers(), v2)).run()

    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        window = q.DEFAULT_TOOK_WINDOW
        one = await q.member_score(conn, CONNECTOR_V1, uuid(story.ids["A"]), window)
        two = await q.member_score(conn, CONNECTOR_V2_DRAFT, uuid(story.ids["A"]), window)
        # v2: the pair that took weighs 4, and A was sought out by nobody (E took it back).
        assert (one.version, one.value) == (1, 73.6667)
        assert (two.version, two.value) == (2, 74.6667)
        assert {c.name: c.value for c in two.components}["sought_out"] == 0
        boards = {
            f.version: [
                (r.display_name, r.value) for r in await q.leaderboard(conn, f, None, window, 5)
            ]
            for f in (CONNECTOR_V1, CONNECTOR_V2_DRAFT)
        }
        # Each version's graph job ranked its own leaderboard, the same as ranked at read time.
        kept = {
            f.version: await q.ranked(conn, f, "all", None, window, story.position, 5)
            for f in (CONNECTOR_V1, CONNECTOR_V2_DRAFT)
        }
    assert {
        version: [(r.display_name, r.value) for r in found[1]] if found else None
        for version, found in kept.items()
    } == boards
    # v2 moves C and D: each was sought out once (by B's mention, by A's recognitions).
    assert boards == {
        1: [("A", 73.6667), ("B", 1.0)],
        2: [("A", 74.6667), ("B", 1.0), ("C", 0.5), ("D", 0.5)],
    }


async def test_the_demo_shows_the_recap_authors_reach_and_recognitions_given_explained(
    ledger: Ledger, client: Client, reader: dict[str, str], projector_url: str
) -> None:
    await run_import(ledger, jsonl_source(str(ROOT / demo.EXAMPLE)))
    assert not await Runner(projector_url).run()
    shown = [p for p in demo.TRY if demo.RECAP_AUTHOR in p]

    answers = [(await client.get(path, headers=reader)) for path in shown]
    assert [a.status_code for a in answers] == [200] * len(shown)
    [score] = answers[0].json()["scores"]
    components = {c["name"]: c["value"] for c in score["components"]}
    # The recap highlights the 20 people it quotes and the host (21 recognitions), and
    # mentions the host and Yann Ropars, both also recognised: 21 members reached. Every
    # other member is linked to the recap's author only: the author is on every path.
    assert components == {
        "pairs_took": 0,
        "reach": 21,
        "recognitions_given": 21,
        "answers_drawn": 0,
        "brokerage": 100.0,
    }
    explained = answers[1].json()
    assert (explained["value"], len(explained["events"])) == (21, 3)
    assert explained["next_cursor"]
    host = await client.get(
        f"/v1/stats/contributions?group_by=kind&member={demo.HOST}", headers=reader
    )
    kinds = {row["kind"]: row["count"] for row in host.json()["rows"]}
    assert kinds["chat_question"] == 5


async def test_the_demo_shows_the_hosts_questions_drawing_answers_in_connector_v1(
    ledger: Ledger, client: Client, reader: dict[str, str], projector_url: str
) -> None:
    await run_import(ledger, jsonl_source(str(ROOT / demo.EXAMPLE)))
    assert not await Runner(projector_url).run()
    [shown] = [p for p in demo.TRY if demo.HOST in p and "answers_drawn" in p]

    score = (await client.get(f"/v1/members/{demo.HOST}/scores", headers=reader)).json()
    explained = await client.get(shown, headers=reader)
    feed = (await client.get("/v1/events?limit=1000", headers=reader)).json()["events"]

    assert explained.status_code == 200, explained.text
    questions = {
        e["data"]["contribution_id"]
        for e in feed
        if e["type"] == "ContributionRecorded" and e["data"]["member_id"] == demo.HOST
    }
    answers = [
        e
        for e in feed
        if e["type"] == "ContributionRecorded"
        and e["data"].get("reply_to") in questions
        and e["data"]["member_id"] != demo.HOST
    ]
    answerers = {e["data"]["member_id"] for e in answers}
    [connector] = score["scores"]
    components = {c["name"]: c["value"] for c in connector["components"]}
    assert components["answers_drawn"] == len(answerers) > 10
    body = explained.json()
    assert body["value"] == len(answerers)
    assert {e["event_id"] for e in body["events"]} <= {e["event_id"] for e in answers}


async def test_replies_count_once_per_member_for_whom_they_answer_and_leave_when_retracted(
    client: Client, writer: dict[str, str], reader: dict[str, str], projector_url: str
) -> None:
    story = Story(client, writer)
    for name in ("Host", "B", "C"):
        await story.member(name)

    async def say(who: str, reply_to: str | None = None) -> str:
        body = {"member": story.ids[who], "kind": "chat_answer", "space": "kaizenblog"}
        written = await story.post("/v1/contributions", {**body, "reply_to": reply_to})
        return str(written["id"])

    question = await say("Host")
    await say("B", reply_to=question)
    await say("B", reply_to=question)  # twice: still one member drawn in
    retracted = await say("C", reply_to=question)
    await say("Host", reply_to=question)  # the host answering herself draws nobody
    await story.post(f"/v1/contributions/{retracted}/retraction", {})
    assert not await Runner(projector_url).run()

    score = await client.get(f"/v1/members/{story.ids['Host']}/scores", headers=reader)
    path = f"/v1/members/{story.ids['Host']}/scores/connector/components/answers_drawn/events"
    explained = (await client.get(path, headers=reader)).json()

    [connector] = score.json()["scores"]
    components = {c["name"]: c["value"] for c in connector["components"]}
    assert components["answers_drawn"] == 1
    assert explained["value"] == 1
    assert len(explained["events"]) == 2  # both of B's answers stand behind the one point
