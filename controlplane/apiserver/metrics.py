"""Prometheus metrics of the API server, named like upstream's apiserver_* series."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge

from controlplane.loop_metrics import LoopCounter, LoopGauge, LoopHistogram

__all__ = [
    "AUDIT_ERRORS",
    "AUDIT_EVENTS",
    "AUDIT_LEVELS",
    "AUTHENTICATED_USER_REQUESTS",
    "AUTHENTICATION_ATTEMPTS",
    "AUTH_FAILURES",
    "INFLIGHT",
    "REQUESTS",
    "REQUEST_DURATION",
    "SERVICE_ACCOUNT_LEGACY_TOKENS",
    "SERVICE_ACCOUNT_STALE_TOKENS",
    "SERVICE_ACCOUNT_VALID_TOKENS",
    "WATCHES",
    "audit_error",
    "audit_level",
    "authenticated_user",
    "authentication_attempt",
]

# Updated by every request, on the event loop: the lock-free kind (see loop_metrics).
REQUESTS = LoopCounter(
    "apiserver_request_total",
    "API requests by verb, group, resource, subresource and HTTP code.",
    ["verb", "group", "resource", "subresource", "code"],
)
REQUEST_DURATION = LoopHistogram(
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
INFLIGHT = LoopGauge(
    "apiserver_current_inflight_requests",
    "Requests being served, by kind (readOnly or mutating).",
    ["request_kind"],
)
AUTH_FAILURES = Counter(
    "apiserver_authentication_failures_total",
    "Requests that presented credentials which did not authenticate.",
)


# Upstream's authentication filter metrics (k8s.io/apiserver/pkg/endpoints/filters/metrics.go).
# prometheus_client exposes counters with the `_total` suffix: `authentication_attempts_total`.
AUTHENTICATION_ATTEMPTS = LoopCounter(
    "authentication_attempts",
    "Counter of authenticated attempts, by result (success, failure: no credentials, error: refused).",
    ["result"],
)
# Upstream's ServiceAccount token metrics (pkg/serviceaccount/metrics.go), `_total` added by the
# client library. A projected token carrying `warnafter` (the kubelet's, extended to a year) is
# stale once used past it: the client did not refresh it within the hour it asked for.
SERVICE_ACCOUNT_LEGACY_TOKENS = Counter(
    "serviceaccount_legacy_tokens", "Cumulative legacy service account tokens used"
)
SERVICE_ACCOUNT_STALE_TOKENS = Counter(
    "serviceaccount_stale_tokens", "Cumulative stale projected service account tokens used"
)
SERVICE_ACCOUNT_VALID_TOKENS = Counter(
    "serviceaccount_valid_tokens", "Cumulative valid projected service account tokens used"
)
AUTHENTICATED_USER_REQUESTS = LoopCounter(
    "authenticated_user_requests",
    "Counter of authenticated requests broken out by username.",
    ["username"],
)


@functools.cache
def _attempts(result: str) -> Any:
    return AUTHENTICATION_ATTEMPTS.labels(result=result)


def authentication_attempt(result: str) -> None:
    _attempts(result).inc()


@functools.cache
def _user_requests(username: str) -> Any:
    return AUTHENTICATED_USER_REQUESTS.labels(username=username)


def authenticated_user(username: str) -> None:
    """Upstream's compressUsername keeps the label set small: a few known names, else a bucket."""
    if username in ("admin", "client", "kube_proxy", "kubelet", "system:serviceaccount:kube-system:default"):
        label = username
    elif "@" in username:
        label = "email_id"
    else:
        label = "other"
    _user_requests(label).inc()


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


# Upstream's audit metrics (k8s.io/apiserver/pkg/audit/metrics.go).
AUDIT_EVENTS = Counter(
    "apiserver_audit_event_total", "Counter of audit events generated and sent to the audit backend."
)
AUDIT_ERRORS = Counter(
    "apiserver_audit_error_total",
    "Counter of audit events that failed to be audited properly, by plugin (buffered: dropped, log: not written).",
    ["plugin"],
)
AUDIT_LEVELS = Counter("apiserver_audit_level_total", "Counter of policy levels for audit events.", ["level"])


@functools.cache
def _audit_error(plugin: str) -> Any:
    return AUDIT_ERRORS.labels(plugin=plugin)


def audit_error(plugin: str) -> None:
    _audit_error(plugin).inc()


@functools.cache
def _audit_level(level: str) -> Any:
    return AUDIT_LEVELS.labels(level=level)


def audit_level(level: str) -> None:
    _audit_level(level).inc()
