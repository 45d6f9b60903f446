"""The append benchmarks run end to end at a tiny scale and answer every figure they promise.

No timings are asserted: only that each variant measured something and each ratio exists.
The peer's figures are expected only where the `[bench]` extra is installed.
"""

from __future__ import annotations

import psycopg

from bench import appends, batches, peers, stats
from bench.core import Bench, Ratio, Result
from bench.peer_tree import append_in_tree, tree_of

PEER = [peers.PEER] if peers.PEER_INSTALLED else []


def tiny_bench(server_url: str) -> Bench:
    return Bench(server_url=server_url, repetitions=1, scale=0.01, log=lambda line: None)


def split(items: list[Result | Ratio]) -> tuple[dict[str, Result], dict[str, Ratio]]:
    results = {item.variant: item for item in items if isinstance(item, Result)}
    ratios = {item.name: item for item in items if isinstance(item, Ratio)}
    return results, ratios


def test_appends_measure_ours_the_peer_and_the_ceiling_with_1_and_8_writers(
    server_url: str,
) -> None:
    results, ratios = split(appends.run(tiny_bench(server_url)))

    expected = [
        f"{variant}, {writers}"
        for writers in ("1 writer", "8 writers")
        for variant in ("ours", *PEER, "ceiling")
    ]
    assert sorted(results) == sorted(expected)
    assert all(r.unit == "events/s" and r.median > 0 for r in results.values())
    expected_ratios = [
        f"appends, {writers}: ours / {other}"
        for writers in ("1 writer", "8 writers")
        for other in (*PEER, "ceiling")
    ]
    assert sorted(ratios) == sorted(expected_ratios)
    assert all(r.value > 0 for r in ratios.values())


def test_batches_measure_ours_the_peer_executemany_and_copy(server_url: str) -> None:
    results, ratios = split(batches.run(tiny_bench(server_url)))

    assert sorted(results) == sorted(["ours", batches.IN_CLEAR, *PEER, "executemany", "COPY"])
    assert all(r.unit == "events/s" and r.median > 0 for r in results.values())
    assert sorted(ratios) == sorted(
        f"batches: ours / {other}" for other in ("executemany", "COPY", batches.IN_CLEAR, *PEER)
    )
    assert ratios["batches: ours / executemany"].target == 0.8
    assert ratios[f"batches: ours / {batches.IN_CLEAR}"].target == 0.85
    assert all(r.value > 0 for r in ratios.values())


def test_a_peer_revision_appends_the_batches_into_a_database_it_migrated_itself(
    empty_database_url: str,
) -> None:
    with tree_of("HEAD") as tree:
        appended = append_in_tree(tree, empty_database_url, total=2_000, size=1_000)

    # append_in_tree refuses an answer from code outside the tree, so this ran the export.
    assert appended.events == 2_000
    assert appended.seconds > 0 and appended.cpu > 0
    assert appended.backend is None or appended.backend >= 0
    with psycopg.connect(empty_database_url) as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert stored == (2_000, 2_000)


def test_statistics_are_timed_from_the_day_totals_and_from_the_members_rows(
    server_url: str,
) -> None:
    figures = stats.measure(tiny_bench(server_url), events=3_000, calls=2)

    assert sorted(figures) == sorted(
        (question, side) for question in stats.QUESTIONS for side in stats.SIDES
    )
    assert all(len(runs) == 1 and 0 < p50 <= p99 for runs in figures.values() for p50, p99 in runs)
