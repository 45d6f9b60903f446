"""One set of appliers for the tests that drive them by hand, as a single runner would.

The services make theirs per runner (`make_appliers`); tests share this set, so a test
that patches a version or reads the tables sees the same objects it drives.
"""

from __future__ import annotations

from services.projector.appliers import Applier, make_appliers

APPLIERS: tuple[Applier, ...] = make_appliers()
