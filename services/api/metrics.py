"""Prometheus metrics without a dependency: request counts and latencies, appends, lag."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[int]] = {}
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.appended_events = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        counts = self.latency.setdefault((method, route), [0] * (len(BUCKETS) + 1))
        counts[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[(method, route)] += seconds

    def render(self, lags: dict[str, int]) -> str:
        lines = [
            "# HELP ledger_http_requests_total HTTP requests by method, route and status.",
            "# TYPE ledger_http_requests_total counter",
        ]
        for (method, route, status), count in sorted(self.requests.items()):
            lines.append(
                f'ledger_http_requests_total{{method="{method}",route="{route}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP ledger_http_request_seconds HTTP request latency.",
            "# TYPE ledger_http_request_seconds histogram",
        ]
        for (method, route), counts in sorted(self.latency.items()):
            labels = f'method="{method}",route="{route}"'
            cumulative = 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(
                    f'ledger_http_request_seconds_bucket{{{labels},le="{le}"}} {cumulative:g}'
                )
            lines.append(
                f"ledger_http_request_seconds_sum{{{labels}}} "
                f"{self.latency_sum[(method, route)]:.6f}"
            )
            lines.append(f"ledger_http_request_seconds_count{{{labels}}} {cumulative:g}")
        lines += [
            "# HELP ledger_appended_events_total Events appended through this process.",
            "# TYPE ledger_appended_events_total counter",
            f"ledger_appended_events_total {self.appended_events}",
            "# HELP ledger_projection_lag_events Events the live projection has still to apply.",
            "# TYPE ledger_projection_lag_events gauge",
        ]
        lines += [
            f'ledger_projection_lag_events{{projection="{n}"}} {lag}'
            for n, lag in sorted(lags.items())
        ]
        return "\n".join(lines) + "\n"


def metrics_middleware(metrics: Metrics) -> Any:
    """ASGI middleware factory that times every HTTP request by its route template."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def capture(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                route = scope.get("path_template") or "unmatched"
                method = str(scope.get("method", "GET"))
                metrics.observe(method, route, status, time.perf_counter() - started)

        return middleware

    return factory
