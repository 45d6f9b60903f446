"""Every error as RFC 9457 problem details, mapped from exceptions in one place."""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from domain.errors import Conflict, LedgerError, NotFound, RuleViolation, WrongExpectedVersion
from domain.streams import is_member_stream
from services.api import redact
from services.api.schemas import Problem
from services.privacy.master import WrongMasterKey

log = logging.getLogger("community_ledger.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://community-ledger.dev/problems/"
RETRY_AFTER_SECONDS = 5


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=problem, status_code=problem.status, media_type=MEDIA_TYPE, headers=headers
    )


def ledger_error(request: Request[Any, Any, Any], error: LedgerError) -> Response[Any]:
    status = 409 if isinstance(error, Conflict) else 404 if isinstance(error, NotFound) else 422
    if not isinstance(error, RuleViolation | NotFound | Conflict):
        status = 422
    detail = " ".join([str(error), *(f"({note})" for note in getattr(error, "__notes__", []))])
    headers = {}
    if isinstance(error, WrongExpectedVersion) and is_member_stream(error.stream):
        headers["ETag"] = f'"{error.actual}"'
    problem = Problem(
        type=TYPE_BASE + _slug(type(error).__name__),
        title=error.title,
        status=status,
        detail=detail,
        instance=redact.path(request.url.path),
    )
    return problem_response(problem, headers)


def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    errors = None
    if isinstance(error, ValidationException) and isinstance(error.extra, list):
        errors = [
            {
                "field": item.get("key", ""),
                "source": item.get("source", "body"),
                "message": without_values(str(item.get("message", ""))),
            }
            for item in error.extra
            if isinstance(item, dict)
        ]
    status = error.status_code
    problem = Problem(
        type=TYPE_BASE + ("validation" if errors else str(status)),
        title=_titles.get(status, "Error"),
        status=status,
        detail=_detail(error, errors),
        instance=redact.path(request.url.path),
        errors=errors,
    )
    return problem_response(problem, dict(error.headers or {}))


def unstorable_value(request: Request[Any, Any, Any], error: psycopg.DataError) -> Response[Any]:
    """PostgreSQL refuses some text JSON allows (a NUL character): the caller's to fix.

    The detail names no value and not PostgreSQL's message: either may quote the input."""
    problem = Problem(
        type=TYPE_BASE + "unstorable-value",
        title="Bad request",
        status=400,
        detail="the request holds a value the ledger cannot store "
        "(text with a NUL character, or a number out of range)",
        instance=redact.path(request.url.path),
    )
    return problem_response(problem)


def read_model_missing(
    request: Request[Any, Any, Any], error: psycopg.errors.UndefinedTable
) -> Response[Any]:
    """A read model with no live build yet (the projector is making it): retry, not a 500."""
    if '"read.' not in (error.diag.message_primary or ""):
        return unexpected_error(request, error)
    return _unavailable(
        request,
        "projections-building",
        "the read models this endpoint reads are being built (a projection has no "
        "live build yet); retry shortly",
    )


def stale_master_key(request: Request[Any, Any, Any], error: WrongMasterKey) -> Response[Any]:
    """The master key was rotated under a running process: only a restart mends it, and
    the operator, not the caller, must act, so it is a 503 that writes nothing."""
    log.error("the master key changed under this process: restart it with the current key")
    return _unavailable(
        request,
        "master-key-rotated",
        "this server holds an outdated master key (it was rotated); nothing was "
        "written. The operator must restart the server with the current key",
    )


def _unavailable(request: Request[Any, Any, Any], slug: str, detail: str) -> Response[Any]:
    problem = Problem(
        type=TYPE_BASE + slug,
        title=_titles[503],
        status=503,
        detail=detail,
        instance=redact.path(request.url.path),
    )
    return problem_response(problem, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def unexpected_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    # The frames say where it failed; the messages are left out, as they may quote values
    # from the request or the ledger (a name, a handle, a text).
    log.error(
        "unexpected %s on %s %s (messages withheld: they may hold personal data)\n%s",
        " <- ".join(_chain(error)),
        request.method,
        redact.path(request.url.path),
        "".join(traceback.format_tb(error.__traceback__)).rstrip(),
    )
    problem = Problem(
        type=TYPE_BASE + "internal",
        title="Internal server error",
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        detail="the server failed; nothing was written. The log has the details",
        instance=redact.path(request.url.path),
    )
    return problem_response(problem)


_QUOTED_VALUE = re.compile(r"(Invalid (?:enum )?value) '.*?'(?= - at |$)")


def without_values(message: str) -> str:
    """A validation message without the value it quotes (msgspec quotes a bad enum value):
    the field is named beside it, and the value may be a name or a handle."""
    return _QUOTED_VALUE.sub(r"\1", message)


def _chain(error: BaseException) -> list[str]:
    """The types of the error and its causes, outermost first."""
    names: list[str] = []
    current: BaseException | None = error
    while current is not None and len(names) < 10:
        names.append(type(current).__qualname__)
        current = current.__cause__ or current.__context__
    return names


def _detail(error: HTTPException, errors: list[dict[str, Any]] | None) -> str:
    if errors:
        listed = "; ".join(f"{e['field'] or e['source']}: {e['message']}" for e in errors)
        return f"the request is not valid: {listed}"
    return str(error.detail)


_titles = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    503: "Service unavailable",
}

EXCEPTION_HANDLERS: dict[Any, Any] = {
    LedgerError: ledger_error,
    HTTPException: http_error,
    psycopg.DataError: unstorable_value,
    psycopg.errors.UndefinedTable: read_model_missing,
    WrongMasterKey: stale_master_key,
    Exception: unexpected_error,
}
