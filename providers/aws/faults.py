"""Fault injection for chaos tests, through botocore's event hooks: a share of the calls is
answered with a throttling or server error instead of being sent. Off unless the cloud config
asks for it, for a test run against moto (`pinnace server` runs in its own process, so a test
cannot register the hook itself):

    aws:
      faultInjection: {rate: 0.2, seed: 1}       # codes default to throttling and 5xx
      faultInjection: {rate: 0, latency: 0.3}    # every call 0.3 s slower (crash tests)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

from providers.errors import InvalidConfiguration

from .session import AwsClients

__all__ = ["DEFAULT_FAULTS", "FaultInjector", "install_from_options"]

log = logging.getLogger(__name__)

DEFAULT_FAULTS: tuple[tuple[str, int], ...] = (
    ("Throttling", 400),
    ("RequestLimitExceeded", 503),
    ("ServiceUnavailable", 503),
    ("InternalError", 500),
)


class FaultInjector:
    def __init__(
        self,
        clients: AwsClients,
        rate: float,
        *,
        seed: int | None = None,
        codes: Sequence[tuple[str, int]] = DEFAULT_FAULTS,
        latency: float = 0.0,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise InvalidConfiguration(f"fault injection rate {rate} is not within [0, 1]")
        if not 0.0 <= latency <= 60.0:
            raise InvalidConfiguration(f"fault injection latency {latency} is not within [0, 60] seconds")
        self.rate = rate
        self.latency = latency
        self.codes = tuple(codes)
        self.injected = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # the hook runs in SdkCaller's worker threads
        for client in (clients.ec2, clients.elb, clients.elbv2):
            # botocore's stubs type handlers as returning None; a before-call handler may answer.
            client.meta.events.register_first("before-call", cast(Callable[..., None], self._maybe_fail))

    def _maybe_fail(self, **kwargs: Any) -> tuple[Any, dict[str, Any]] | None:
        if self.latency:
            # A slow API widens the windows a crash test aims at; this runs in a worker thread.
            time.sleep(self.latency)
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            code, status = self._rng.choice(self.codes)
            self.injected += 1
            count = self.injected
        # Each one, so a chaos test can tell from the server's log that faults were really there.
        model = kwargs.get("model")
        log.info("injected fault %s into %s (%d so far)", code, getattr(model, "name", "?"), count)
        return (
            SimpleNamespace(status_code=status, headers={}),
            {
                "Error": {"Code": code, "Message": "injected fault"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
        )


def install_from_options(clients: AwsClients, options: Mapping[str, Any]) -> FaultInjector | None:
    spec = options.get("faultInjection")
    if not spec:
        return None
    if not isinstance(spec, Mapping):
        raise InvalidConfiguration("cloud config aws.faultInjection must be a mapping {rate, seed}")
    try:
        rate = float(spec.get("rate", 0.0))
        seed = spec.get("seed")
        latency = float(spec.get("latency", 0.0))
        injector = FaultInjector(clients, rate, seed=int(seed) if seed is not None else None, latency=latency)
    except (TypeError, ValueError) as exc:
        raise InvalidConfiguration(f"cloud config aws.faultInjection: {exc}") from exc
    log.warning(
        "aws: injecting faults into %.0f%% of the calls, %.2fs latency into each (cloud config aws.faultInjection)",
        rate * 100,
        latency,
    )
    return injector
