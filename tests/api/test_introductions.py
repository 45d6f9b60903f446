"""Introductions over HTTP: pairs and statuses at `as_of`, a member's lists, the profile.

The story (2009, the window 30 days unless asked otherwise): Dee introduces Ana, Bob and
Cy on Jan 10; Bob mentions Ana on Jan 13 (took), Cy replies on Jan 12 to a post Ana made
before the introduction (took), Bob and Cy never meet (lapsed). Eve introduces Cy and Dee
on Jan 11 and they never meet either (lapsed). Dee's introduction of Eve and Ana today
is still pending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from domain.projections import introductions
from services.api.app import create_app
from services.queries import introductions as qi

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
WINDOW = timedelta(days=30)


@pytest.fixture
async def live(api_url: str, projector_url: str) -> AsyncIterator[Client]:
    async with AsyncTestClient(
        app=create_app(api_url, run_projector=True, projector_url=projector_url)
    ) as client:
        yield client


class Story:
    def __init__(self, client: Client, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers
        self.ids: dict[str, str] = {}
        self.positions: dict[str, int] = {}
        self.event_ids: dict[str, str] = {}
        self.position = 0

    async def post(self, name: str, path: str, body: dict[str, Any]) -> str:
        answer = await self.client.post(path, json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        written = answer.json()
        self.position = written["positions"][-1]
        self.ids[name] = written["id"]
        self.positions[name] = written["positions"][-1]
        self.event_ids[name] = written["event_ids"][-1]
        return str(written["id"])

    async def get(self, path: str, **params: Any) -> Any:
        params["min_position"] = self.position
        answer = await self.client.get(path, params=params, headers=self.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()


async def tell(client: Client, writer: dict[str, str]) -> Story:
    story = Story(client, writer)
    for name in ("Ana", "Bob", "Cy", "Dee", "Eve"):
        await story.post(name, "/v1/members", {"display_name": name})
    ids = story.ids

    def at(day: int) -> str:
        return f"2009-01-{day:02d}T12:00:00Z"

    post = {"kind": "article", "space": "kaizenblog", "occurred_at": at(1)}
    await story.post("post", "/v1/contributions", {"member": ids["Ana"], **post})
    await story.post(
        "intro",
        "/v1/introductions",
        {
            "introducer": ids["Dee"],
            "introduced": [ids["Ana"], ids["Bob"], ids["Cy"]],
            "occurred_at": at(10),
        },
    )
    await story.post(
        "other",
        "/v1/introductions",
        {"introducer": ids["Eve"], "introduced": [ids["Cy"], ids["Dee"]], "occurred_at": at(11)},
    )
    reply = {"kind": "chat_answer", "space": "kaizenblog", "reply_to": story.ids["post"]}
    await story.post(
        "reply", "/v1/contributions", {"member": ids["Cy"], **reply, "occurred_at": at(12)}
    )
    await story.post(
        "mention",
        "/v1/mentions",
        {"member": ids["Bob"], "mentioned": ids["Ana"], "occurred_at": at(13)},
    )
    await story.post(
        "today",
        "/v1/introductions",
        {"introducer": ids["Dee"], "introduced": [ids["Eve"], ids["Ana"]]},
    )
    return story


def pair_of(answer: dict[str, Any], story: Story, a: str, b: str) -> dict[str, Any]:
    wanted = sorted((story.ids[a], story.ids[b]))
    (found,) = [
        p for p in answer["introduction"]["pairs"] if [p["member_a"], p["member_b"]] == wanted
    ]
    return dict(found)


async def test_an_introduction_answers_each_pairs_status_and_evidence_as_of_a_moment(
    live: Client, writer: dict[str, str]
) -> None:
    story = await tell(live, writer)
    answer = await story.get(
        f"/v1/introductions/{story.ids['intro']}", as_of="2009-03-01T00:00:00Z"
    )

    assert answer["as_of_position"] == story.position and answer["window_days"] == 30
    intro = answer["introduction"]
    assert (intro["status"], intro["pairs_total"], intro["pairs_took"]) == ("took", 3, 2)
    assert intro["introducer_id"] == story.ids["Dee"]
    assert (intro["position"], intro["event_id"]) == (
        story.positions["intro"],
        story.event_ids["intro"],
    )
    mention = pair_of(answer, story, "Ana", "Bob")
    assert mention["status"] == "took"
    assert mention["evidence"] == {
        "kind": "mention",
        "id": story.ids["mention"],
        "event_id": story.event_ids["mention"],
        "position": story.positions["mention"],
        "occurred_at": "2009-01-13T12:00:00Z",
    }
    reply = pair_of(answer, story, "Ana", "Cy")
    assert (reply["status"], reply["evidence"]["kind"], reply["evidence"]["id"]) == (
        "took",
        "reply",
        story.ids["reply"],
    )
    assert pair_of(answer, story, "Bob", "Cy") == {
        **pair_of(answer, story, "Bob", "Cy"),
        "status": "lapsed",
        "evidence": None,
    }


async def test_as_of_and_window_days_change_the_statuses_and_nothing_else(
    live: Client, writer: dict[str, str]
) -> None:
    story = await tell(live, writer)
    path = f"/v1/introductions/{story.ids['intro']}"

    early = await story.get(path, as_of="2009-01-12T18:00:00")  # no offset: UTC
    assert early["as_of"].startswith("2009-01-12T18:00:00")
    assert early["introduction"]["status"] == "took"
    assert pair_of(early, story, "Ana", "Bob") | {"member_a": 0, "member_b": 0} == {
        "member_a": 0,
        "member_b": 0,
        "status": "pending",
        "evidence": None,  # the mention of Jan 13 is after as_of
    }
    short = await story.get(path, as_of="2009-03-01T00:00:00Z", window_days=2)
    assert short["window_days"] == 2
    assert pair_of(short, story, "Ana", "Bob")["status"] == "lapsed"
    assert pair_of(short, story, "Ana", "Cy")["status"] == "took"


async def test_a_members_introductions_by_role_newest_first_in_pages(
    live: Client, writer: dict[str, str]
) -> None:
    story = await tell(live, writer)
    ids = story.ids
    made = await story.get(f"/v1/members/{ids['Dee']}/introductions")
    assert [(i["id"], i["status"]) for i in made["introductions"]] == [
        (ids["today"], "pending"),
        (ids["intro"], "took"),
    ]
    assert made["role"] == "introducer" and made["next_cursor"] is None

    first = await story.get(f"/v1/members/{ids['Cy']}/introductions", role="introduced", limit=1)
    rest = await story.get(
        f"/v1/members/{ids['Cy']}/introductions",
        role="introduced",
        limit=1,
        cursor=first["next_cursor"],
    )
    assert [i["id"] for i in first["introductions"] + rest["introductions"]] == [
        ids["other"],
        ids["intro"],
    ]
    assert first["introductions"][0]["status"] == "lapsed" and rest["next_cursor"] is None

    # As of 2009, today's introduction had not been made.
    then = await story.get(f"/v1/members/{ids['Dee']}/introductions", as_of="2009-06-01T00:00:00Z")
    assert [i["id"] for i in then["introductions"]] == [ids["intro"]]


async def test_the_profile_counts_introductions_by_status_and_the_take_rate(
    live: Client, writer: dict[str, str]
) -> None:
    story = await tell(live, writer)
    dee = await story.get(f"/v1/members/{story.ids['Dee']}")
    eve = await story.get(f"/v1/members/{story.ids['Eve']}")
    ana = await story.get(f"/v1/members/{story.ids['Ana']}")

    counts = ("made", "took", "lapsed", "pending", "take_rate")
    assert [dee["introduction_outcomes"][k] for k in counts] == [2, 1, 0, 1, 1.0]
    assert [eve["introduction_outcomes"][k] for k in counts] == [1, 0, 1, 0, 0.0]
    assert [ana["introduction_outcomes"][k] for k in counts] == [0, 0, 0, 0, None]
    assert dee["introduction_outcomes"]["as_of_position"] == story.position


async def test_bad_queries_are_400_problems_and_unknown_ones_404(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    story = await tell(live, writer)
    member, intro = story.ids["Dee"], story.ids["intro"]
    for path, params in (
        (f"/v1/introductions/{intro}", {"as_of": "yesterday"}),
        (f"/v1/introductions/{intro}", {"window_days": 0}),
        (f"/v1/members/{member}/introductions", {"role": "mentor"}),
        (f"/v1/members/{member}/introductions", {"as_of": "2009-13-01"}),
        (f"/v1/members/{member}/introductions", {"cursor": "WzEsMl0"}),
        (f"/v1/members/{member}/introductions", {"cursor": "not a cursor"}),
    ):
        answer = await live.get(path, params=params, headers=reader)
        assert answer.status_code == 400, (path, params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    for path in (f"/v1/introductions/{member}", f"/v1/members/{intro}/introductions"):
        answer = await live.get(path, headers=reader)
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_a_merge_moves_the_duplicates_introductions_to_the_survivor(
    live: Client, writer: dict[str, str], admin: dict[str, str]
) -> None:
    story = await tell(live, writer)
    ids = story.ids
    merged = await live.post(
        f"/v1/members/{ids['Dee']}/merges", json={"duplicate": ids["Eve"]}, headers=admin
    )
    assert merged.status_code == 201, merged.text
    story.position = merged.json()["positions"][-1]

    dee = await story.get(f"/v1/members/{ids['Dee']}/introductions")
    assert [i["id"] for i in dee["introductions"]] == [ids["today"], ids["other"], ids["intro"]]
    # Eve introduced Cy and Dee: now Dee introduced Cy and herself, a pair of its own.
    other = await story.get(f"/v1/introductions/{ids['other']}")
    assert other["introduction"]["introducer_id"] == ids["Dee"]
    # "today" introduced Eve (now Dee, its introducer) and Ana: the pair stays.
    today = await story.get(f"/v1/introductions/{ids['today']}")
    assert today["introduction"]["introduced_ids"] == [ids["Dee"], ids["Ana"]]
    eve = await story.get(f"/v1/members/{ids['Eve']}/introductions")
    assert eve["introductions"] == []


async def test_no_introduction_read_touches_the_ledger(
    live: Client, writer: dict[str, str], database_url: str
) -> None:
    story = await tell(live, writer)
    await story.get(f"/v1/introductions/{story.ids['intro']}")  # caught up
    as_of = datetime(2009, 3, 1, tzinfo=UTC)
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as holder,
        await psycopg.AsyncConnection.connect(database_url) as reader,
        holder.transaction(),
    ):
        # Anything that reads `events` now waits for this lock, and gives up at once.
        await holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        await reader.execute("SET lock_timeout = '100ms'")
        await reader.commit()
        async with reader.transaction():
            at = await qi.snapshot(reader, as_of, WINDOW)
            found = await qi.introduction(reader, UUID(story.ids["intro"]), as_of, WINDOW)
            page, _ = await qi.of_member(
                reader, UUID(story.ids["Cy"]), "introduced", as_of, WINDOW, 10, None
            )
            outcomes = await qi.outcomes(reader, UUID(story.ids["Dee"]), at, WINDOW)
            known = await qi.member_known(reader, UUID(story.ids["Dee"]))
    assert at.as_of_position == story.position
    assert found is not None and found.status == "took"
    assert [i.status for i in page] == ["lapsed", "took"]
    assert (outcomes.made, outcomes.took, known) == (1, 1, True)


async def test_an_erased_introducers_introductions_stay_counted_and_hold_no_personal_data(
    live: Client, writer: dict[str, str], admin: dict[str, str]
) -> None:
    story = await tell(live, writer)
    ids = story.ids
    erased = await live.post(
        f"/v1/members/{ids['Dee']}/erasure", json={"reason": "asked"}, headers=admin
    )
    assert erased.status_code == 201, erased.text
    story.position = erased.json()["positions"][-1]

    dee = await story.get(f"/v1/members/{ids['Dee']}")
    assert dee["forgotten"] is True
    assert (dee["introduction_outcomes"]["made"], dee["introduction_outcomes"]["took"]) == (2, 1)
    answer = await story.get(f"/v1/introductions/{ids['intro']}")
    assert answer["introduction"]["status"] == "took"
    assert "Dee" not in str(answer) and "Ana" not in str(answer)


async def test_the_sql_status_rule_is_the_domains_at_every_boundary(database_url: str) -> None:
    t = datetime(2009, 1, 10, 12, tzinfo=UTC)
    second = timedelta(seconds=1)
    moments = [t - second, t, t + second, t + WINDOW - second, t + WINDOW, t + WINDOW + second]
    cases = [(e, a) for e in [None, *moments] for a in moments]
    query = (
        f"SELECT {qi.PAIR_STATUS} FROM (SELECT %(t)s::timestamptz AS introduced_at, "
        "%(e)s::timestamptz AS evidence_at) AS p"
    )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for evidence_at, as_of in cases:
            params = {"t": t, "e": evidence_at, "as_of": as_of, "window": WINDOW}
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
            expected = introductions.status(t, evidence_at, as_of, WINDOW)
            assert row is not None and row[0] == expected, (evidence_at, as_of)
