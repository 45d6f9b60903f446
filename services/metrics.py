"""The metrics a process counts itself: HTTP requests and appends (prometheus-client).

Under `serve --workers N`, `serve` sets PROMETHEUS_MULTIPROC_DIR before the workers
import this module, so each worker's values go to files there and every scrape sums them
(services/api/metrics.py); in one process they live in the default registry. The
projections' gauges are not here: they are read from the database at scrape time.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, disable_created_metrics

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
