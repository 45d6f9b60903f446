"""The one reading of a whole number from a header or query text.

`str.isdigit()` passes `²` and Arabic-Indic digits, and `int()` takes the latter and
refuses 5,000 digits with a ValueError: neither is a position. Only ASCII digits, and no
more than a PostgreSQL bigint holds, so a bad number is a 400 naming where it came from.
"""

from __future__ import annotations

import re

from litestar.exceptions import ValidationException

from domain.limits import MAX_POSITION

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")  # 19 digits hold every bigint, and bound int()


def whole_number(text: str, name: str, source: str = "header") -> int:
    """`text` (surrounding spaces allowed) as an int in 0..MAX_POSITION; a 400 naming `name`."""
    stripped = text.strip(" \t")
    value = int(stripped) if _ASCII_DIGITS.fullmatch(stripped) else None
    if value is None or value > MAX_POSITION:
        message = f"must be a whole number from 0 to {MAX_POSITION}, in ASCII digits"
        raise ValidationException(
            f"{name} {message}", extra=[{"key": name, "source": source, "message": message}]
        )
    return value
