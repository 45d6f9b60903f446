"""Webhook subscriptions over HTTP: admin only, since a webhook sends the ledger's events
(personal data included) wherever its URL points.

The signing secret is shown once, at creation and at rotation; no answer shows it again.
A rotation keeps the superseded secret signing too for a grace period (24 h by default),
so receivers can switch without turning deliveries away.
A URL is refused here when its spelling or any address it resolves to is unsafe
(`services/webhooks/targets.py`), and again by the dispatcher before every connection.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from domain import limits as lim
from domain.errors import LedgerError
from domain.events import EVENT_TYPES
from domain.handles import parse_handle
from domain.ids import new_id
from domain.limits import MAX_POSITION
from domain.streams import member_stream
from services.api.auth import ADMIN_SECURITY, require
from services.items import MemberRef
from services.items import Request as Body
from services.privacy.master import MasterKey
from services.queries.cursors import InvalidCursor
from services.store.identity import handle_owner
from services.store.ledger import Ledger
from services.webhooks import subscriptions as subs
from services.webhooks.secrets import DEFAULT_GRACE, MAX_GRACE, new_secret, wrap_secret
from services.webhooks.targets import MAX_URL_LENGTH, UnsafeTarget, check_url, resolve_target

TargetUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="An http:// or https:// URL; loopback, private, link-local and other "
        "non-public addresses are refused unless the server allows them "
        "(LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS)",
        examples=["https://hooks.example.org/ledger"],
    ),
]
EventTypes = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=lim.MAX_EVENT_TYPE)]],
    msgspec.Meta(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="Only these event types (null: every type): " + ", ".join(EVENT_TYPES),
    ),
]
Space = Annotated[str, msgspec.Meta(pattern=lim.SPACE_PATTERN, description="A space slug")]
Description = Annotated[str, msgspec.Meta(max_length=lim.MAX_NOTE)]
Position = Annotated[int, msgspec.Meta(ge=0, le=MAX_POSITION)]


class WebhookCreate(Body, kw_only=True):
    url: TargetUrl
    event_types: EventTypes | None = None
    member: MemberRef | None = None
    """Only events that name this member (by id or handle)."""
    space: Space | None = None
    """Only events in this space."""
    enabled: bool = True
    description: Description = ""
    after: Position | None = None
    """Deliver the events after this position (0: the whole ledger); by default only
    those recorded after the subscription."""


class WebhookPatch(Body, kw_only=True):
    """Only the fields given change; null clears a filter. Enabling a subscription the
    dispatcher disabled resumes delivery from its checkpoint, at once."""

    url: TargetUrl | msgspec.UnsetType = msgspec.UNSET
    event_types: EventTypes | msgspec.UnsetType | None = msgspec.UNSET
    member: MemberRef | msgspec.UnsetType | None = msgspec.UNSET
    space: Space | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET


class WebhookCreated(subs.WebhookOut, kw_only=True):
    secret: str
    """The signing secret (`whsec_…`), for `standardwebhooks.Webhook(secret).verify`.
    Shown only now: keep it."""


class WebhookSecret(msgspec.Struct, kw_only=True):
    id: UUID
    secret: str
    """The new signing secret, shown only now; deliveries are signed with it from now on."""
    previous_secret_valid_until: datetime | None
    """Until when deliveries are also signed with the secret this one replaced (null: they
    no longer are, the grace period was 0)."""


class WebhookPage(msgspec.Struct, kw_only=True):
    webhooks: list[subs.WebhookOut]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class DeliveryPage(msgspec.Struct, kw_only=True):
    deliveries: list[subs.DeliveryOut]
    next_cursor: str | None
    """Pass as `cursor` for older attempts; null on the last page."""


Cursor = Annotated[str | None, Parameter(max_length=500, description="next_cursor of a page")]


class WebhookController(Controller):
    path = "/v1/webhooks"
    guards = [require("admin")]
    security = ADMIN_SECURITY
    tags = ["webhooks"]

    @post(
        operation_id="CreateWebhook",
        summary="Subscribe a URL to the ledger's events",
        description="Events are POSTed as the feed shows them, signed as Standard Webhooks "
        "specify, at least once and in position order. The answer holds the signing secret: "
        "it is never shown again. Needs an API key with scope `admin`.",
    )
    async def create(
        self, state: State, pool: AsyncConnectionPool, ledger: Ledger, data: WebhookCreate
    ) -> WebhookCreated:
        event_types = _event_types(data.event_types)
        await _check_target(state, data.url)
        member_id = await _member(ledger, data.member) if data.member is not None else None
        if data.after is not None:
            await _within_head(ledger, data.after, "body")
        secret = new_secret()
        wrapped, kek_id = wrap_secret(_master(state), secret)
        async with pool.connection() as conn:
            made = await subs.create(
                conn,
                subs.NewWebhook(
                    id=new_id(),
                    url=data.url,
                    event_types=event_types,
                    member_id=member_id,
                    space=data.space,
                    description=data.description,
                    enabled=data.enabled,
                    wrapped=wrapped,
                    kek_id=kek_id,
                    position=data.after,
                ),
            )
        return WebhookCreated(**msgspec.structs.asdict(made), secret=secret)

    @get(operation_id="ListWebhooks", summary="The subscriptions, oldest first")
    async def list_webhooks(
        self,
        pool: AsyncConnectionPool,
        cursor: Cursor = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> WebhookPage:
        try:
            async with pool.connection() as conn:
                found, next_cursor = await subs.list_page(conn, cursor, limit)
        except InvalidCursor as error:
            raise _bad_cursor(error) from error
        return WebhookPage(webhooks=found, next_cursor=next_cursor)

    @get("/{webhook_id:uuid}", operation_id="GetWebhook", summary="One subscription")
    async def get_webhook(self, pool: AsyncConnectionPool, webhook_id: UUID) -> subs.WebhookOut:
        async with pool.connection() as conn:
            return _found(await subs.get(conn, webhook_id), webhook_id)

    @patch(
        "/{webhook_id:uuid}",
        operation_id="UpdateWebhook",
        status_code=200,
        summary="Change a subscription's URL, filters, description, or enable it again",
    )
    async def update_webhook(
        self,
        state: State,
        pool: AsyncConnectionPool,
        ledger: Ledger,
        webhook_id: UUID,
        data: WebhookPatch,
    ) -> subs.WebhookOut:
        changes = {
            name: value
            for name, value in msgspec.structs.asdict(data).items()
            if value is not msgspec.UNSET
        }
        if "event_types" in changes:
            changes["event_types"] = _event_types(changes["event_types"])
        if "url" in changes:
            await _check_target(state, changes["url"])
        if "member" in changes:
            member = changes.pop("member")
            changes["member_id"] = await _member(ledger, member) if member is not None else None
        async with pool.connection() as conn:
            return _found(await subs.update(conn, webhook_id, changes), webhook_id)

    @delete(
        "/{webhook_id:uuid}",
        operation_id="DeleteWebhook",
        summary="Unsubscribe: deliveries stop and the delivery log goes",
    )
    async def delete_webhook(self, pool: AsyncConnectionPool, webhook_id: UUID) -> None:
        async with pool.connection() as conn:
            if not await subs.delete(conn, webhook_id):
                raise NotFoundException(f"no webhook with id {webhook_id}")

    @post(
        "/{webhook_id:uuid}/secret",
        operation_id="RotateWebhookSecret",
        status_code=200,
        summary="Replace a subscription's signing secret",
        description="The new secret is shown once; every delivery from now on is signed "
        "with it. For `grace_seconds` (24 hours by default) each delivery also carries a "
        "signature by the secret it replaced, so a receiver still holding that one keeps "
        "accepting; `previous_secret_valid_until` says until when. A second rotation within "
        "the grace period makes the secret it replaces the previous one: the older is no "
        "longer used.",
    )
    async def rotate_secret(
        self,
        state: State,
        pool: AsyncConnectionPool,
        webhook_id: UUID,
        grace_seconds: Annotated[
            int,
            Parameter(
                ge=0,
                le=int(MAX_GRACE.total_seconds()),
                description="How long the replaced secret keeps signing too, in seconds "
                "(0: not at all, at most 7 days)",
            ),
        ] = int(DEFAULT_GRACE.total_seconds()),
    ) -> WebhookSecret:
        secret = new_secret()
        wrapped, kek_id = wrap_secret(_master(state), secret)
        grace = timedelta(seconds=grace_seconds)
        async with pool.connection() as conn:
            rotated = await subs.rotate_secret(conn, webhook_id, wrapped, kek_id, grace)
        if rotated is None:
            raise NotFoundException(f"no webhook with id {webhook_id}")
        return WebhookSecret(
            id=webhook_id,
            secret=secret,
            previous_secret_valid_until=rotated.previous_valid_until,
        )

    @get(
        "/{webhook_id:uuid}/deliveries",
        operation_id="ListWebhookDeliveries",
        summary="A subscription's delivery attempts, newest first",
    )
    async def deliveries(
        self,
        pool: AsyncConnectionPool,
        webhook_id: UUID,
        cursor: Cursor = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> DeliveryPage:
        """Each attempt: the event, its status code (null when no answer came), how long
        it took, the error, and when the next retry is due."""
        try:
            async with pool.connection() as conn:
                found, next_cursor = await subs.deliveries(conn, webhook_id, cursor, limit)
                if not found:
                    _found(await subs.get(conn, webhook_id), webhook_id)
        except InvalidCursor as error:
            raise _bad_cursor(error) from error
        return DeliveryPage(deliveries=found, next_cursor=next_cursor)

    @post(
        "/{webhook_id:uuid}/replay",
        operation_id="ReplayWebhook",
        status_code=200,
        summary="Deliver again every matching event after a position",
        description="Moves the subscription's checkpoint to `after`: the dispatcher then "
        "delivers every matching event past it again, in order (receivers de-duplicate by "
        "`webhook-id`). A disabled subscription stays disabled until enabled.",
    )
    async def replay(
        self,
        pool: AsyncConnectionPool,
        ledger: Ledger,
        webhook_id: UUID,
        after: Annotated[
            int,
            Parameter(ge=0, le=MAX_POSITION, description="Deliver the events after this one"),
        ],
    ) -> subs.WebhookOut:
        await _within_head(ledger, after, "query")
        async with pool.connection() as conn:
            return _found(await subs.replay(conn, webhook_id, after), webhook_id)


def _master(state: State) -> MasterKey:
    master: MasterKey = state.keyring.master
    return master


def _event_types(types: list[str] | None) -> list[str] | None:
    """The types once each, in the order given; 400 naming the valid ones on an unknown."""
    unknown = sorted({t for t in types or [] if t not in EVENT_TYPES})
    if unknown:
        message = f"{len(unknown)} unknown event type(s); the types are " + ", ".join(EVENT_TYPES)
        raise ValidationException(
            f"event_types: {message}",
            extra=[{"key": "event_types", "source": "body", "message": message}],
        )
    return None if types is None else list(dict.fromkeys(types))


async def _check_target(state: State, url: str) -> None:
    """400 for a URL that cannot be a target as written, 422 for one that resolves unsafely."""
    if (reason := check_url(url)) is not None:
        raise ValidationException(
            f"url: {reason}", extra=[{"key": "url", "source": "body", "message": reason}]
        )
    try:
        await resolve_target(url, bool(state.webhooks_allow_private_targets))
    except UnsafeTarget as refused:
        raise HTTPException(status_code=422, detail=f"url: {refused.reason}") from None


async def _member(ledger: Ledger, reference: str) -> UUID:
    if not _is_uuid(reference):
        try:
            key = parse_handle(reference).key
        except LedgerError as error:
            raise ValidationException(
                f"member: {error}",
                extra=[{"key": "member", "source": "body", "message": str(error)}],
            ) from error
        owner = await handle_owner(ledger, key)
        if owner is None:
            # Not echoed: a handle is personal data, and problems carry none.
            raise HTTPException(status_code=422, detail="member: no member holds this handle")
        return owner
    member_id = UUID(reference)
    if not await ledger.read_stream(member_stream(member_id), limit=1):
        raise HTTPException(status_code=422, detail=f"member: no member with id {member_id}")
    return member_id


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


async def _within_head(ledger: Ledger, after: int, source: str) -> None:
    head = await ledger.head()
    if after > head:
        message = f"position {after} is past the ledger's head ({head})"
        raise ValidationException(
            f"after: {message}", extra=[{"key": "after", "source": source, "message": message}]
        )


def _found(webhook: subs.WebhookOut | None, webhook_id: UUID) -> subs.WebhookOut:
    if webhook is None:
        raise NotFoundException(f"no webhook with id {webhook_id}")
    return webhook


def _bad_cursor(error: InvalidCursor) -> ValidationException:
    return ValidationException(
        f"cursor: {error}", extra=[{"key": "cursor", "source": "query", "message": str(error)}]
    )
