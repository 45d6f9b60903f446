"""Progress of an import: a bar with rate on a terminal, a log line every few seconds elsewhere."""

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
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

log = logging.getLogger("community_ledger.importers")


class Progress:
    """Plain log lines, at most one every `every` seconds; silent when `every` is None."""

    def __init__(self, label: str, total: int | None, unit: str, every: float | None = 5.0) -> None:
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.started = self._since = time.monotonic()

    @staticmethod
    def for_terminal(label: str, total: int | None, unit: str) -> Progress:
        if sys.stderr.isatty():
            return BarProgress(label, total, unit)
        return Progress(label, total, unit)

    @staticmethod
    def silent() -> Progress:
        return Progress("", None, "", every=None)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.every is None or now - self._since < self.every:
            return
        self._since = now
        rate = done / max(now - self.started, 1e-9)
        of = f" of {self.total:,}" if self.total is not None else ""
        log.info("%s: %s %s%s, %.0f %s/s", self.label, f"{done:,}", self.unit, of, rate, self.unit)

    def close(self) -> None:
        pass


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} {self.unit}/s", style="progress.data.speed")


class BarProgress(Progress):
    def __init__(self, label: str, total: int | None, unit: str) -> None:
        super().__init__(label, total, unit)
        remaining = TimeRemainingColumn() if total is not None else TimeElapsedColumn()
        self.bars = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(unit),
            remaining,
            console=Console(stderr=True),
        )
        self.task = self.bars.add_task(label, total=total)
        self.bars.start()

    def update(self, done: int) -> None:
        self.bars.update(self.task, completed=done)

    def close(self) -> None:
        self.bars.stop()
