"""What the ranking of past leaderboards keeps between runs (services/projector/appliers/
past_boards.py): in a module of its own, without numpy, so that the appliers, and every
CLI command that loads them, start without importing numpy (~70 ms); the ranking imports
it when it first runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Seen:
    """What a ranking of the past end days read: a digest of each day's rows."""

    stamp: tuple[Any, ...]
    """The `until:` boards it wrote: (position, computed_at, took_window) of each span."""
    days: dict[int, tuple[float, float, float]]


@dataclass
class PastMemory:
    """The last ranking's digests per schema, kept by the applier between runs: a stamp
    that differs from the boards' (another process wrote them, or the writing
    transaction rolled back) ranks everything again."""

    seen: dict[str, Seen] = field(default_factory=dict)
