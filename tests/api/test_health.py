"""Community health over HTTP: a small community whose CHAOSS numbers are counted by hand.

Given (all in space kaizenblog, 2025):
- Ana contributes on Jan 10, 11 and 12, and Feb 5; introduces Bob and Cy on Mar 3; is erased.
- Bob contributes on Jan 20, mentions and recognises Ana on Mar 4, returns on Jun 2
  (133 days after Jan 20: longer than the 90-day inactivity interval).
- Dee contributes on Jan 5 and is then merged into Cy, who contributes on Feb 10
  (and on Mar 15, retracted: it does not count).

By month, then: January has 5 contributions by Ana (3), Bob and Cy (Dee's): 3 new; core
(80% of 5 = 4) is Ana and one of the two others; the absence factor is 1 (Ana's 3 of 5).
February: Ana and Cy, 1 each, no one new (Cy started with Dee's January). April ends
with Bob inactive (his last contribution, Jan 20, is more than 90 days before May 1);
May ends with all three; June brings Bob back: 1 returning, Ana and Cy inactive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from bench.synthetic import fill
from domain.projections.community_health import ALL_SPACES, next_period
from services.api.app import create_app
from services.projector.runner import Runner
from services.queries import health
from services.queries.health import GROUPS
from services.store.ledger import Ledger

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


@pytest.fixture
async def live(api_url: str, projector_url: str) -> AsyncIterator[Client]:
    async with AsyncTestClient(
        app=create_app(api_url, run_projector=True, projector_url=projector_url)
    ) as client:
        yield client


class Community:
    def __init__(self, client: Client, writer: dict[str, str], admin: dict[str, str]) -> None:
        self.client, self.writer, self.admin = client, writer, admin
        self.ids: dict[str, str] = {}
        self.position = 0

    async def post(self, path: str, body: dict[str, Any], admin: bool = False) -> dict[str, Any]:
        answer = await self.client.post(
            path, json=body, headers=self.admin if admin else self.writer
        )
        assert answer.status_code == 201, answer.text
        written: dict[str, Any] = answer.json()
        self.position = max(self.position, *written["positions"])
        return written

    async def contribute(self, name: str, day: str) -> str:
        body = {"member": self.ids[name], "kind": "chat_answer", "space": "kaizenblog"}
        answer = await self.post("/v1/contributions", {**body, "occurred_at": f"{day}T12:00:00Z"})
        return str(answer["id"])

    async def tell(self) -> None:
        for name in ("Ana", "Bob", "Cy", "Dee"):
            self.ids[name] = (await self.post("/v1/members", {"display_name": name}))["id"]
        for name, day in [
            ("Ana", "2025-01-10"),
            ("Ana", "2025-01-11"),
            ("Ana", "2025-01-12"),
            ("Ana", "2025-02-05"),
            ("Bob", "2025-01-20"),
            ("Dee", "2025-01-05"),
            ("Cy", "2025-02-10"),
            ("Bob", "2025-06-02"),
        ]:
            await self.contribute(name, day)
        taken_back = await self.contribute("Cy", "2025-03-15")
        await self.post(f"/v1/contributions/{taken_back}/retraction", {})
        at = {"space": "kaizenblog", "occurred_at": "2025-03-03T12:00:00Z"}
        ids = self.ids
        await self.post(
            "/v1/introductions",
            {"introducer": ids["Ana"], "introduced": [ids["Bob"], ids["Cy"]], **at},
        )
        at["occurred_at"] = "2025-03-04T12:00:00Z"
        await self.post("/v1/mentions", {"member": ids["Bob"], "mentioned": ids["Ana"], **at})
        await self.post(
            "/v1/recognitions", {"from": ids["Bob"], "to": ids["Ana"], "kind": "kudos", **at}
        )
        await self.post(f"/v1/members/{ids['Cy']}/merges", {"duplicate": ids["Dee"]}, admin=True)
        await self.post(f"/v1/members/{ids['Ana']}/erasure", {"reason": "asked"}, admin=True)


@pytest.fixture
async def community(live: Client, writer: dict[str, str], admin: dict[str, str]) -> Community:
    told = Community(live, writer, admin)
    await told.tell()
    return told


async def get(community: Community, reader: dict[str, str], path: str, **params: Any) -> Any:
    waiting = {**reader, "Ledger-Min-Position": str(community.position)}
    answer = await community.client.get(path, headers=waiting, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


MONTHS = {"since": "2025-01-01", "until": "2025-07-01", "space": "kaizenblog"}


async def test_the_cohorts_of_a_small_community_are_the_numbers_counted_by_hand(
    community: Community, reader: dict[str, str]
) -> None:
    answer = await get(community, reader, "/v1/stats/cohorts", period="month", **MONTHS)

    assert answer["as_of_position"] >= community.position
    assert (answer["inactivity_days"], answer["occasional_max"]) == (90, 2)
    by_month = {p["period_start"]: p for p in answer["periods"]}
    assert list(by_month) == [f"2025-0{m}-01" for m in range(1, 7)]
    columns = [
        "contributions",
        "contributors",
        "new",
        "returning",
        "occasional",
        "inactive",
        "core",
        "regular",
        "casual",
        "absence_factor",
    ]
    counted = {month: tuple(p[c] for c in columns) for month, p in by_month.items()}
    assert counted == {
        "2025-01-01": (5, 3, 3, 0, 2, 0, 2, 1, 0, 1),
        "2025-02-01": (2, 2, 0, 0, 2, 0, 2, 0, 0, 1),
        "2025-03-01": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        "2025-04-01": (0, 0, 0, 0, 0, 1, 0, 0, 0, 0),
        "2025-05-01": (0, 0, 0, 0, 0, 3, 0, 0, 0, 0),
        "2025-06-01": (1, 1, 0, 1, 1, 2, 1, 0, 0, 1),
    }
    # A week with no rows of its own still counts everyone inactive since earlier weeks.
    quiet = await get(
        community,
        reader,
        "/v1/stats/cohorts",
        period="week",
        since="2025-05-19",
        until="2025-05-26",
    )
    assert [(p["period_start"], p["inactive"]) for p in quiet["periods"]] == [("2025-05-19", 3)]
    all_spaces = await get(
        community,
        reader,
        "/v1/stats/cohorts",
        period="month",
        since="2025-01-01",
        until="2025-02-01",
    )
    assert all_spaces["space"] is None
    assert all_spaces["periods"][0]["new"] == 3


async def test_each_count_lists_its_members_a_page_at_a_time(
    community: Community, reader: dict[str, str]
) -> None:
    ids = community.ids
    ana, bob, cy = ids["Ana"], ids["Bob"], ids["Cy"]
    first_of_bob_and_cy = min(bob, cy)
    expected = {
        ("2025-01-01", "contributors"): [ana, *sorted([bob, cy])],
        ("2025-01-01", "new"): [ana, *sorted([bob, cy])],
        ("2025-01-01", "core"): [ana, first_of_bob_and_cy],
        ("2025-01-01", "regular"): [max(bob, cy)],
        ("2025-01-01", "casual"): [],
        ("2025-01-01", "absence"): [ana],
        ("2025-01-01", "occasional"): sorted([bob, cy]),
        ("2025-04-01", "inactive"): [bob],
        ("2025-05-01", "inactive"): sorted([ana, bob, cy]),
        ("2025-06-01", "returning"): [bob],
        ("2025-06-01", "new"): [],
    }
    for (month, group), members in expected.items():
        listed, cursor = [], None
        for _ in range(5):
            params = {"period_start": month, "group": group, "limit": 1, "space": "kaizenblog"}
            page = await get(
                community,
                reader,
                "/v1/stats/cohorts/members",
                **params,
                **({"cursor": cursor} if cursor else {}),
            )
            listed += [m["member_id"] for m in page["members"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert listed == members, (month, group)


async def test_activity_counts_every_kind_of_work_and_the_members_behind_it(
    community: Community, reader: dict[str, str]
) -> None:
    answer = await get(community, reader, "/v1/stats/activity", period="month", **MONTHS)

    assert answer["as_of_position"] >= community.position
    rows = {
        p["period_start"]: (
            p["contributions"],
            p["introductions"],
            p["mentions"],
            p["recognitions_given"],
            p["active_members"],
            p["new_members"],
        )
        for p in answer["periods"]
    }
    assert rows == {
        "2025-01-01": (5, 0, 0, 0, 3, 3),
        "2025-02-01": (2, 0, 0, 0, 2, 0),
        "2025-03-01": (0, 1, 1, 1, 2, 0),
        "2025-04-01": (0, 0, 0, 0, 0, 0),
        "2025-05-01": (0, 0, 0, 0, 0, 0),
        "2025-06-01": (1, 0, 0, 0, 1, 0),
    }
    days = await get(
        community,
        reader,
        "/v1/stats/activity",
        period="day",
        since="2025-01-10",
        until="2025-01-13",
    )
    assert [p["contributions"] for p in days["periods"]] == [1, 1, 1]


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/v1/stats/cohorts", {"period": "day"}, "period"),
        ("/v1/stats/cohorts", {"since": "2025-02-01", "until": "2025-01-01"}, "before"),
        ("/v1/stats/cohorts", {"period": "week", "since": "2000-01-01"}, "260 weeks"),
        ("/v1/stats/activity", {"period": "day", "since": "2020-01-01"}, "366 days"),
        ("/v1/stats/activity", {"space": "Not A Space"}, "space"),
        ("/v1/stats/cohorts", {"occasional_max": "0"}, "occasional_max"),
        ("/v1/stats/cohorts/members", {"period_start": "2025-01-02", "group": "new"}, "1st"),
        (
            "/v1/stats/cohorts/members",
            {"period": "week", "period_start": "2025-01-07", "group": "new"},
            "Monday",
        ),
        ("/v1/stats/cohorts/members", {"period_start": "2025-01-01", "group": "vip"}, "group"),
        (
            "/v1/stats/cohorts/members",
            {"period_start": "2025-01-01", "group": "new", "cursor": "WzEsMiwzXQ"},
            "cursor",
        ),
    ],
)
async def test_a_bad_parameter_is_a_400_problem_that_says_which(
    client: Client, reader: dict[str, str], path: str, params: dict[str, str], says: str
) -> None:
    answer = await client.get(path, headers=reader, params=params)

    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert says in answer.text


async def test_no_health_read_touches_the_ledger_on_the_request_path(
    database_url: str, projector_url: str
) -> None:
    await Runner(projector_url).run()  # the read models exist, empty
    span = health.span_of("week", None, None, date(2025, 6, 1))
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as holder,
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as reader,
        holder.transaction(),
    ):
        # Anything that reads `events` now waits for this lock, and gives up at once.
        await holder.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        await reader.execute("SET lock_timeout = '100ms'")
        assert all(p.active_members == 0 for p in await health.activity(reader, span, None))
        assert all(p.inactive == 0 for p in await health.cohorts(reader, span, None, 2))
        for group in GROUPS:
            found = await health.cohort_members(
                reader,
                period="week",
                start=span.first,
                group=group,
                space=None,
                occasional_max=2,
                cursor=None,
                limit=10,
            )
            assert found == ([], None)
        assert await health.as_of(reader) == 0


_REFERENCE = """
    SELECT mp.member_id, mp.contributions
    FROM read.health_member_periods mp
    WHERE mp.period = %(period)s AND mp.space = %(space)s AND mp.period_start = %(start)s
      AND mp.contributions > 0 {filters}
    ORDER BY mp.contributions DESC, mp.member_id
    OFFSET %(first)s LIMIT %(count)s
"""
"""Every member of a ranked group at once, the plainest way: what the pages must add up to."""


async def test_every_group_paged_is_the_plain_query_and_its_count(
    ledger: Ledger, projector_url: str, database_url: str
) -> None:
    # A synthetic year: January's contributors are all new, later months' few; counts tie.
    await fill(ledger, 4_000, members=80, seed=11)
    await Runner(projector_url, ("community_health",)).run()
    counted = {"contributors": "contributors", "absence": "absence_factor"}
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for period, space in (("month", None), ("month", "forum"), ("week", None)):
            span = health.span_of(period, date(2025, 1, 1), date(2026, 1, 1), date(2026, 1, 1))
            points = await health.cohorts(conn, span, space, 2)
            for point in points[:: 1 if period == "month" else 6]:
                onion = health.Onion(
                    (await health._histograms(conn, span, space)).get(point.period_start, [])
                )
                for group in GROUPS:
                    listed, cursor = [], None
                    while True:
                        page, cursor = await health.cohort_members(
                            conn,
                            period=period,
                            start=point.period_start,
                            group=group,
                            space=space,
                            occasional_max=2,
                            cursor=cursor,
                            limit=7,
                        )
                        listed += [(m.member_id, m.contributions) for m in page]
                        if cursor is None:
                            break
                    where = (period, space, point.period_start, group)
                    assert len(listed) == getattr(point, counted.get(group, group)), where
                    if group == "inactive":
                        continue
                    first, stop = onion.ranks(group)
                    cur = await conn.execute(
                        _REFERENCE.format(filters=health._FILTERS[group]),
                        {
                            "period": period,
                            "space": space or ALL_SPACES,
                            "start": point.period_start,
                            "end": next_period(period, point.period_start),
                            "occasional_max": 2,
                            "first": first,
                            "count": stop - first,
                        },
                    )
                    assert listed == await cur.fetchall(), where
