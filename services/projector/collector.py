"""The cyclic garbage collector's pace while the runner applies batches."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GC_THRESHOLD = (100_000, 20, 20)
"""The cyclic collector's pace while batches are applied (Python's default: 700, 10, 10)."""


_collecting_less = 0
_collecting_less_from: list[int] = []


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect cycles less often while a batch is applied.

    A batch allocates hundreds of thousands of objects (rows, events, their fields) and
    reference counting frees them all; there are next to no cycles to find. At the
    default pace the collector still walked them again and again: a third of the
    catch-up's Python time, measured with py-spy (docs/projections.md, "Speed").
    """
    global _collecting_less
    if _collecting_less == 0:
        _collecting_less_from[:] = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLD)
    _collecting_less += 1
    try:
        yield
    finally:
        _collecting_less -= 1
        if _collecting_less == 0:
            gc.set_threshold(*_collecting_less_from)
