"""A pytest plugin that scripts/kopf-e2e loads into kopf's own pytest run (`-p kopf_e2e_shard`) to
run one shard of kopf's e2e suite; nothing of kopf's is edited.

kopf's e2e tests all drive the same CRD and the same object (examples/obj.yaml, default/
kopf-example-1), so they cannot share a server at once; but each of them mostly sleeps (its fixed
waits: 3 s after a create and after a delete, up to 10 s for a start-up line), so several servers,
each with its own run of a part of the suite, finish in a fraction of the time one run takes.

Every shard collects the whole suite, as kopf's CI would, and keeps the tests assigned to it by
`assign`, which sees the same list in every shard: the shards are disjoint and together the whole
suite, by construction. Each shard writes what it collected and what it kept to
$PINNACE_KOPF_SHARD_REPORT, and the script checks that, too, before it counts a pass as complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHARD_ENV = "PINNACE_KOPF_SHARD"  # "<index>/<count>", index from 0
REPORT_ENV = "PINNACE_KOPF_SHARD_REPORT"

# Seconds a test takes on a 2-core machine (kopf-e2e's --durations), for the balance only: a test
# not named here counts as the usual ~7.5 s (start-up, 3 s after the create, 3 s after the delete).
COST = {"99-all-at-once": 18.0, "13-hooks": 17.0, "11-filtering-handlers": 9.0}
USUAL_COST = 7.5


def cost(nodeid: str) -> float:
    return next((seconds for name, seconds in COST.items() if name in nodeid), USUAL_COST)


def assign(nodeids: list[str], count: int) -> list[int]:
    """The shard of each test: longest first, each to the shard with the least work so far (the
    lowest index on a tie). Deterministic, so every shard computes the same assignment."""
    load = [0.0] * count
    shards = [0] * len(nodeids)
    for i in sorted(range(len(nodeids)), key=lambda i: (-cost(nodeids[i]), nodeids[i])):
        shard = min(range(count), key=lambda s: (load[s], s))
        shards[i] = shard
        load[shard] += cost(nodeids[i])
    return shards


@pytest.hookimpl(trylast=True)  # after kopf's conftest has narrowed the items to the e2e tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    spec = os.environ.get(SHARD_ENV)
    if not spec:
        return
    index, count = (int(part) for part in spec.split("/"))
    nodeids = [item.nodeid for item in items]
    shards = assign(nodeids, count)
    kept = [item for item, shard in zip(items, shards, strict=True) if shard == index]
    dropped = [item for item, shard in zip(items, shards, strict=True) if shard != index]
    report = os.environ.get(REPORT_ENV)
    if report:
        selected = [item.nodeid for item in kept]
        Path(report).write_text(json.dumps({"collected": nodeids, "selected": selected}))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
