"""Prometheus metrics of the storage layer, on the default registry."""

from __future__ import annotations

import functools
import time
from typing import Any, Literal

from prometheus_client import Counter, Gauge, Histogram

from controlplane.loop_metrics import LoopHistogram

__all__ = [
    "COMPACTIONS",
    "CURRENT_REVISION",
    "GROUP_COMMIT_BATCH_SIZE",
    "OPERATION_DURATION",
    "WATCHERS",
    "Operation",
    "timed",
]

Operation = Literal["get", "list", "create", "update", "delete"]

# Every storage call is timed, on the event loop: the lock-free kind (see loop_metrics).
OPERATION_DURATION = LoopHistogram(
    "pinnace_storage_operation_duration_seconds",
    "Latency of storage operations, from call to result (writes include the group commit).",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
GROUP_COMMIT_BATCH_SIZE = Histogram(
    "pinnace_storage_group_commit_batch_size",
    "Write requests committed together in one transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
WATCHERS = Gauge("pinnace_storage_watchers", "Open storage watches.")
CURRENT_REVISION = Gauge("pinnace_storage_current_revision", "The latest acknowledged revision.")
COMPACTIONS = Counter("pinnace_storage_compactions", "Completed compactions of the revision log.")


class timed:
    """Observes the block's duration in OPERATION_DURATION. A class rather than a
    @contextmanager: it wraps every storage call, and a generator per call costs more."""

    __slots__ = ("_child", "_started")

    def __init__(self, operation: Operation) -> None:
        self._child = _duration_child(operation)
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self._child.observe(time.perf_counter() - self._started)


@functools.cache
def _duration_child(operation: str) -> Any:
    # labels() hashes and validates on every call; the children are fixed, so look them up once.
    return OPERATION_DURATION.labels(operation=operation)
