"""What every workload shares: a fresh database, repetitions, results, ratios, the machine.

A workload module exposes `run(bench: Bench) -> list[Result | Ratio]` (see
`bench/__main__.py` for the list). Figures are medians of `bench.repetitions` runs; a
ratio is taken between two medians of the same run, so the noise of this machine hits
both sides alike.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from services import migrate
from services.database import with_database


@dataclass
class Result:
    """One measured figure: `samples` holds one value per repetition."""

    workload: str
    variant: str
    unit: str
    samples: list[float]
    higher_is_better: bool = True
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "variant": self.variant,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples),
            "max": max(self.samples),
            "repetitions": len(self.samples),
            "samples": self.samples,
            "note": self.note,
        }


@dataclass
class Ratio:
    """`numerator.median / denominator.median`, with the target it must reach (if any)."""

    name: str
    numerator: Result
    denominator: Result | None = None
    target: float | None = None
    """At least this ratio (or, with no denominator, at least this absolute figure)."""
    at_most: bool = False
    """The target is an upper bound (latency, memory growth) rather than a lower one."""
    note: str = ""

    @property
    def value(self) -> float:
        if self.denominator is None:
            return self.numerator.median
        return self.numerator.median / self.denominator.median

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.at_most else self.value >= self.target

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "target": self.target,
            "at_most": self.at_most,
            "met": self.met,
            "note": self.note,
        }


@dataclass
class Bench:
    """The run's settings and the PostgreSQL server every workload shares."""

    server_url: str
    repetitions: int = 3
    scale: float = 1.0
    """1.0 is the issue's sizes (a million events); `--quick` shrinks every size tenfold."""
    log: Callable[[str], None] = print

    @classmethod
    def standalone(cls, repetitions: int = 3, quick: bool = False) -> Bench:
        """A run of its own (`python -m bench.X`), on DATABASE_URL's server or the embedded
        one. Every database a workload makes is fresh and dropped after: without a master
        key configured, a throwaway one, shared with the servers and importers the
        workloads start as child processes."""
        from services.embedded_db import embedded_server_url
        from services.privacy.master import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, new_master_key
        from services.settings import load_settings

        if not (os.environ.get(MASTER_KEY_ENV) or os.environ.get(MASTER_KEY_FILE_ENV)):
            os.environ[MASTER_KEY_ENV] = new_master_key().encoded()
        settings = load_settings()
        return cls(
            server_url=settings.database_url or embedded_server_url(settings.data_dir),
            repetitions=repetitions,
            scale=0.1 if quick else 1.0,
        )

    def size(self, full: int, smallest: int = 1_000) -> int:
        return max(smallest, int(full * self.scale))

    @contextlib.contextmanager
    def database(self, *, migrated: bool = True, prefix: str = "bench") -> Iterator[str]:
        """A fresh database on the shared server for the block, dropped afterwards."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = with_database(self.server_url, name)
        try:
            if migrated:
                migrate.upgrade(url)
            yield url
        finally:
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )

    def repeat(self, measure: Callable[[int], float]) -> list[float]:
        """`measure(i)` for each repetition i; each call answers one sample."""
        samples = []
        for index in range(self.repetitions):
            samples.append(measure(index))
        return samples


def settle() -> None:
    """Collect the garbage of what a workload built before its clock starts.

    Hundreds of thousands of freshly built events are young objects: left uncollected,
    they make the first full collection inside the timed part cost ~0.15 s, which lands
    on one side of a comparison or the other by where the collector's thresholds fall
    (seen: a 100,000-event batch run charged 1.4 us per event on one side, none on the
    other). A server's own heap is not rebuilt before each request."""
    gc.collect()


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                "",
            )
    except OSError:
        pass
    cpu = model or platform.processor()
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def peak_memory_mib() -> float:
    """This process's own peak resident memory (VmHWM).

    Not `ru_maxrss`: on Linux a child starts with its parent's high-water mark (fork and
    exec carry it over), so a small child of a big harness would report the harness."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
