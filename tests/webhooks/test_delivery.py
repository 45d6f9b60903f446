"""The dispatcher delivers, signs, filters, retries and disables, against a real receiver."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid

import msgspec
import psycopg
import pytest
from standardwebhooks import Webhook

from services.metrics import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_LAG,
    WEBHOOK_RETRY_QUEUE,
    WEBHOOKS_DISABLED,
)
from services.privacy.keyring import Keyring
from services.privacy.master import new_master_key
from services.store.ledger import Ledger
from services.store.public import event_out
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.secrets import wrap_secret
from tests.webhooks.conftest import (
    Receiver,
    deliveries,
    dispatch_settings,
    noted,
    run_until,
    subscribe,
    subscription_row,
)

pytestmark = pytest.mark.anyio


async def test_every_event_is_delivered_in_order_signed_as_the_feed_shows_it(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    hook = subscribe(database_url, receiver.url)
    appended = await ledger.append([noted(i) for i in range(5)])

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    seen = receiver.seen(hook.path)
    feed = await ledger.read_feed()
    assert [r.headers["webhook-id"] for r in seen] == [str(e) for e in appended.event_ids]
    assert [r.body for r in seen] == [msgspec.json.encode(event_out(e)) for e in feed]
    for request in seen:
        Webhook(hook.secret).verify(request.body, request.headers)
        assert request.headers["content-type"] == "application/json"
    assert subscription_row(database_url, hook.webhook_id)["position"] == appended.positions[-1]
    assert [row[:3] for row in deliveries(database_url, hook.webhook_id)] == [
        (position, 1, 204) for position in appended.positions
    ]


async def test_a_failed_delivery_is_retried_and_every_attempt_is_logged(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    hook = subscribe(database_url, receiver.url)
    appended = await ledger.append([noted(i) for i in range(2)])
    first, second = appended.positions

    await run_until(
        Dispatcher(projector_url, keyring, dispatch_settings()),
        lambda: subscription_row(database_url, hook.webhook_id)["position"] == second,
    )

    log = deliveries(database_url, hook.webhook_id)
    assert [row[:4] for row in log] == [
        (first, 1, 500, "HTTP 500"),
        (first, 2, 500, "HTTP 500"),
        (first, 3, 204, None),
        (second, 1, 204, None),
    ]
    assert log[0][4] is not None and log[1][4] is not None and log[2][4] is None
    assert [r.status for r in receiver.seen(hook.path)] == [500, 500, 204, 204]
    assert subscription_row(database_url, hook.webhook_id)["attempts"] == 0


async def test_after_the_last_retry_the_subscription_is_disabled_with_its_reason(
    ledger: Ledger,
    keyring: Keyring,
    database_url: str,
    projector_url: str,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.status = 503
    hook = subscribe(database_url, receiver.url + "/?token=hidden")
    await ledger.append([noted(0)])
    disabled_before = WEBHOOKS_DISABLED._value.get()

    with caplog.at_level(logging.WARNING, logger="community_ledger.webhooks"):
        await run_until(
            Dispatcher(projector_url, keyring, dispatch_settings()),
            lambda: not subscription_row(database_url, hook.webhook_id)["enabled"],
        )

    row = subscription_row(database_url, hook.webhook_id)
    assert row["position"] == 0
    assert row["reason"] == "4 attempts failed at position 1; last: HTTP 503"
    assert len(receiver.seen()) == 4 == len(deliveries(database_url, hook.webhook_id))
    lines = [r.getMessage() for r in caplog.records if "webhook.disabled" in r.getMessage()]
    assert lines == [f"webhook.disabled webhook_id={hook.webhook_id} reason={row['reason']}"]
    assert "token" not in lines[0]
    assert WEBHOOKS_DISABLED._value.get() == disabled_before + 1


async def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    receiver.status = 302
    receiver.headers = {"location": receiver.url + "/elsewhere"}
    hook = subscribe(database_url, receiver.url)
    await ledger.append([noted(0)])

    await run_until(
        Dispatcher(projector_url, keyring, dispatch_settings()),
        lambda: not subscription_row(database_url, hook.webhook_id)["enabled"],
    )

    assert {r.path for r in receiver.seen()} == {hook.path}
    errors = {row[3] for row in deliveries(database_url, hook.webhook_id)}
    assert errors == {"redirect not followed (HTTP 302)"}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_target_resolving_to_loopback_is_refused_at_delivery_time(
    ledger: Ledger,
    keyring: Keyring,
    database_url: str,
    projector_url: str,
    receiver: Receiver,
    host: str,
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    hook = subscribe(database_url, f"http://{host}:{port}")
    await ledger.append([noted(0)])
    settings = dispatch_settings(webhooks_allow_private_targets=False)

    await run_until(
        Dispatcher(projector_url, keyring, settings),
        lambda: not subscription_row(database_url, hook.webhook_id)["enabled"],
    )

    assert receiver.seen() == []
    log = deliveries(database_url, hook.webhook_id)
    assert len(log) == 4 and all(row[2] is None for row in log)
    assert all(
        str(row[3]).startswith("refused target:") and "loopback" in str(row[3]) for row in log
    )
    assert "refused target" in str(subscription_row(database_url, hook.webhook_id)["reason"])


async def test_filters_deliver_only_matching_events_and_move_past_the_rest(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    member = uuid.uuid4()
    by_type = subscribe(database_url, receiver.url, event_types=["Wanted"])
    by_member = subscribe(database_url, receiver.url, member_id=member)
    by_space = subscribe(database_url, receiver.url, space="garden")
    both = subscribe(database_url, receiver.url, member_id=member, space="garden")
    appended = await ledger.append(
        [
            noted(0, type="Wanted"),
            noted(1, tags=(f"member:{member}",)),
            noted(2, tags=("space:garden",)),
            noted(3, tags=(f"member:{member}", "space:garden"), type="Wanted"),
            noted(4),
        ]
    )
    ids = [str(event_id) for event_id in appended.event_ids]

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    def got(path: str) -> list[str]:
        return [r.headers["webhook-id"] for r in receiver.seen(path)]

    assert got(by_type.path) == [ids[0], ids[3]]
    assert got(by_member.path) == [ids[1], ids[3]]
    assert got(by_space.path) == [ids[2], ids[3]]
    assert got(both.path) == [ids[3]]
    for hook in (by_type, by_member, by_space, both):
        assert subscription_row(database_url, hook.webhook_id)["position"] == appended.positions[-1]


async def test_a_replay_delivers_again_from_the_position_given(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    hook = subscribe(database_url, receiver.url)
    appended = await ledger.append([noted(i) for i in range(4)])
    await Dispatcher(projector_url, keyring, dispatch_settings()).run()
    replay_from = appended.positions[1]

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE webhooks SET position = %s, attempts = 0, next_attempt_at = NULL "
            "WHERE webhook_id = %s",
            [replay_from, hook.webhook_id],
        )
    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    ids = [str(event_id) for event_id in appended.event_ids]
    assert [r.headers["webhook-id"] for r in receiver.seen(hook.path)] == ids + ids[2:]


async def test_one_slow_receiver_does_not_hold_back_the_others(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    slow = Receiver(delay=1.0)
    slow.start()
    try:
        slow_hook = subscribe(database_url, slow.url)
        fast_hook = subscribe(database_url, receiver.url)
        await ledger.append([noted(i) for i in range(30)])

        await run_until(
            Dispatcher(projector_url, keyring, dispatch_settings(webhook_timeout_seconds=5.0)),
            lambda: len(receiver.seen(fast_hook.path)) == 30,
        )

        assert len(slow.seen(slow_hook.path)) <= 3
    finally:
        slow.stop()


async def test_two_dispatchers_never_deliver_at_once_for_one_subscription(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    receiver.delay = 0.003
    hooks = [subscribe(database_url, receiver.url) for _ in range(3)]
    appended = await ledger.append([noted(i) for i in range(40)])
    # A lease long enough that no stall of this busy machine lets it lapse: the handover
    # here is the first one stopping, which gives its leases back at once.
    settings = dispatch_settings(webhook_lease_seconds=5.0)
    dispatchers = [
        Dispatcher(projector_url, keyring, settings, owner=owner) for owner in ("first", "second")
    ]
    running = [asyncio.create_task(d.run(follow=True)) for d in dispatchers]
    try:
        while len(receiver.seen()) < 30:
            await asyncio.sleep(0.01)
        held = {
            owner: set(d.workers) for owner, d in zip(("first", "second"), dispatchers, strict=True)
        }
        running[0].cancel()  # the first stops; the second takes its subscriptions over
        while any(
            subscription_row(database_url, h.webhook_id)["position"] != appended.positions[-1]
            for h in hooks
        ):
            await asyncio.sleep(0.02)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    assert not held["first"] & held["second"]
    ids = [str(event_id) for event_id in appended.event_ids]
    for hook in hooks:
        seen = receiver.seen(hook.path)
        got = [r.headers["webhook-id"] for r in seen]
        # A stop writes what was answered; only the delivery in flight may come again.
        assert [key for key, _ in itertools.groupby(got)] == ids and len(got) <= len(ids) + 1
        for before, after in itertools.pairwise(seen):
            assert after.started >= before.ended, "two deliveries at once for one subscription"


async def test_metrics_show_outcomes_lag_and_the_retry_queue(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    receiver.status = 500
    hook = subscribe(database_url, receiver.url)
    await ledger.append([noted(i) for i in range(3)])
    failed_before = WEBHOOK_DELIVERIES.labels("http_error")._value.get()
    settings = dispatch_settings(webhook_retry_schedule=(0.01, 60.0))
    lags: list[float] = []

    def waiting_for_retry() -> bool:
        lags.append(WEBHOOK_LAG.labels(str(hook.webhook_id))._value.get())
        return bool(WEBHOOK_RETRY_QUEUE._value.get() == 1)

    await run_until(Dispatcher(projector_url, keyring, settings), waiting_for_retry)

    assert lags[-1] == 3
    assert WEBHOOK_DELIVERIES.labels("http_error")._value.get() == failed_before + 2
    row = subscription_row(database_url, hook.webhook_id)
    assert row["attempts"] == 2 and row["enabled"]


async def test_a_secret_under_another_master_key_is_not_delivered_nor_held_against_it(
    ledger: Ledger, keyring: Keyring, database_url: str, projector_url: str, receiver: Receiver
) -> None:
    hook = subscribe(database_url, receiver.url)
    wrapped, kek_id = wrap_secret(new_master_key(), hook.secret)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE webhooks SET secret_wrapped = %s, kek_id = %s WHERE webhook_id = %s",
            [wrapped, kek_id, hook.webhook_id],
        )
    await ledger.append([noted(0)])

    await Dispatcher(projector_url, keyring, dispatch_settings()).run()

    assert receiver.seen() == [] and deliveries(database_url, hook.webhook_id) == []
    assert subscription_row(database_url, hook.webhook_id)["enabled"]
