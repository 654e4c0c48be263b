"""scripts/kopf-e2e splits each pass of kopf's e2e suite into shards that run at once; every shard
computes the same assignment from the same collected list (scripts/kopf_e2e_shard.py), so the
shards must be disjoint, together the whole suite, and balanced by the tests' known costs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

PLUGIN = Path(__file__).resolve().parents[3] / "scripts" / "kopf_e2e_shard.py"

# What kopf 1.45.2's `pytest --collect-only --only-e2e examples tests/e2e` lists.
E2E = [
    "examples/09-testing/test_example_09.py::test_resource_lifecycle",
    "examples/10-builtins/test_example_10.py::test_pods_reacted",
    "examples/11-filtering-handlers/test_example_11.py::test_handler_filtering",
    *(
        f"tests/e2e/test_examples.py::test_all_examples_are_runnable[{name}]"
        for name in [
            "01-minimal",
            "02-children",
            "03-exceptions",
            "04-events",
            "05-handlers",
            "06-peering",
            "07-subhandlers",
            "08-events",
            "13-hooks",
            "14-daemons",
            "15-timers",
            "16-indexing",
            "17-admission",
            "99-all-at-once",
        ]
    ),
]


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kopf_e2e_shard", PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_test_is_in_exactly_one_shard_and_every_shard_has_work() -> None:
    plugin = _plugin()
    for count in (1, 2, 3, 4, len(E2E), len(E2E) + 3):
        shards = plugin.assign(E2E, count)
        assert len(shards) == len(E2E)
        assert all(0 <= shard < count for shard in shards)
        assert len(set(shards)) == min(count, len(E2E)), count


def test_the_assignment_depends_only_on_the_collected_list() -> None:
    plugin = _plugin()
    assert plugin.assign(E2E, 3) == plugin.assign(list(E2E), 3)
    # The same tests in another order land in the same shards.
    reordered = list(reversed(E2E))
    by_name = dict(zip(reordered, plugin.assign(reordered, 3), strict=True))
    assert [by_name[t] for t in E2E] == plugin.assign(E2E, 3)


def test_shards_are_balanced_by_cost() -> None:
    plugin = _plugin()
    shards = plugin.assign(E2E, 3)
    loads = [sum(plugin.cost(t) for t, s in zip(E2E, shards, strict=True) if s == i) for i in range(3)]
    # Longest first onto the least loaded shard: no shard exceeds another by more than one test.
    assert max(loads) - min(loads) <= max(plugin.cost(t) for t in E2E)
    assert plugin.cost(E2E[-1]) > plugin.cost(E2E[3])  # 99-all-at-once weighs more than 01-minimal
