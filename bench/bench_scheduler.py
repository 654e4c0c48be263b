"""Scheduler throughput with upstream's scheduler_perf templates (SchedulingBasic,
TopologySpreading, SchedulingPodAffinity), binding through the API and durable storage.

Setup, as test/integration/scheduler_perf does it:
- nodes: 4 CPU / 32 Gi / 110 pods, Ready, labelled with their hostname and a zone (moon-1..3;
  one zone, zone1, for SchedulingPodAffinity), created through the API (no node agent);
- `initPods` pods placed first (scheduled, not measured), then `measurePods` pods created and
  timed until the last one is bound. Pods request 100m / 500Mi (pod-default.yaml);
  TopologySpreading's measured pods carry a DoNotSchedule zone constraint (maxSkew 5) and
  SchedulingPodAffinity's a required zone affinity to `color: blue` pods in sched-0/sched-1.
- throughput as upstream's SchedulingThroughput: the bound-pod count sampled every second from
  the first measured creation on (first sample skipped, empty intervals merged into the next),
  reported as the average and percentiles of the per-second samples.

Processes: `pinnace server --controllers= --disable-scheduler` on CPU 0; the scheduler in its own
process (`python -m controlplane scheduler --kubeconfig ... --no-leader-elect`) on CPU 1, as it
is deployed at scale, so its CPU can be read (and profiled) on its own; this process (creates
and the watch that counts bindings) also on CPU 1.

Same-run references:
- the pure algorithm: the same Scheduler against an in-memory fake API (informers fed by hand,
  each binding echoed back as the watch would), no HTTP: what the scheduler alone can do;
- the bare binding rate: POST pods/binding for pending pods from 64 concurrent clients with no
  scheduler running: what the server can absorb, i.e. the ceiling for any scheduler through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from common import (
    CLIENT_CPU,
    REPO,
    BenchResult,
    CpuMeter,
    PinnaceServer,
    Row,
    bare_server_args,
    pin_self_to_client_cpu,
    pinnace_server,
    pinned,
    print_result,
    scratch_dir,
)

Obj = dict[str, Any]

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
SAMPLE_INTERVAL = 1.0
CONCURRENCY = 64


# --- upstream's templates -----------------------------------------------------------------------


def make_node(name: str, zone: str) -> Obj:
    """templates/node-default.yaml, plus the hostname label a kubelet sets and the zone label of
    labelNodePrepareStrategy; allocatable = capacity (what the API server defaults it to)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    resources = {"pods": "110", "cpu": "4", "memory": "32Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {HOSTNAME: name, ZONE: zone}},
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "phase": "Running",
        },
    }


def _container() -> Obj:
    return {
        "image": "registry.k8s.io/pause:3.10.1",
        "name": "pause",
        "ports": [{"containerPort": 80}],
        "resources": {
            "limits": {"cpu": "100m", "memory": "500Mi"},
            "requests": {"cpu": "100m", "memory": "500Mi"},
        },
    }


def pod_default(name: str, namespace: str) -> Obj:
    """templates/pod-default.yaml"""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [_container()]},
    }


def pod_with_topology_spreading(name: str, namespace: str) -> Obj:
    """templates/pod-with-topology-spreading.yaml"""
    pod = pod_default(name, namespace)
    pod["metadata"]["labels"] = {"color": "blue"}
    pod["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 5,
            "topologyKey": ZONE,
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"color": "blue"}},
        }
    ]
    return pod


def pod_with_pod_affinity(name: str, namespace: str) -> Obj:
    """templates/pod-with-pod-affinity.yaml"""
    pod = pod_default(name, namespace)
    pod["metadata"]["labels"] = {"color": "blue"}
    pod["spec"]["affinity"] = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"color": "blue"}},
                    "topologyKey": ZONE,
                    "namespaces": ["sched-1", "sched-0"],
                }
            ]
        }
    }
    return pod


PodTemplate = Callable[[str, str], Obj]


@dataclass(frozen=True)
class Workload:
    name: str
    zones: tuple[str, ...]
    init_template: PodTemplate
    init_namespace: str
    measure_template: PodTemplate
    measure_namespace: str
    target: float  # upstream's CI floor, pods/s (SchedulingThroughput average)


WORKLOADS: dict[str, Workload] = {
    "SchedulingBasic": Workload(
        "SchedulingBasic", ("moon-1", "moon-2", "moon-3"), pod_default, "sched-0", pod_default, "sched-1", 680
    ),
    "TopologySpreading": Workload(
        "TopologySpreading",
        ("moon-1", "moon-2", "moon-3"),
        pod_default,
        "sched-0",
        pod_with_topology_spreading,
        "sched-1",
        460,
    ),
    "SchedulingPodAffinity": Workload(
        "SchedulingPodAffinity",
        ("zone1",),
        pod_with_pod_affinity,
        "sched-0",
        pod_with_pod_affinity,
        "sched-1",
        35,
    ),
}


def nodes_for(workload: Workload, count: int) -> list[Obj]:
    return [
        make_node(f"scheduler-perf-{i:05d}", workload.zones[i % len(workload.zones)]) for i in range(count)
    ]


# --- SchedulingThroughput ------------------------------------------------------------------------


@dataclass
class Throughput:
    pods: int
    seconds: float  # first measured create to last binding seen
    samples: list[float] = field(default_factory=list)
    cpu_seconds: float = math.nan  # of the scheduler's process over the run, when known

    @property
    def overall(self) -> float:
        return self.pods / self.seconds if self.seconds > 0 else math.nan

    @property
    def average(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else self.overall

    def perc(self, q: int) -> float:
        """Upstream's index: sorted[ceil(n*q/100) - 1]."""
        if not self.samples:
            return math.nan
        ordered = sorted(self.samples)
        return ordered[math.ceil(len(ordered) * q / 100) - 1]


def throughput_from(start: float, bound_at: Sequence[float], interval: float = SAMPLE_INTERVAL) -> Throughput:
    """throughputCollector.run over exact binding times: ticks every `interval` from `start`;
    the first tick with pods scheduled only starts the count; an interval with none is merged
    into the next one that has some, which records its rate once per merged interval."""
    times = sorted(bound_at)
    out = Throughput(len(times), (times[-1] - start) if times else 0.0)
    if not times:
        return out
    started = False
    last_count = 0
    skipped = 0
    idx = 0
    tick = start
    while True:
        tick += interval
        while idx < len(times) and times[idx] <= tick:
            idx += 1
        if idx == 0:
            continue
        if not started:
            started, last_count = True, idx
        elif idx == last_count:
            skipped += 1
        else:
            rate = (idx - last_count) / (interval * (skipped + 1))
            out.samples.extend([rate] * (skipped + 1))
            last_count, skipped = idx, 0
        if idx == len(times):
            break
    return out


# --- the pure algorithm: the Scheduler against an in-memory fake API ------------------------------


def _with_identity(pod: Obj, uid: str) -> Obj:
    pod["metadata"]["uid"] = uid
    pod["metadata"]["resourceVersion"] = "1"
    pod["spec"].setdefault("schedulerName", "default-scheduler")
    pod["status"] = {"phase": "Pending"}
    return pod


async def pure_run(
    workload: Workload, num_nodes: int, init_pods: int, measure_pods: int, profile: Path | None = None
) -> Throughput:
    """The real Scheduler (queue, cache, framework, binding cycle) with informers fed by hand; each
    binding is echoed back to the pod informer on the next loop iteration, as a watch would."""
    from controlplane.client import Client
    from controlplane.controllers.runtime import InformerFactory
    from controlplane.controllers.runtime import resources as R
    from controlplane.scheduler.scheduler import Scheduler

    client: Any = object.__new__(Client)  # never used: the informers are fed by hand
    factory = InformerFactory(client)
    loop = asyncio.get_running_loop()
    bound_at: dict[str, float] = {}
    pods_informer = factory.informer(R.PODS)
    target_ns = {workload.measure_namespace}
    all_bound = asyncio.Event()
    expected = [0]

    class EchoAPI:
        async def bind(self, pod: Any, node: str) -> None:
            meta = pod["metadata"]
            stored = pods_informer.get(f"{meta['namespace']}/{meta['name']}")
            assert stored is not None
            bound = {**stored, "spec": {**stored["spec"], "nodeName": node}}
            bound["metadata"] = {
                **stored["metadata"],
                "resourceVersion": str(int(stored["metadata"]["resourceVersion"]) + 1),
            }
            if meta["namespace"] in target_ns:
                bound_at[meta["name"]] = time.monotonic()
            loop.call_soon(pods_informer.apply, "MODIFIED", bound)
            if len(bound_at) >= expected[0]:
                all_bound.set()

        async def patch_pod_status(self, pod: Any, condition: Any, nominating: Any) -> None:
            return None

        async def preempt(self, victim: Any, preemptor: Any) -> None:
            return None

    sched = Scheduler(factory, EchoAPI(), None)
    for informer in factory.all():
        informer._synced.set()
    nodes = factory.informer(R.NODES)
    for n in nodes_for(workload, num_nodes):
        nodes.apply("ADDED", n)
    for ns in {workload.init_namespace, workload.measure_namespace}:
        factory.informer(R.NAMESPACES).apply(
            "ADDED", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        )
    stop = asyncio.Event()
    runner = asyncio.create_task(sched.run(stop))
    # initPods: scheduled, not measured.
    target_ns.clear()
    target_ns.add(workload.init_namespace)
    expected[0] = init_pods
    for i in range(init_pods):
        pods_informer.apply(
            "ADDED", _with_identity(workload.init_template(f"init-{i}", workload.init_namespace), f"init-{i}")
        )
    if init_pods:
        await all_bound.wait()
    bound_at.clear()
    all_bound.clear()
    target_ns.clear()
    target_ns.add(workload.measure_namespace)
    expected[0] = measure_pods
    gc.collect()
    profiler = cProfile.Profile() if profile is not None else None
    if profiler is not None:
        profiler.enable()
    start = time.monotonic()
    cpu_start = time.process_time()
    for i in range(measure_pods):
        pods_informer.apply(
            "ADDED",
            _with_identity(workload.measure_template(f"pod-{i}", workload.measure_namespace), f"pod-{i}"),
        )
        if i % 100 == 99:
            await asyncio.sleep(0)  # creations arrive over time, as from a watch
    await all_bound.wait()
    cpu_used = time.process_time() - cpu_start
    if profiler is not None:
        profiler.disable()
        assert profile is not None
        profiler.dump_stats(str(profile))
    stop.set()
    await runner
    result = throughput_from(start, list(bound_at.values()))
    result.cpu_seconds = cpu_used
    return result


# --- through the API: a real server, the scheduler in its own process ------------------------------


_NODE_NAME_KEY = b'"nodeName":'


class BindingWatch:
    """One watch on every pod: when each pod was first seen bound (spec.nodeName set)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self._http = http
        self._base = base
        self.bound_at: dict[str, dict[str, float]] = {}  # namespace -> name -> monotonic time
        self._waiters: list[tuple[str, int, asyncio.Event]] = []
        self._task: asyncio.Task[None] | None = None
        self.events = 0

    async def start(self) -> None:
        async with self._http.get(f"{self._base}/api/v1/pods", params={"limit": "1"}) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        params = {
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "false",
            "timeoutSeconds": "3600",
        }
        timeout = aiohttp.ClientTimeout(total=None)
        async with self._http.get(f"{self._base}/api/v1/pods", params=params, timeout=timeout) as resp:
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                if b"\n" not in buffer:
                    continue
                now = time.monotonic()
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    # Only a bound pod's event matters; the harness shares the scheduler's CPU, so
                    # it does not decode the others (a key in JSON is `"nodeName":`, unescaped).
                    if _NODE_NAME_KEY in line:
                        self._event(orjson.loads(line), now)
                    elif line.strip():
                        self.events += 1

    def _event(self, event: Obj, now: float) -> None:
        self.events += 1
        obj = event.get("object") or {}
        if not (obj.get("spec") or {}).get("nodeName"):
            return
        meta = obj["metadata"]
        seen = self.bound_at.setdefault(meta["namespace"], {})
        if meta["name"] in seen:
            return
        seen[meta["name"]] = now
        for namespace, count, done in self._waiters:
            if namespace == meta["namespace"] and len(seen) >= count:
                done.set()

    async def wait_bound(self, namespace: str, count: int, timeout: float) -> bool:
        done = asyncio.Event()
        if len(self.bound_at.get(namespace, {})) >= count:
            return True
        self._waiters.append((namespace, count, done))
        try:
            await asyncio.wait_for(done.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def post_all(
    http: aiohttp.ClientSession, url_and_bodies: Sequence[tuple[str, bytes]], concurrency: int = CONCURRENCY
) -> tuple[float, int]:
    """POST every body, `concurrency` at a time; (seconds taken, failures)."""
    queue = list(reversed(url_and_bodies))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while queue:
            url, body = queue.pop()
            for _ in range(5):
                async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status < 300:
                        break
                    if resp.status not in (429, 500, 503):
                        failures += 1
                        break
                await asyncio.sleep(0.2)
            else:
                failures += 1

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - start, failures


def _pods_url(base: str, namespace: str) -> str:
    return f"{base}/api/v1/namespaces/{namespace}/pods"


@dataclass
class ApiRun:
    throughput: Throughput
    server_cpu: float  # CPU seconds over the measured batch
    scheduler_cpu: float
    bench_cpu: float
    create_seconds: float
    failures: int
    unbound: int
    precreated: Throughput | None = None  # the same batch created first, then scheduled
    precreated_unbound: int = 0


def scheduler_command(kubeconfig: Path, profile: Path | None) -> list[str]:
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    return [
        sys.executable,
        *profiler,
        "-m",
        "controlplane",
        "--log-format",
        "text",
        "--log-level",
        "warning",
        "scheduler",
        "--kubeconfig",
        str(kubeconfig),
        "--no-leader-elect",
    ]


def start_scheduler(kubeconfig: Path, profile: Path | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        pinned(scheduler_command(kubeconfig, profile), CLIENT_CPU), cwd=REPO, stdout=subprocess.DEVNULL
    )


def stop_scheduler(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, so that a profiled scheduler writes its profile."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def api_run(
    server: PinnaceServer,
    workload: Workload,
    num_nodes: int,
    init_pods: int,
    measure_pods: int,
    profile: Path | None,
    timeout: float,
    precreate: bool = True,
) -> ApiRun:
    base = server.url
    connector = aiohttp.TCPConnector(ssl=server.client_ssl(), limit=CONCURRENCY + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        namespaces = sorted({workload.init_namespace, workload.measure_namespace})
        await post_all(
            http,
            [
                (
                    f"{base}/api/v1/namespaces",
                    orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                )
                for ns in namespaces
            ],
        )
        await post_all(
            http, [(f"{base}/api/v1/nodes", orjson.dumps(n)) for n in nodes_for(workload, num_nodes)]
        )
        watch = BindingWatch(http, base)
        await watch.start()
        proc = start_scheduler(server.data_dir / "admin.kubeconfig", profile)
        try:
            init = [
                (
                    _pods_url(base, workload.init_namespace),
                    orjson.dumps(workload.init_template(f"init-{i}", workload.init_namespace)),
                )
                for i in range(init_pods)
            ]
            await post_all(http, init)
            if not await watch.wait_bound(workload.init_namespace, init_pods, timeout):
                raise RuntimeError(
                    f"initPods not all bound: {len(watch.bound_at.get(workload.init_namespace, {}))}/{init_pods}"
                )
            measured = [
                (
                    _pods_url(base, workload.measure_namespace),
                    orjson.dumps(workload.measure_template(f"pod-{i}", workload.measure_namespace)),
                )
                for i in range(measure_pods)
            ]
            meter = CpuMeter([server.pid])
            sched_meter = CpuMeter([proc.pid])
            own_meter = CpuMeter([os.getpid()])
            for m in (meter, sched_meter, own_meter):
                m.start()
            start = time.monotonic()
            create_seconds, failures = await post_all(http, measured)
            await watch.wait_bound(workload.measure_namespace, measure_pods, timeout)
            cpus = tuple(m.total() - m.start_cpu for m in (meter, sched_meter, own_meter))
            bound = dict(watch.bound_at.get(workload.measure_namespace, {}))
            result = ApiRun(
                throughput_from(start, list(bound.values())),
                cpus[0],
                cpus[1],
                cpus[2],
                create_seconds,
                failures,
                measure_pods - len(bound),
            )
            if precreate:
                # The same batch again, created while no scheduler runs: what scheduling and
                # binding through the API sustain when pod creation is not in the way.
                await asyncio.to_thread(stop_scheduler, proc)
                late = [
                    (
                        _pods_url(base, workload.measure_namespace),
                        orjson.dumps(workload.measure_template(f"late-{i}", workload.measure_namespace)),
                    )
                    for i in range(measure_pods)
                ]
                await post_all(http, late)
                start = time.monotonic()
                proc = start_scheduler(server.data_dir / "admin.kubeconfig", None)
                await watch.wait_bound(workload.measure_namespace, 2 * measure_pods, timeout)
                times = [
                    t
                    for name, t in watch.bound_at.get(workload.measure_namespace, {}).items()
                    if name.startswith("late-")
                ]
                result.precreated = throughput_from(start, times)
                result.precreated_unbound = measure_pods - len(times)
        finally:
            await asyncio.to_thread(stop_scheduler, proc)
            await watch.stop()
        return result


async def api_ceiling(server: PinnaceServer, pods: int) -> tuple[float, float]:
    """With no scheduler running: the rate at which the server creates pending pods of the
    template, then binds them through pods/binding (64 at a time): (creates/s, bindings/s)."""
    base = server.url
    connector = aiohttp.TCPConnector(ssl=server.client_ssl(), limit=CONCURRENCY + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        namespace = "bind-baseline"
        await post_all(
            http,
            [
                (
                    f"{base}/api/v1/namespaces",
                    orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
                )
            ],
        )
        created, _ = await post_all(
            http,
            [
                (_pods_url(base, namespace), orjson.dumps(pod_default(f"b-{i}", namespace)))
                for i in range(pods)
            ],
        )
        bindings = [
            (
                f"{_pods_url(base, namespace)}/b-{i}/binding",
                orjson.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": f"b-{i}", "namespace": namespace},
                        "target": {"kind": "Node", "name": f"baseline-node-{i % 100}"},
                    }
                ),
            )
            for i in range(pods)
        ]
        bound, _ = await post_all(http, bindings)
        return pods / created, pods / bound


def run(
    *,
    workloads: Sequence[str] = tuple(WORKLOADS),
    nodes: int = 1000,
    init_pods: int = 1000,
    measure_pods: int = 5000,
    baseline_pods: int = 2000,
    pure: bool = True,
    api: bool = True,
    profile: Path | None = None,
    timeout: float = 600.0,
    server_args: Sequence[str] = (),
) -> BenchResult:
    pin_self_to_client_cpu()
    result = BenchResult(
        f"Scheduler throughput: {nodes:,} nodes, {init_pods:,} initPods, {measure_pods:,} measured pods"
    )
    for name in workloads:
        wl = WORKLOADS[name]
        label = f"{name} @{nodes} nodes"
        pure_tp: Throughput | None = None
        if pure:
            prof = profile / f"{name}-{nodes}-pure.prof" if profile is not None else None
            pure_tp = asyncio.run(pure_run(wl, nodes, init_pods, measure_pods, prof))
            result.rows.append(
                Row(
                    f"{label}: pure algorithm, in-memory fake API (no HTTP)",
                    pure_tp.average,
                    "pods/s",
                    target=f">= {wl.target:g} pods/s (the floor through the API)",
                )
            )
            result.rows.append(
                Row(
                    f"{label}: pure algorithm, scheduler CPU per pod ({pure_tp.pods / pure_tp.cpu_seconds:,.0f} pods per CPU-second)",
                    pure_tp.cpu_seconds / pure_tp.pods * 1e3,
                    "ms",
                )
            )
        if not api:
            continue
        with scratch_dir("pinnace-bench-sched-") as root:
            extra = [*bare_server_args(), *server_args]
            with pinnace_server(root, extra, name=f"scheduler-{name}-{nodes}") as server:
                prof = profile / f"{name}-{nodes}-scheduler.prof" if profile is not None else None
                out = asyncio.run(api_run(server, wl, nodes, init_pods, measure_pods, prof, timeout))
                creates, binds = asyncio.run(api_ceiling(server, baseline_pods))
        tp = out.throughput
        result.rows.append(
            Row(
                f"{label}: through the API, SchedulingThroughput average",
                tp.average,
                "pods/s",
                baseline=pure_tp.average if pure_tp is not None else None,
                baseline_label="pure algorithm",
                target=f">= {wl.target:g} pods/s",
                passed=tp.average >= wl.target and out.unbound == 0,
            )
        )
        result.rows.append(
            Row(
                f"{label}: through the API, per-second samples Perc50 / Perc90 / Perc99:"
                f" {tp.perc(50):.0f} / {tp.perc(90):.0f} / {tp.perc(99):.0f} pods/s ({len(tp.samples)} samples);"
                f" overall {tp.pods:,} pods in {tp.seconds:.1f} s",
                tp.overall,
                "pods/s",
            )
        )
        ceiling = 1.0 / (1.0 / creates + 1.0 / binds)
        result.rows.append(
            Row(
                f"{label}: server alone, no scheduler: {creates:,.0f} creates/s, {binds:,.0f} pods/binding/s"
                " -> create+bind ceiling",
                ceiling,
                "pods/s",
            )
        )
        span = max(tp.seconds, 1e-9)
        result.rows.append(
            Row(
                f"{label}: CPU while measured: server (CPU0) {100 * out.server_cpu / span:.0f} %, scheduler"
                f" (CPU1) {100 * out.scheduler_cpu / span:.0f} %, creator+watch (CPU1) {100 * out.bench_cpu / span:.0f} %"
                " of a core",
                100 * out.server_cpu / span,
                "% (server)",
            )
        )
        per_pod = (
            {"server": out.server_cpu / tp.pods, "scheduler": out.scheduler_cpu / tp.pods} if tp.pods else {}
        )
        for who, seconds in per_pod.items():
            result.rows.append(
                Row(
                    f"{label}: {who} CPU per measured pod (-> {1 / seconds:,.0f} pods/s on a core of its own)"
                    if seconds > 0
                    else f"{label}: {who} CPU per measured pod",
                    seconds * 1e3,
                    "ms",
                )
            )
        if out.precreated is not None:
            pre = out.precreated
            result.rows.append(
                Row(
                    f"{label}: through the API, the batch created before the scheduler starts"
                    f" (Perc50 {pre.perc(50):.0f}, {len(pre.samples)} samples)",
                    pre.average,
                    "pods/s",
                )
            )
        if out.failures or out.unbound or out.precreated_unbound:
            result.notes.append(
                f"{label}: {out.failures} failed creates, {out.unbound} pods not bound in time"
            )
        print(result.markdown(), flush=True) if os.environ.get("PINNACE_BENCH_PROGRESS") else None
    result.notes.append(
        "SchedulingThroughput as upstream's throughputCollector: bound-pod count sampled every 1 s from"
        " the first measured create, first sample skipped, empty intervals merged; targets judge the average"
    )
    result.notes.append(
        "server: `pinnace server --controllers= --disable-scheduler` on CPU0; scheduler: its own process"
        " (`python -m controlplane scheduler --kubeconfig ... --no-leader-elect`) on CPU1, beside this"
        " process (creates, 64 in flight, and the watch counting bindings)"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--nodes", default="1000", help="node counts, comma-separated (e.g. 1000,5000)")
    parser.add_argument("--init-pods", type=int, default=1000)
    parser.add_argument("--measure-pods", type=int, default=5000)
    parser.add_argument(
        "--measure-pods-at-5000",
        type=int,
        default=None,
        help="measured pods at 5000+ nodes (default: --measure-pods)",
    )
    parser.add_argument("--baseline-pods", type=int, default=2000, help="pods for the create/bind ceiling")
    parser.add_argument("--skip-pure", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for a batch to be bound"
    )
    parser.add_argument("--server-arg", action="append", default=[], help="extra `pinnace server` argument")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="cProfile the scheduler: DIR/<workload>-<nodes>-{pure,scheduler}.prof",
    )
    args = parser.parse_args()
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    for count in (int(n) for n in args.nodes.split(",")):
        measure = args.measure_pods
        if count >= 5000 and args.measure_pods_at_5000 is not None:
            measure = args.measure_pods_at_5000
        result = run(
            workloads=workloads,
            nodes=count,
            init_pods=args.init_pods,
            measure_pods=measure,
            baseline_pods=args.baseline_pods,
            pure=not args.skip_pure,
            api=not args.skip_api,
            profile=args.profile,
            timeout=args.timeout,
            server_args=args.server_arg,
        )
        print_result(result)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
