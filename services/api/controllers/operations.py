"""Health, readiness, metrics and the projections' status and rebuilds."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    ServiceUnavailableException,
)
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from services import keys, migrate
from services.api.auth import ADMIN_SECURITY, bearer_token, request_key, require
from services.api.metrics import CONTENT_TYPE, CatchUpRate, projection_families, render
from services.limit_settings import LimitSettings
from services.projector import builds
from services.projector.appliers import make_appliers, projection_names
from services.projector.status import ProjectionStatus, projection_statuses

log = logging.getLogger("community_ledger.api")


class OperationsController(Controller):
    tags = ["operations"]

    @get("/health", operation_id="Health", summary="The process is up")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", operation_id="Ready", summary="The database answers and the schema is at head")
    async def ready(self, pool: AsyncConnectionPool) -> dict[str, str]:
        try:
            async with pool.connection(timeout=2) as conn:
                cur = await conn.execute("SELECT version_num FROM alembic_version")
                row = await cur.fetchone()
        except Exception as error:
            # The error's text may name hosts, roles or paths: the log has it, the answer not.
            log.warning("not ready: the database does not answer (%s)", type(error).__name__)
            raise ServiceUnavailableException("not ready: the database does not answer") from error
        head = migrate.head_revision()
        if row is None or row[0] != head:
            raise ServiceUnavailableException(
                f"not ready: the schema is at {row[0] if row else 'base'} but the code needs "
                f"{head}: run `community-ledger db upgrade`"
            )
        return {"status": "ready", "schema": head}

    @get(
        "/metrics",
        operation_id="Metrics",
        summary="Prometheus metrics",
        description="Open unless the server sets LEDGER_METRICS_TOKEN (then send it as a "
        "bearer token) or LEDGER_METRICS_PORT (then they are served there, and this is 404).",
        media_type="text/plain",
    )
    async def metrics(
        self, request: Request[Any, Any, Any], pool: AsyncConnectionPool, catch_up: CatchUpRate
    ) -> Response[str]:
        allow_scrape(request)
        async with pool.connection() as conn:
            projections = await projection_families(conn, catch_up)
        body = await asyncio.to_thread(render, projections)
        return Response(body.decode(), media_type=CONTENT_TYPE)


def allow_scrape(request: Request[Any, Any, Any]) -> None:
    """404 when metrics are served elsewhere; 401 without the metrics token when one is set."""
    limits: LimitSettings | None = getattr(request.app.state, "limits", None)
    if limits is None:
        return
    if limits.metrics_port is not None:
        raise NotFoundException("metrics are served on the server's metrics address, not here")
    if limits.metrics_token is None:
        return
    token = bearer_token(request.headers.get("authorization")) or ""
    if not hmac.compare_digest(token.encode(), limits.metrics_token.encode()):
        raise NotAuthorizedException(
            detail="metrics need the bearer token the server was given in LEDGER_METRICS_TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="community-ledger-metrics"'},
        )


class ProjectionController(Controller):
    path = "/v1/projections"
    tags = ["operations"]

    @get(
        operation_id="ListProjections",
        summary="Each projection's checkpoint, lag and state",
        description="`owner` (the projector's `host:pid`) is shown to admin keys only; "
        "others see null.",
        guards=[require("read")],
        security=[{"bearerAuth": []}],
    )
    async def list_projections(
        self, request: Request[Any, Any, Any], pool: AsyncConnectionPool
    ) -> list[ProjectionStatus]:
        async with pool.connection() as conn:
            statuses = await projection_statuses(conn)
        if keys.allows(request_key(request).scope, "admin"):
            return statuses
        # Which host and process runs the projector helps an attacker more than a reader.
        return [msgspec.structs.replace(status, owner=None) for status in statuses]

    @post(
        "/{name:str}/rebuild",
        operation_id="RebuildProjection",
        status_code=202,
        summary="Rebuild a projection into fresh tables, then swap",
        guards=[require("admin")],
        security=ADMIN_SECURITY,
        description="Needs an API key with scope `admin`: the live tables are replaced.",
    )
    async def rebuild(
        self,
        pool: AsyncConnectionPool,
        # An enum, so that the spec (and a fuzzer) knows every projection by name.
        name: Annotated[str, Parameter(schema_extra={"enum": projection_names()})],
    ) -> ProjectionStatus:
        """The projector builds it beside the live tables, which serve until the swap."""
        applier = next((a for a in make_appliers() if a.name == name), None)
        if applier is None:
            known = ", ".join(projection_names())
            raise NotFoundException(f"no projection named {name!r}; known: {known}")
        async with pool.connection() as conn:
            await builds.request_build(conn, applier.name, applier.version)
            statuses = await projection_statuses(conn)
        return next(s for s in statuses if s.name == name)
