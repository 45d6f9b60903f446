"""The catch-up benchmark runs end to end at a tiny scale and answers every figure it promises."""

from __future__ import annotations

from bench import catchup
from bench.core import Bench, Ratio, Result


def test_catchup_measures_the_rate_and_the_memory_at_two_sizes(server_url: str) -> None:
    bench = Bench(server_url=server_url, repetitions=1, scale=0.01, log=lambda line: None)

    items = catchup.run(bench)

    results = [item for item in items if isinstance(item, Result)]
    ratios = {item.name: item for item in items if isinstance(item, Ratio)}
    assert [result.unit for result in results] == ["events/s", "MiB", "MiB"]
    assert all(sample > 0 for result in results for sample in result.samples)
    rate = ratios["catch-up events/s (absolute)"]
    assert (rate.denominator, rate.target) == (None, 25_000)
    memory = next(ratio for name, ratio in ratios.items() if name.startswith("catch-up memory"))
    assert (memory.target, memory.at_most) == (1.5, True)
