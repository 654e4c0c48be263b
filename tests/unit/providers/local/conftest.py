from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from providers.calls import SdkCaller
from providers.config import CloudConfig
from providers.local import LocalCloud, LocalSettings
from providers.local.cloud import translate


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


MakeCloud = Callable[..., LocalCloud]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_cloud(clock: FakeClock) -> Iterator[MakeCloud]:
    """A local cloud from `local:` options (and top-level config fields), with a fake clock and
    a caller that neither waits for the rate limit nor sleeps between retries."""
    made: list[LocalCloud] = []

    def make(cluster_id: str = "test", max_attempts: int = 8, **options: Any) -> LocalCloud:
        top = {k: options.pop(k) for k in ("region", "zone", "route_table_ids", "tags") if k in options}
        config = CloudConfig(cluster_id=cluster_id, provider_options={"local": options}, **top)
        caller = SdkCaller(translate, qps=1e6, burst=1_000_000, sleep=no_sleep, max_attempts=max_attempts)
        cloud = LocalCloud(LocalSettings.from_config(config), caller=caller, clock=clock)
        made.append(cloud)
        return cloud

    yield make
    for cloud in made:
        cloud.close()
