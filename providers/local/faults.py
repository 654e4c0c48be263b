"""Fault injection, so the CCM's chaos tests can run against the local cloud too.

A seeded fraction of calls fail the way a busy cloud fails: `Throttled` (with an optional
retry-after) or `Transient` (a 5xx). A share of those faults happens *after* the call took
effect, as when a response is lost on the way back, which is what proves that retried creates
and deletes are idempotent.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Collection

from providers.errors import CloudError, Throttled, Transient

__all__ = ["FaultInjector"]


class FaultInjector:
    def __init__(
        self,
        rate: float = 0.0,
        *,
        seed: int = 0,
        throttle_share: float = 0.5,
        after_share: float = 0.0,
        retry_after: float | None = None,
        operations: Collection[str] | None = None,
    ) -> None:
        self.rate = rate
        self.throttle_share = throttle_share
        self.after_share = after_share
        self.retry_after = retry_after
        self.operations = frozenset(operations) if operations is not None else None
        self.injected: Counter[str] = Counter()  # "<operation>:<Throttled|Transient>:<before|after>"
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pending_after: set[int] = set()

    def configure(
        self,
        rate: float,
        *,
        seed: int | None = None,
        throttle_share: float | None = None,
        after_share: float | None = None,
        operations: Collection[str] | None = None,
    ) -> None:
        """Change the fault rate while running (a test turns chaos on, then off to let things settle)."""
        with self._lock:
            self.rate = rate
            if seed is not None:
                self._rng = random.Random(seed)
            if throttle_share is not None:
                self.throttle_share = throttle_share
            if after_share is not None:
                self.after_share = after_share
            self.operations = frozenset(operations) if operations is not None else None

    def _error(self, operation: str, phase: str) -> CloudError:
        if self._rng.random() < self.throttle_share:
            self.injected[f"{operation}:Throttled:{phase}"] += 1
            return Throttled(
                f"Rate exceeded (injected into {operation})", code="Throttling", retry_after=self.retry_after
            )
        self.injected[f"{operation}:Transient:{phase}"] += 1
        return Transient(
            f"We encountered an internal error. Please try again. (injected into {operation})",
            code="InternalError",
        )

    def before(self, operation: str, call_id: int) -> None:
        """Raise now (the call never happens), or remember to raise after it took effect."""
        with self._lock:
            if self.rate <= 0.0 or (self.operations is not None and operation not in self.operations):
                return
            if self._rng.random() >= self.rate:
                return
            if self._rng.random() < self.after_share:
                self._pending_after.add(call_id)
                return
            raise self._error(operation, "before")

    def after(self, operation: str, call_id: int) -> None:
        with self._lock:
            if call_id not in self._pending_after:
                return
            self._pending_after.discard(call_id)
            raise self._error(operation, "after")

    @property
    def total(self) -> int:
        return sum(self.injected.values())
