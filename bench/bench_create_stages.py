"""Where a create spends its CPU, without HTTP: the write pipeline in process, stage by stage.

Runs `rest.create_object` for the benchmark's ~2 KiB Pod against the memory and the SQLite
backend (64 creates in flight, as the HTTP benchmark does) and prints microseconds per create for
the whole pipeline and for its stages (wall time inside each stage; with SQLite the writer thread
competes for the GIL, which shows up as longer stages). Compare the total with the HTTP benchmark's
server CPU per create (`bench/run.py --only writes`) to see what HTTP, TLS and aiohttp add.

    .venv/bin/python bench/bench_create_stages.py [--creates 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from controlplane.api import decoding, defaults, validation
from controlplane.api.patch import managed_fields
from controlplane.api.resources import default_registry
from controlplane.apiserver import rest, store
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.requestinfo import RequestInfo
from controlplane.apiserver.server import _bootstrap
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.storage import open_storage

STAGES: list[tuple[Any, str]] = [
    (decoding, "inspect"),
    (managed_fields, "update"),
    (validation, "validate"),
    (defaults, "apply_defaults"),
    (store, "_encode"),
]


def _timed(totals: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - started

    return wrapper


async def run(url: str, creates: int) -> dict[str, float]:
    storage = open_storage(url, compaction_interval=0)
    await storage.start()
    ips = ServiceIPAllocator(storage, "10.96.0.0/24")
    ctx = ServerContext(
        registry=default_registry(),
        storage=storage,
        store=store.ObjectStore(storage),
        services=ServiceAllocation(ips, NodePortAllocator(storage)),
    )
    await _bootstrap(ctx, ips.kubernetes_service_ip, 6443)
    info = ctx.registry.get("", "v1", "pods")
    assert info is not None
    ri = RequestInfo(True, "", verb="create", resource="pods", namespace="default")
    opts = rest.WriteOptions(dry_run=False, field_manager="bench", field_validation="Warn")
    pod = common.make_pod("x", "default")
    pod["metadata"].pop("generateName", None)
    totals: dict[str, float] = {}
    originals = [(module, name, getattr(module, name)) for module, name in STAGES]
    for module, name, fn in originals:
        setattr(module, name, _timed(totals, name, fn))
    gate = asyncio.Semaphore(64)

    async def one(index: int) -> None:
        async with gate:
            body = copy.deepcopy(pod)
            body["metadata"]["name"] = f"p{index}"
            await rest.create_object(ctx, info, ri, body, opts, [])

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(creates)))
        totals["total (wall)"] = time.perf_counter() - started
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)
        await storage.close()
    return {name: seconds / creates * 1e6 for name, seconds in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, url in (("memory", "memory://"), ("sqlite", f"sqlite:///{tmp}/state.db")):
            results = asyncio.run(run(url, args.creates))
            print(f"{label}: {results.pop('total (wall)'):.0f} us per create (whole pipeline, wall)")
            for name, micros in sorted(results.items(), key=lambda item: -item[1]):
                print(f"  {name:<16} {micros:6.0f} us")


if __name__ == "__main__":
    main()
