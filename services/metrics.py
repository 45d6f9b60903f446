"""The metrics a process counts itself: HTTP requests and appends (prometheus-client).

Under `serve --workers N`, `serve` sets PROMETHEUS_MULTIPROC_DIR before the workers
import this module, so each worker's values go to files there and every scrape sums them
(services/api/metrics.py); in one process they live in the default registry. The
projections' gauges are not here: they are read from the database at scrape time.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The `_created` series do not exist in multiprocess mode; without them the two modes
# expose the same series.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "ledger_http_requests",
    "HTTP requests by method, route and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "ledger_http_request_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
APPENDED_EVENTS = Counter(
    "ledger_appended_events",
    "Events appended to the ledger (a retry that replays an earlier append adds none).",
)
APPEND_SECONDS = Histogram(
    "ledger_append_seconds",
    "Time from an append's call to its acknowledgement, the commit of its events.",
    buckets=(0.001, 0.0025, *LATENCY_BUCKETS),
)

# The webhook dispatcher's (services/webhooks/): counted by the process that delivers.
WEBHOOK_DELIVERIES = Counter(
    "ledger_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered (2xx), http_error, redirect, timeout, "
    "connection_error, refused (an unsafe target).",
    ["outcome"],
)
WEBHOOK_DELIVERY_SECONDS = Histogram(
    "ledger_webhook_delivery_seconds",
    "Time of one webhook delivery attempt, connecting included.",
    buckets=LATENCY_BUCKETS,
)
WEBHOOK_LAG = Gauge(
    "ledger_webhook_lag_events",
    "Events between a subscription's checkpoint and the head of the ledger.",
    ["webhook_id"],
    multiprocess_mode="livemax",
)
WEBHOOK_RETRY_QUEUE = Gauge(
    "ledger_webhook_retry_queue",
    "Subscriptions waiting to retry a failed delivery.",
    multiprocess_mode="livesum",
)
WEBHOOKS_DISABLED = Counter(
    "ledger_webhooks_disabled",
    "Subscriptions disabled after the last retry of a delivery failed.",
)
