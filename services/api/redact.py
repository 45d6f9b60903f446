"""What of a request may be logged or echoed: its path and query without personal values.

A handle in a by-handle path and the text of a member search (`q=`) name a person; the
access log, the problems' `instance` and the error log see the request target only
through `target` and `path` here.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

REDACTED = "redacted"
PERSONAL_PARAMETERS = frozenset({"q"})
_BY_HANDLE = re.compile(r"^(/v1/members/by-handle/[^/]*/)[^?]*")


def path(text: str) -> str:
    """The path with a by-handle lookup's handle replaced (its platform kept)."""
    return _BY_HANDLE.sub(rf"\g<1>{REDACTED}", text)


def target(text: str) -> str:
    """A path and query as a request line has them, personal values replaced."""
    before, mark, query = text.partition("?")
    if not mark:
        return path(before)
    pairs = [
        (name, REDACTED if name in PERSONAL_PARAMETERS else value)
        for name, value in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{path(before)}?{urlencode(pairs, safe=',:')}"


class AccessLogFilter(logging.Filter):
    """Redacts uvicorn's access lines: `(client, method, target, http version, status)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], target(args[2]), args[3], args[4])
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    """Filter the access log of every server this process runs, once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, AccessLogFilter) for f in logger.filters):
        logger.addFilter(AccessLogFilter())
