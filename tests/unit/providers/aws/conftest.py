"""Fixtures for the aws provider's unit tests: moto in process and a call recorder on the
clients' botocore event hooks (the same way the benchmarks count calls)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from providers.aws.faults import DEFAULT_FAULTS, FaultInjector
from providers.aws.session import AwsClients
from tests.unit.providers.aws.moto_env import AwsEnv, aws_env

MUTATING_PREFIXES = (
    "Create",
    "Delete",
    "Modify",
    "Register",
    "Deregister",
    "Authorize",
    "Revoke",
    "Replace",
    "Run",
    "Terminate",
    "Add",
    "Apply",
    "Attach",
    "Detach",
    "Configure",
    "Set",
    "Remove",
)


class Calls:
    """Every API call made through the clients (SdkCaller retries included), by operation name."""

    def __init__(self, clients: AwsClients) -> None:
        self.log: list[str] = []
        self.params: list[tuple[str, dict[str, Any]]] = []
        for client in (clients.ec2, clients.elb, clients.elbv2):
            # provide-client-params carries the parameters as the caller gave them, and fires
            # for every attempt, also those a fault hook answers.
            client.meta.events.register("provide-client-params", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.log.append(model.name)
        self.params.append((model.name, dict(params)))

    def count(self, name: str) -> int:
        return self.log.count(name)

    def mutating(self) -> list[str]:
        return [n for n in self.log if n.startswith(MUTATING_PREFIXES)]

    def by_name(self) -> Counter[str]:
        return Counter(self.log)

    def reset(self) -> None:
        self.log.clear()
        self.params.clear()


class Faults(FaultInjector):
    """The provider's own fault injector, with a switch for tests that aim at some calls only."""

    def __init__(
        self,
        clients: AwsClients,
        rate: float,
        *,
        seed: int = 7,
        codes: tuple[tuple[str, int], ...] = DEFAULT_FAULTS,
    ) -> None:
        self.only: set[str] | None = None
        super().__init__(clients, rate, seed=seed, codes=codes)

    def _maybe_fail(self, **kwargs: Any) -> tuple[Any, dict[str, Any]] | None:
        if self.only is not None and kwargs["model"].name not in self.only:
            return None
        return super()._maybe_fail(**kwargs)


@pytest.fixture
def env() -> Iterator[AwsEnv]:
    with aws_env() as value:
        yield value


@pytest.fixture
def calls(env: AwsEnv) -> Calls:
    return Calls(env.clients)
