"""Leaderboards over HTTP: every metric in every window, anchored in 2009 or ending now."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from services import demo
from services.api.app import create_app
from services.api.spec import SPEC_PATH
from services.importers.common import run_import
from services.importers.jsonl import jsonl_source
from services.projector.runner import Runner
from services.queries.stats import METRICS, WINDOWS, leaderboard, window_of
from services.store.ledger import Ledger
from tests.conftest import ROOT

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]

DAYS_2009 = ("2009-08-24", "2009-08-01", "2009-03-01", "2007-06-01")
"""In the 7, 30 and 365 days before 2009-08-25, and before all of them."""
AFTER_ANCHOR = "2009-08-25T10:00:00Z"
ANCHOR = "2009-08-25"
"""The day after the last one counted, as `until` is in /v1/stats/contributions."""

SUBJECT = {  # who leads each metric in 2009, and who leads it now
    "contributions": ("Ana", "Eve"),
    "recognitions_received": ("Bob", "Eve"),
    "recognitions_given": ("Cy", "Ana"),
    "mentions": ("Ana", "Eve"),
    "introductions_made": ("Dee", "Eve"),
}
ALSO_AFTER_THE_ANCHOR = {"contributions", "recognitions_received", "recognitions_given"}


@pytest.fixture
async def live(api_url: str, projector_url: str) -> AsyncIterator[Client]:
    async with AsyncTestClient(
        app=create_app(api_url, run_projector=True, projector_url=projector_url)
    ) as client:
        yield client


class Story:
    def __init__(self, client: Client, headers: dict[str, str]) -> None:
        self.client, self.headers, self.ids = client, headers, {}
        self.position = 0

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.client.post(path, json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        written: dict[str, Any] = answer.json()
        self.position = max(self.position, *written["positions"])
        return written

    async def member(self, name: str) -> None:
        self.ids[name] = (await self.post("/v1/members", {"display_name": name}))["id"]

    async def on(self, at: str | None, what: str, **body: Any) -> str:
        refs = {
            k.rstrip("_"): self.ids[v] if isinstance(v, str) else [self.ids[n] for n in v]
            for k, v in body.items()
        }
        extra = {"kind": "kudos"} if what == "recognitions" else {}
        if what == "contributions":
            extra = {"kind": "chat_answer", "space": "kaizenblog"}
        answered = await self.post(f"/v1/{what}", {**refs, **extra, "occurred_at": at})
        return str(answered["id"])


async def tell(story: Story) -> None:
    for name in ("Ana", "Bob", "Cy", "Dee", "Eve"):
        await story.member(name)
    for day in DAYS_2009:
        at = f"{day}T12:00:00Z"
        await story.on(at, "contributions", member="Ana")
        await story.on(at, "recognitions", from_="Cy", to="Bob")
        await story.on(at, "mentions", member="Dee", mentioned="Ana")
        await story.on(at, "introductions", introducer="Dee", introduced=["Ana", "Bob"])
    await story.on(AFTER_ANCHOR, "contributions", member="Ana")
    await story.on(AFTER_ANCHOR, "recognitions", from_="Cy", to="Bob")
    # Taken back: neither counts, on any day.
    retracted = await story.on("2009-08-24T13:00:00Z", "contributions", member="Ana")
    await story.post(f"/v1/contributions/{retracted}/retraction", {})
    withdrawn = await story.on("2009-08-24T13:00:00Z", "recognitions", from_="Cy", to="Bob")
    await story.post(f"/v1/recognitions/{withdrawn}/withdrawal", {})
    now = datetime.now(UTC).isoformat()
    await story.on(now, "contributions", member="Eve")
    await story.on(now, "recognitions", from_="Ana", to="Eve")
    await story.on(now, "mentions", member="Bob", mentioned="Eve")
    await story.on(now, "introductions", introducer="Eve", introduced=["Cy", "Dee"])


def expected(metric: str, window: str, anchored: bool, ids: dict[str, str]) -> list[Any]:
    if metric == "connections":
        # Pairs by their latest moment: Ana-Bob, Ana-Dee, Bob-Dee on 2009-08-24; Bob-Cy
        # after the anchor; Eve with each of the four, and Cy-Dee, now.
        if anchored:
            ranked = {"Ana": 2, "Bob": 2, "Dee": 2}
        elif window == "all":
            ranked = {"Ana": 3, "Bob": 4, "Cy": 3, "Dee": 4, "Eve": 4}
        else:
            ranked = {"Eve": 4, "Cy": 2, "Dee": 2, "Ana": 1, "Bob": 1}
        return sorted(ranked.items(), key=lambda item: (-item[1], ids[item[0]]))
    then, now = SUBJECT[metric]
    if anchored:
        return [(then, {"7d": 1, "30d": 2, "365d": 3, "all": 4}[window])]
    if window == "all":
        return [(then, 5 if metric in ALSO_AFTER_THE_ANCHOR else 4), (now, 1)]
    return [(now, 1)]


async def test_every_metric_in_every_window_counts_only_what_stands_in_that_window(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    story = Story(live, writer)
    await tell(story)

    found, wanted = {}, {}
    for metric in METRICS:
        for window in WINDOWS:
            for anchored in (True, False):
                params = {"window": window, "min_position": story.position}
                if anchored:
                    params["until"] = ANCHOR
                answer = await live.get(f"/v1/leaderboards/{metric}", headers=reader, params=params)
                assert answer.status_code == 200, (metric, window, anchored, answer.text)
                entries = answer.json()["entries"]
                found[metric, window, anchored] = [(e["display_name"], e["value"]) for e in entries]
                wanted[metric, window, anchored] = expected(metric, window, anchored, story.ids)
                assert [e["rank"] for e in entries] == list(range(1, len(entries) + 1))

    assert found == wanted


async def test_the_default_call_is_the_30_day_window_ending_now(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    story = Story(live, writer)
    await story.member("Ana")
    for metric in METRICS:
        answer = await live.get(
            f"/v1/leaderboards/{metric}", headers=reader, params={"min_position": story.position}
        )

        assert answer.status_code == 200, answer.text
        today = datetime.now(UTC).date()
        body = answer.json()
        assert (body["window"], body["until"]) == ("30d", str(today + timedelta(days=1)))
        assert body["since"] == str(today - timedelta(days=29))


async def test_until_as_a_moment_counts_its_whole_utc_day(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    story = Story(live, writer)
    await tell(story)

    async def board(until: str) -> Any:
        params = {"window": "7d", "until": until, "min_position": story.position}
        answer = await live.get("/v1/leaderboards/contributions", headers=reader, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    midday, midnight = await board("2009-08-24T08:00:00+00:00"), await board("2009-08-24T00:00Z")
    assert (midday["since"], midday["until"]) == ("2009-08-18", "2009-08-25")
    assert [e["value"] for e in midday["entries"]] == [1]
    assert (midnight["since"], midnight["until"]) == ("2009-08-17", "2009-08-24")
    assert midnight["entries"] == []


@pytest.mark.parametrize(
    ("window", "until"),
    [
        ("30d", "last tuesday"),
        ("30d", "2009-13-01"),
        ("7d", "9999-12-31T12:00:00Z"),  # its day has no day after
        ("365d", "0001-01-02"),  # its window starts before year 1
        ("all", "2009-08-25T25:00:00Z"),
    ],
)
async def test_a_bad_until_is_a_400_problem_that_says_what_is_expected(
    client: Client, reader: dict[str, str], window: str, until: str
) -> None:
    answer = await client.get(
        "/v1/leaderboards/mentions", headers=reader, params={"window": window, "until": until}
    )

    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "until" in answer.json()["detail"]


def test_the_documented_metric_is_an_enum_of_every_leaderboard() -> None:
    document = json.loads((ROOT / SPEC_PATH).read_text())
    operation = document["paths"]["/v1/leaderboards/{metric}"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}

    assert parameters["metric"]["schema"]["enum"] == list(METRICS)
    assert parameters["window"]["schema"]["enum"] == list(WINDOWS)
    assert "until" in parameters


async def test_no_leaderboard_reads_the_ledger_on_the_request_path(
    database_url: str, projector_url: str
) -> None:
    await Runner(projector_url).run()  # the read models exist, empty
    now = datetime.now(UTC)
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as holder,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as reader,
        holder.transaction(),
    ):
        # Anything that reads `events` now waits for this lock, and gives up at once.
        await holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        await reader.execute("SET lock_timeout = '100ms'")
        for metric in METRICS:
            for window in WINDOWS:
                for until in (None, ANCHOR):
                    days = window_of(window, until, now)
                    assert await leaderboard(reader, metric, days, 10) == []


async def test_the_kaizenblog_demo_shows_windowed_leaderboards_and_its_curls_answer(
    ledger: Ledger, live: Client, reader: dict[str, str]
) -> None:
    await run_import(ledger, jsonl_source(str(ROOT / demo.EXAMPLE)))
    last = (await ledger.read_feed(after=0, limit=1000))[-1].position
    waiting = {**reader, "Ledger-Min-Position": str(last)}

    for path in demo.TRY:
        answer = await live.get(path, headers=waiting)
        assert answer.status_code == 200, (path, answer.text)
    shown = [p for p in demo.TRY if p.startswith("/v1/leaderboards/") and "until=" in p]
    assert shown, "make demo prints an anchored leaderboard"
    for metric in ("recognitions_received", "recognitions_given", "mentions", "contributions"):
        for window in ("7d", "30d", "365d"):
            answer = await live.get(
                f"/v1/leaderboards/{metric}",
                headers=waiting,
                params={"window": window, "until": "2009-09-01"},
            )
            assert answer.json()["entries"], (metric, window)
    board = (await live.get(shown[0], headers=waiting)).json()
    assert (board["since"], board["until"]) == ("2009-08-02", "2009-09-01")
    assert board["entries"] and board["entries"][0]["value"] >= 1, board
