"""Every error the domain raises maps to one HTTP status and names itself."""

from __future__ import annotations

import inspect

from domain import errors
from domain.errors import Conflict, LedgerError, NotFound, RuleViolation

ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, LedgerError) and cls not in (LedgerError, RuleViolation, NotFound, Conflict)
]


def test_every_error_falls_under_one_status_family() -> None:
    families = (RuleViolation, NotFound, Conflict)
    for cls in ERRORS:
        if cls is errors.UnknownEventType:
            continue  # a stored row the code cannot read: a server fault, not the caller's
        assert sum(issubclass(cls, family) for family in families) == 1, cls.__name__


def test_every_error_has_its_own_title() -> None:
    titles = [cls.title for cls in ERRORS]
    assert len(titles) == len(set(titles))
    assert all(cls.__dict__.get("title") for cls in ERRORS)
