"""The connector score's graph job: betweenness on 20,000 members and 200,000 connections.

    .venv/bin/python -m bench graph

First the whole job on a ledger of that size (bench/graph_job.py: betweenness, the
leaderboards ending today and every past end day, full and after a small append), then
betweenness alone, as below.

A random connection graph (fixed seed) of `bench.size(20_000)` members and ten times as
many connections. Each figure runs in a child process of its own, stopped at CAP_SECONDS
(a capped sample is reported at the cap, so a median at the cap reads "at least"):

- **igraph, the job**: `domain.brokerage.brokerage`, what the graph job runs (128 sources
  picked with a fixed seed, scaled up), graph building included;
- **networkx, same sample**: `betweenness_centrality(k=128, seed=…)`, the same estimate;
- **rustworkx, exact**: `betweenness_centrality` (it has no sampling; parallel on every
  core), all 20,000 sources;
- and, for equal work at a size all three finish, **exact betweenness on a tenth of the
  graph** (2,000 members, 20,000 connections) with each library.

Needs the `[bench]` extra for networkx (rustworkx and igraph are dependencies).
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as Timeout

from bench import graph_job
from bench.core import Bench, Ratio, Result
from domain.brokerage import SAMPLE_SOURCES, SEED, brokerage

Edges = list[tuple[int, int]]

CAP_SECONDS = 60.0
TARGET_SECONDS = 10.0


def graph(members: int, connections: int, seed: int = 15) -> Edges:
    rng = random.Random(seed)
    edges: set[tuple[int, int]] = set()
    while len(edges) < connections:
        a, b = rng.randrange(members), rng.randrange(members)
        if a != b:
            edges.add((min(a, b), max(a, b)))
    return sorted(edges)


def _igraph_job(members: int, connections: int) -> float:
    ids = [uuid.UUID(int=i + 1) for i in range(members)]
    pairs = [(ids[a], ids[b]) for a, b in graph(members, connections)]
    started = time.perf_counter()
    brokerage(pairs)
    return time.perf_counter() - started


def _igraph_exact(members: int, connections: int) -> float:
    import igraph

    g = igraph.Graph(n=members, edges=graph(members, connections))
    started = time.perf_counter()
    g.betweenness(directed=False)
    return time.perf_counter() - started


def _networkx(members: int, connections: int, sources: int | None) -> float:
    import networkx

    g = networkx.Graph()
    g.add_nodes_from(range(members))
    g.add_edges_from(graph(members, connections))
    started = time.perf_counter()
    networkx.betweenness_centrality(g, k=sources, seed=SEED)
    return time.perf_counter() - started


def _rustworkx_exact(members: int, connections: int) -> float:
    import rustworkx

    g = rustworkx.PyGraph()
    g.add_nodes_from(range(members))
    g.add_edges_from_no_data(graph(members, connections))
    started = time.perf_counter()
    rustworkx.betweenness_centrality(g)
    return time.perf_counter() - started


def _networkx_sampled(members: int, connections: int) -> float:
    return _networkx(members, connections, SAMPLE_SOURCES)


def _networkx_exact(members: int, connections: int) -> float:
    return _networkx(members, connections, None)


def _timed(job: Callable[[int, int], float], members: int, connections: int, cap: float) -> float:
    """Seconds in a spawned child, or `cap` when it had not finished by then."""
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=spawn)
    try:
        return pool.submit(job, members, connections).result(timeout=cap + 30)
    except Timeout:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()  # our own child: the pool has no cancel for a running job
        return cap
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def run(bench: Bench) -> list[Result | Ratio]:
    whole_job = graph_job.run(bench)
    try:
        import networkx  # noqa: F401
    except ImportError:
        bench.log("networkx is missing: .venv/bin/pip install -e '.[bench]' to compare it")
        return whole_job
    members = bench.size(20_000)
    connections = 10 * members
    cap = CAP_SECONDS * bench.scale if bench.scale < 1 else CAP_SECONDS
    small = (members // 10, connections // 10)
    jobs: dict[str, tuple[Callable[[int, int], float], int, int]] = {
        f"igraph, the job ({SAMPLE_SOURCES} sources)": (_igraph_job, members, connections),
        f"networkx, {SAMPLE_SOURCES} sources": (_networkx_sampled, members, connections),
        "rustworkx, exact": (_rustworkx_exact, members, connections),
        "igraph, exact, a tenth of the graph": (_igraph_exact, *small),
        "networkx, exact, a tenth of the graph": (_networkx_exact, *small),
        "rustworkx, exact, a tenth of the graph": (_rustworkx_exact, *small),
    }
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for repetition in range(bench.repetitions):
        for name, (job, n, m) in jobs.items():
            seconds = _timed(job, n, m, cap)
            samples[name].append(seconds)
            capped = " (capped)" if seconds >= cap else ""
            bench.log(f"repetition {repetition + 1}, {name}: {seconds:.2f} s{capped}")
    results = {
        name: Result(
            workload="graph",
            variant=f"{name}, {n:,} members / {m:,} connections",
            unit="s",
            samples=values,
            higher_is_better=False,
            note=f"capped at {cap:g} s",
        )
        for (name, values), (_, n, m) in zip(samples.items(), jobs.values(), strict=True)
    }
    sampled, peer, exact = list(results.values())[:3]
    return [
        *whole_job,
        *results.values(),
        Ratio("graph: the job, seconds", sampled, None, target=TARGET_SECONDS, at_most=True),
        Ratio("graph: networkx / igraph, same sample", peer, sampled),
        Ratio("graph: rustworkx exact / igraph sampled", exact, sampled),
    ]
