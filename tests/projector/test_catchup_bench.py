"""The catch-up benchmark runs end to end at a tiny scale and answers every figure it promises."""

from __future__ import annotations

from bench import catchup
from bench.core import Bench, Ratio, Result
from bench.peer_tree import tree_of


def test_catchup_measures_the_rate_and_the_memory_at_two_sizes(server_url: str) -> None:
    bench = Bench(server_url=server_url, repetitions=1, scale=0.01, log=lambda line: None)

    items = catchup.run(bench)

    results = [item for item in items if isinstance(item, Result)]
    ratios = {item.name: item for item in items if isinstance(item, Ratio)}
    assert [result.unit for result in results] == ["events/s", "events/s", "MiB", "MiB"]
    assert all(sample > 0 for result in results for sample in result.samples)
    assert results[1] is catchup.RECORDED and results[1].median == 21_032
    assert "community_health" in results[0].note
    rate = ratios["catch-up events/s (absolute)"]
    assert (rate.denominator, rate.target) == (None, 25_000)
    memory = next(ratio for name, ratio in ratios.items() if name.startswith("catch-up memory"))
    assert (memory.target, memory.at_most) == (1.5, True)
    beside = ratios["catch-up events/s, every projection / recorded three"]
    assert (beside.numerator, beside.denominator) == (results[0], catchup.RECORDED)


def test_a_peer_revision_catches_up_a_copy_of_the_same_ledger_with_its_own_code(
    server_url: str,
) -> None:
    bench = Bench(server_url=server_url, repetitions=1, scale=0.01, log=lambda line: None)

    with tree_of("HEAD") as tree, catchup.filled(bench, 2_000) as template:
        events, seconds, peak = catchup.measure(
            server_url, template, names=("community_health",), tree=tree
        )

    # run_in_tree refuses an answer from code outside the tree, so this ran the export.
    assert events == 2_000
    assert seconds > 0 and peak > 0
