"""The Litestar application: one pool per process, opened in the lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from litestar import Controller, Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Server
from litestar.stores.memory import MemoryStore

from services import bootstrap
from services.api import redact
from services.api.auth import BEARER_SECURITY
from services.api.bodies import MAX_DEPTH, StrictBody
from services.api.controllers.activity import ActivityController
from services.api.controllers.events import EventController
from services.api.controllers.exports import ExportController
from services.api.controllers.health import HealthController
from services.api.controllers.home import home
from services.api.controllers.introductions import IntroductionController
from services.api.controllers.members import MemberController
from services.api.controllers.operations import OperationsController, ProjectionController
from services.api.controllers.scores import ScoreController
from services.api.controllers.stats import StatsController
from services.api.controllers.stream import StreamController
from services.api.controllers.webhooks import WebhookController
from services.api.dependencies import DEPENDENCIES
from services.api.docs import SCHEMA_PATH, assets_router, render_plugins
from services.api.edges import edge_headers, refuse_nul
from services.api.failed_auth import FailedAuthentications
from services.api.housekeeping import keep_house
from services.api.metrics import CatchUpRate, metrics_middleware
from services.api.openapi import finish as finish_openapi
from services.api.problems import EXCEPTION_HANDLERS
from services.api.rate_limits import STORES as RATE_LIMIT_STORES
from services.api.rate_limits import rate_limit_middleware
from services.api.schemas import MAX_BATCH_BYTES
from services.api.stream_hub import StreamHub
from services.api.watch import ProjectionWatch
from services.limit_settings import LimitSettings, load_limit_settings
from services.privacy.keyring import Keyring
from services.projector.progress import Progress
from services.settings import (
    StreamSettings,
    introduction_window,
    load_settings,
    load_stream_settings,
)
from services.webhooks.dispatcher import run_in_process

log = logging.getLogger("community_ledger.api")

MAX_BODY = 1024 * 1024
STOP_SECONDS = 10.0
VERSION = "1.0.0"

READ_CONTROLLERS: list[type[Controller]] = [
    MemberController,
    StatsController,
    HealthController,
    IntroductionController,
    ScoreController,
]
"""The controllers whose reads wait for projections (`min_position`)."""


def create_app(
    database_url: str,
    *,
    run_projector: bool = False,
    pool_size: int = 10,
    projector_url: str | None = None,
    limits: LimitSettings | None = None,
    stream: StreamSettings | None = None,
) -> Litestar:
    """The API over the database at `database_url`; with `run_projector`, projections too
    (connected to `projector_url` when the projector has a database role of its own).

    `limits` (rate limits, waiters, retention, /metrics access) and `stream` (the event
    stream's heartbeat and bounds) default to the environment's.
    """
    limits = load_limit_settings() if limits is None else limits
    stream = load_stream_settings() if stream is None else stream

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with bootstrap.write_path(database_url, pool_size=pool_size) as wired:
            app.state.pool = wired.pool
            app.state.ledger = wired.ledger
            app.state.handler = wired.handler
            app.state.keyring = wired.keyring
            app.state.catch_up = CatchUpRate()
            app.state.watch = ProjectionWatch(wired.pool, database_url, limits.max_waiters)
            app.state.watch.start()
            app.state.stream_hub = StreamHub(
                wired.ledger,
                database_url,
                stream.queue_events,
                stream.max_streams,
                stream.gather_seconds,
            )
            app.state.stream_hub.start()
            stores = [cast(MemoryStore, app.stores.get(name)) for name in RATE_LIMIT_STORES]
            done = asyncio.Event()
            chores = asyncio.create_task(
                keep_house(wired.pool, limits.idempotency_retention, stores, done)
            )
            projector = (
                asyncio.create_task(_project(projector_url or database_url, wired.keyring))
                if run_projector
                else None
            )
            # The webhook dispatcher is a job like the projections: it runs where they do.
            dispatcher = (
                asyncio.create_task(
                    run_in_process(projector_url or database_url, wired.keyring, load_settings())
                )
                if run_projector
                else None
            )
            try:
                yield
            finally:
                await app.state.stream_hub.close()
                if dispatcher is not None:
                    await _stop(dispatcher, "webhook dispatcher")
                if projector is not None:
                    await _stop(projector)
                done.set()
                await app.state.watch.close()
                if not (await asyncio.wait({chores}, timeout=STOP_SECONDS))[0]:
                    log.warning("the housekeeping task did not stop within %s s", STOP_SECONDS)

    redact.install()
    app = Litestar(
        route_handlers=[
            home,
            OperationsController,
            ActivityController,
            EventController,
            StreamController,
            ProjectionController,
            ExportController,
            WebhookController,
            *READ_CONTROLLERS,
            assets_router(),
        ],
        dependencies=DEPENDENCIES,
        # Every request body is decoded once, strictly; answers are encoded as returned.
        dto=StrictBody,
        return_dto=None,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[metrics_middleware, *rate_limit_middleware(limits)],
        stores={name: MemoryStore() for name in RATE_LIMIT_STORES},
        before_send=[edge_headers],
        request_max_body_size=MAX_BODY,
        openapi_config=openapi_config(),
    )
    app.state.limits = limits
    app.state.stream_settings = stream
    app.state.webhooks_allow_private_targets = load_settings().webhooks_allow_private_targets
    app.state.introduction_window = introduction_window()
    app.state.failed_auth = FailedAuthentications(limits.failed_auth)
    finish_openapi(app)
    # Outside the router, so a NUL is refused even where no route matches.
    app.asgi_handler = refuse_nul(app.asgi_handler)
    return app


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Community Ledger API",
        version=VERSION,
        description=(
            "An event-sourced record of the work that holds a community together. "
            "Writes append events through the domain rules and answer their positions; "
            "reads come from projections (pass `min_position` to read your own writes) or "
            "straight from the ledger. Errors are RFC 9457 problem details. "
            f"Request bodies: at most {MAX_BODY // 2**20} MiB "
            f"({MAX_BATCH_BYTES // 2**20} MiB for a batch), JSON nested at most "
            f"{MAX_DEPTH} deep, no text holding NUL (U+0000) anywhere in a request; "
            "whole numbers in ASCII digits up to 9223372036854775807 (a bigint)."
        ),
        servers=[Server(url="http://127.0.0.1:8000")],
        components=Components(security_schemes={"bearerAuth": BEARER_SECURITY}),
        path=SCHEMA_PATH,
        render_plugins=render_plugins(),
    )


async def _stop(job: asyncio.Task[None], name: str = "projector") -> None:
    """Cancel an in-process job, and never let it hold the server's shutdown."""
    job.cancel()
    done, _ = await asyncio.wait({job}, timeout=STOP_SECONDS)
    if not done:
        log.warning("the in-process %s did not stop within %s s; leaving it", name, STOP_SECONDS)
    elif not job.cancelled() and (error := job.exception()) is not None:
        log.warning("the in-process %s ended with %r", name, error)


async def _project(database_url: str, keyring: Keyring) -> None:
    """The projection runner inside the server process, so one command gives a live system."""
    while True:
        try:
            failures = await bootstrap.runner(
                database_url, progress=Progress(), keyring=keyring
            ).run(follow=True)
            for failure in failures:
                log.error("projection stopped: %s", failure)
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the in-process projector failed; restarting it in 5 s")
            await asyncio.sleep(5)
