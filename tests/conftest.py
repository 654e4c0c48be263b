"""Settings shared by every test."""

import asyncio
import gc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# CI machines are shared and have 2 cores: how long an example takes to generate or run says
# nothing about correctness there, so the timing health checks and deadlines are off. Every
# other health check (filtering too much, data too large, ...) still fails a test.
settings.register_profile(
    "pinnace",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("pinnace")


@pytest.fixture(autouse=True)
def _process_settings_restored() -> Iterator[None]:
    """Tests that run a long-running command's CLI in-process (`pinnace provisioner` on a bad
    flag, say) get, as the real process would, uvloop's event loop policy and the tuned collector
    thresholds (controlplane.event_loop, controlplane.gc_policy); both are process-wide, so each
    test gets back the ones it started with. Otherwise whichever tests happen to run later in the
    same process inherit them: asyncio.Server checks fail on uvloop's server, for one."""
    policy = asyncio.get_event_loop_policy()
    thresholds = gc.get_threshold()
    yield
    if asyncio.get_event_loop_policy() is not policy:
        asyncio.set_event_loop_policy(policy)
    if gc.get_threshold() != thresholds:
        gc.set_threshold(*thresholds)
