"""Brokerage: betweenness centrality on the connection graph, the same numbers on every run.

Exact betweenness costs a shortest-path search from every member; past SAMPLE_SOURCES
members it is estimated from that many sources, picked with a fixed seed from the
members in id order, so a rebuild of the same graph gives the same numbers
(docs/scores.md, "Brokerage"; bench/graph.py measured the libraries).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from uuid import UUID

SAMPLE_SOURCES = 128
SEED = 15


def brokerage(
    pairs: Iterable[tuple[UUID, UUID]], sample: int = SAMPLE_SOURCES
) -> tuple[dict[UUID, float], int]:
    """Per member, the percent of shortest paths between two others that run through them;
    and how many sources were searched (all members when exact). Members at 0 are left out."""
    import igraph  # here, not at the top: the API imports this module and never computes

    pairs = [(a, b) for a, b in pairs if a != b]
    members = sorted({m for pair in pairs for m in pair})
    n = len(members)
    if n < 3:
        return {}, n
    index = {member: i for i, member in enumerate(members)}
    # Sorted as integers (cheap), so the graph, hence every sum, is built in one order.
    edges = sorted({(min(i, j), max(i, j)) for i, j in ((index[a], index[b]) for a, b in pairs)})
    graph = igraph.Graph(n=n, edges=edges, directed=False)
    if n <= sample:
        sources, scale = None, 1.0
    else:
        sources = sorted(random.Random(SEED).sample(range(n), sample))
        scale = n / sample  # each source stands for n/sample of them
    raw = graph.betweenness(directed=False, sources=sources)
    others = (n - 1) * (n - 2) / 2  # pairs of members other than the one measured
    values = {
        members[i]: round(100 * value * scale / others, 4)
        for i, value in enumerate(raw)
        if value > 0
    }
    return {m: v for m, v in values.items() if v > 0}, n if sources is None else sample
