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


# With pytest-xdist (scripts/test runs `-n 2 --dist loadfile --no-loadscope-reorder`), each file
# goes whole to one worker, in collection order. Files that take a minute or more start first, the
# other integration files next, and the unit tests (hundreds of short files) last, where they fill
# the gap between the two workers' ends. Only the order of work changes, not what runs.
LONG_FIRST = ("test_kopf_e2e.py", "test_up.py", "test_workloads_e2e.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: the usual order
        return

    def rank(item: pytest.Item) -> int:
        if item.path.name in LONG_FIRST:
            return LONG_FIRST.index(item.path.name)
        return len(LONG_FIRST) + (0 if "integration" in item.path.parts else 1)

    items.sort(key=rank)  # stable: the order within each rank (and each file) is kept
