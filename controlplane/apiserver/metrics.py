"""Prometheus metrics of the API server, named like upstream's apiserver_* series."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["AUTH_FAILURES", "INFLIGHT", "REQUESTS", "REQUEST_DURATION", "WATCHES"]

REQUESTS = Counter(
    "apiserver_request_total",
    "API requests by verb, group, resource, subresource and HTTP code.",
    ["verb", "group", "resource", "subresource", "code"],
)
REQUEST_DURATION = Histogram(
    "apiserver_request_duration_seconds",
    "API request latency by verb, group, resource and subresource (watches excluded).",
    ["verb", "group", "resource", "subresource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
WATCHES = Gauge(
    "apiserver_longrunning_requests",
    "Open watch requests by group and resource.",
    ["group", "resource"],
)
INFLIGHT = Gauge(
    "apiserver_current_inflight_requests",
    "Requests being served, by kind (readOnly or mutating).",
    ["request_kind"],
)
AUTH_FAILURES = Counter(
    "apiserver_authentication_failures_total",
    "Requests that presented credentials which did not authenticate.",
)


@functools.lru_cache(maxsize=4096)
def request_counter(verb: str, group: str, resource: str, subresource: str, code: str) -> Any:
    """Cached label children: prometheus_client's labels() validates and hashes on every call,
    a measurable share of a GET."""
    return REQUESTS.labels(verb=verb, group=group, resource=resource, subresource=subresource, code=code)


@functools.lru_cache(maxsize=4096)
def request_duration(verb: str, group: str, resource: str, subresource: str) -> Any:
    return REQUEST_DURATION.labels(verb=verb, group=group, resource=resource, subresource=subresource)


@functools.cache
def inflight(kind: str) -> Any:
    return INFLIGHT.labels(request_kind=kind)
