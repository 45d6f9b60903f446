"""Progress of catch-ups and rebuilds: a bar with rate and ETA on a terminal, else log lines."""

from __future__ import annotations

import logging
import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

log = logging.getLogger("community_ledger.projector")

Positions = dict[str, tuple[int, int]]
"""label -> (position reached, head)"""


class Progress:
    """Plain log lines, at most one every `every` seconds per label."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._last: dict[str, tuple[float, int]] = {}

    @staticmethod
    def for_terminal() -> Progress:
        return BarProgress() if sys.stderr.isatty() else Progress()

    def update(self, positions: Positions) -> None:
        now = time.monotonic()
        for label, (position, head) in positions.items():
            since, then = self._last.setdefault(label, (now, position))
            if now - since < self.every:
                continue
            if position == then:  # idle (a follower at the head): nothing to report
                self._last[label] = (now, position)
                continue
            rate = (position - then) / (now - since)
            eta = f", about {(head - position) / rate:.0f}s to go" if rate > 0 else ""
            log.info("%s: position %d of %d, %.0f events/s%s", label, position, head, rate, eta)
            self._last[label] = (now, position)

    def close(self) -> None:
        pass


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} ev/s", style="progress.data.speed")


class BarProgress(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.bars = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.tasks: dict[str, TaskID] = {}
        self.bars.start()

    def update(self, positions: Positions) -> None:
        for label, (position, head) in positions.items():
            if label not in self.tasks:
                self.tasks[label] = self.bars.add_task(label, total=head, completed=position)
            self.bars.update(self.tasks[label], total=head, completed=position)

    def close(self) -> None:
        self.bars.stop()
