"""Density: 1,000 simulated nodes, 30,000 pods created through Deployments; pod startup latency,
mutating API call latency and control-plane memory (upstream's density test, in small).

Processes: a real `pinnace server` (all controllers and the in-process scheduler, its defaults)
pinned to CPU 0. On CPU 1: ONE `pinnace node-agent --nodes N` process playing every node (leases
renewed every 10 s as upstream, node status reported every 5 min, the kubelet's default when
leases carry the heartbeat), this process (creates the Deployments and watches the pods), and a
probe process doing a small steady rate of ConfigMap create/update/delete.

Workload, after upstream's clusterloader2 `testing/density` (deployment.yaml, config.yaml):
- "saturation" pods: `deployments` Deployments sharing `pods` replicas, pause containers
  requesting 1m CPU / 10M memory with 900 s not-ready/unreachable tolerations, spread over one
  namespace per 100 nodes. Deployment i is created at t0 + (replicas before it) / `rate`, so the
  offered load is a steady `rate` pods/s (upstream's DENSITY_TEST_THROUGHPUT, default 20).
- "latency" pods (upstream's SLO measurement): after every saturation pod runs,
  `latency_pods` Deployments of 1 replica (100m CPU / 350M memory) created at 5/s.

Definitions. Every time is read in this process when it read the watch event off its stream:
`time.monotonic()` (CLOCK_MONOTONIC) for intervals, `time.time()` only to compare with the
server's timestamps, which have one-second precision and so are too coarse to measure with.
- ADDED: the pod's first watch event (the replica set controller created it).
- bound: first event with `spec.nodeName` (the scheduler's binding).
- Running: first event with `status.phase == Running` (every container started).
- Ready: first event with the `Ready` condition `True`.
- **pod startup latency** = t(Running observed) - t(ADDED observed), both on this process's
  watch: the same stream, so the watch's own delay cancels out to the extent it is steady. This
  is upstream's SLI (creation to "all containers reported started, observed via watch") with the
  creation time read off the watch instead of the one-second creationTimestamp. Target p99 <= 5 s.
  Ready is reported too (the same event for pause pods without probes).
- The conservative bound `wall(Running observed) - creationTimestamp` overstates by up to 1 s
  (the timestamp is floored to the second); `wall(ADDED observed) - creationTimestamp` bounds the
  watch's delay in delivering ADDED (true delay is between that value minus 1 s and it).
- **mutating API latency**: the probe's ConfigMap POST, PUT and DELETE, from send to last byte,
  open loop (cycles start on a fixed schedule whatever earlier ones do); target p99 <= 1 s. The
  server's `apiserver_request_duration_seconds` histogram (every client: controllers, scheduler,
  node agent, this bench) is read before and after the load, and the p99 of the difference is
  computed per (verb, resource) like Prometheus' histogram_quantile.
- control-plane RSS: VmRSS of the server process (API server, storage, every controller and the
  scheduler), sampled every second; goal peak <= 2 GiB.

    .venv/bin/python bench/bench_density.py --nodes 100 --pods 3000 --deployments 30
    .venv/bin/python bench/bench_density.py                         # 1000 nodes, 30,000 pods
    .venv/bin/python bench/bench_density.py --profile /tmp/prof     # server and agent under cProfile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import common
import orjson
from common import (
    CLIENT_CPU,
    BenchResult,
    CpuMeter,
    PinnaceServer,
    Row,
    client_ssl_context,
    percentile,
    pin_self_to_client_cpu,
    pinnace_server,
    pinned,
    print_result,
    proc_rss_kib,
    scratch_dir,
)

NODES_PER_NAMESPACE = 100  # upstream's NODES_PER_NAMESPACE
PROBE_NAMESPACE = "density-probe"
SATURATION = "saturation"
LATENCY = "latency"
JSON = {"Content-Type": "application/json"}
IDLE_WINDOW = 20.0  # seconds of nodes without pods, measured before the load: two lease periods
MUTATING_VERBS = frozenset(
    {"CREATE", "POST", "UPDATE", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"}
)


# --- workload ----------------------------------------------------------------------------------------


def deployment(name: str, namespace: str, replicas: int, group: str, cpu: str, memory: str) -> dict[str, Any]:
    """clusterloader2's density deployment.yaml."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"group": group}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"name": name}},
            "template": {
                "metadata": {"labels": {"name": name, "group": group}},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": "registry.k8s.io/pause:3.9",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}},
                        }
                    ],
                    "tolerations": [
                        {
                            "key": "node.kubernetes.io/not-ready",
                            "operator": "Exists",
                            "effect": "NoExecute",
                            "tolerationSeconds": 900,
                        },
                        {
                            "key": "node.kubernetes.io/unreachable",
                            "operator": "Exists",
                            "effect": "NoExecute",
                            "tolerationSeconds": 900,
                        },
                    ],
                },
            },
        },
    }


def cpu_busy_seconds(cpu: int) -> float:
    """Time one CPU spent not idle (every process on it), from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                ticks = [int(x) for x in line.split()[1:]]
                idle = ticks[3] + ticks[4]  # idle + iowait
                return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return math.nan


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def cluster_cidr(nodes: int) -> str:
    """A range with a /24 for every node (the server's default /16 holds 256): upstream sizes
    --cluster-cidr to the cluster, and a node without a podCIDR delays its first pod."""
    prefix = max(8, min(16, 24 - math.ceil(math.log2(max(nodes, 2))) - 1))
    return f"10.0.0.0/{prefix}"


# --- what the watch saw ----------------------------------------------------------------------------


@dataclass
class PodTimes:
    group: str
    created: float  # creationTimestamp, epoch seconds, floored to the second by the server
    added: float  # monotonic, first event seen
    added_wall: float
    first_event: str
    bound: float = math.nan
    running: float = math.nan
    running_wall: float = math.nan
    ready: float = math.nan
    deleted: float = math.nan  # monotonic, DELETED seen (the replica set removed it)


def _parse_time(value: Any) -> float:
    if not isinstance(value, str) or not value:
        return math.nan
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


@dataclass
class PodWatch:
    """One cluster-wide watch of the benchmark's pods (label `group`), resumed from the last
    resourceVersion when the stream ends; a 410 relists (pods then count as seen at list time)."""

    url: str
    rv: str
    pods: dict[str, PodTimes] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    deleted: int = 0
    relists: int = 0
    reconnects: int = 0
    events: int = 0
    bytes: int = 0
    targets: dict[str, int] = field(default_factory=dict)
    done: dict[str, asyncio.Event] = field(default_factory=dict)

    SELECTOR = f"group in ({SATURATION},{LATENCY})"

    def expect(self, group: str, count: int) -> asyncio.Event:
        self.targets[group] = count
        event = self.done.setdefault(group, asyncio.Event())
        self._check(group)
        return event

    def count(self, group: str, stage: str) -> int:
        return self.counts.get(group, {}).get(stage, 0)

    def _bump(self, group: str, stage: str) -> None:
        per = self.counts.setdefault(group, {})
        per[stage] = per.get(stage, 0) + 1
        if stage == "running":
            self._check(group)

    def live(self, group: str) -> int:
        """Pods of the group Running now: seen Running and not deleted since."""
        return self.count(group, "running") - self.count(group, "gone")

    def _check(self, group: str) -> None:
        target = self.targets.get(group)
        if target is not None and self.live(group) >= target and group in self.done:
            self.done[group].set()

    def observe(self, kind: str, obj: dict[str, Any], t: float, wall: float) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        group = (meta.get("labels") or {}).get("group")
        if not uid or group not in (SATURATION, LATENCY):
            return
        rec = self.pods.get(uid)
        if kind == "DELETED":
            self.deleted += 1
            if rec is not None and math.isnan(rec.deleted):
                rec.deleted = t
                self._bump(group, "deleted")
                if not math.isnan(rec.running):
                    self._bump(group, "gone")
            return
        if rec is None:
            rec = PodTimes(group, _parse_time(meta.get("creationTimestamp")), t, wall, kind)
            self.pods[uid] = rec
            self._bump(group, "added")
        if math.isnan(rec.bound) and (obj.get("spec") or {}).get("nodeName"):
            rec.bound = t
            self._bump(group, "bound")
        status = obj.get("status") or {}
        if math.isnan(rec.running) and status.get("phase") == "Running":
            rec.running, rec.running_wall = t, wall
            self._bump(group, "running")
        if math.isnan(rec.ready):
            for cond in status.get("conditions") or ():
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    rec.ready = t
                    self._bump(group, "ready")
                    break

    async def run(self, sess: aiohttp.ClientSession) -> None:
        while True:
            try:
                await self._stream(sess)
            except asyncio.CancelledError:
                raise
            except _Expired:
                await self._relist(sess)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                print(f"density: pod watch broke ({exc!r}); resuming", file=sys.stderr, flush=True)
                await asyncio.sleep(0.5)
            self.reconnects += 1

    async def _stream(self, sess: aiohttp.ClientSession) -> None:
        params = {
            "watch": "true",
            "resourceVersion": self.rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "3600",
            "labelSelector": self.SELECTOR,
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with sess.get(self.url + "/api/v1/pods", params=params, timeout=timeout) as resp:
            if resp.status != 200:
                raise ValueError(f"watch answered {resp.status}: {(await resp.read())[:300]!r}")
            pending = b""
            async for data in resp.content.iter_any():
                t, wall = time.monotonic(), time.time()
                self.bytes += len(data)
                buf = pending + data if pending else data
                lines = buf.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if not line.strip():
                        continue
                    event = orjson.loads(line)
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            raise _Expired
                        raise ValueError(f"watch error: {obj.get('message')}")
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self.rv = str(rv)
                    if kind == "BOOKMARK":
                        continue
                    self.events += 1
                    self.observe(str(kind), obj, t, wall)

    async def _relist(self, sess: aiohttp.ClientSession) -> None:
        self.relists += 1
        async with sess.get(self.url + "/api/v1/pods", params={"labelSelector": self.SELECTOR}) as resp:
            body = orjson.loads(await resp.read())
        t, wall = time.monotonic(), time.time()
        for obj in body.get("items") or []:
            self.observe("LISTED", obj, t, wall)
        self.rv = str(body["metadata"]["resourceVersion"])


class _Expired(Exception):
    pass


# --- the server's request latency histogram ------------------------------------------------------------

_BUCKET = re.compile(r"^apiserver_request_duration_seconds_bucket\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Histograms = dict[tuple[str, str, str], dict[float, float]]  # (verb, resource, sub) -> le -> count


def parse_histograms(text: str) -> Histograms:
    out: Histograms = {}
    for line in text.splitlines():
        m = _BUCKET.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(1)))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        out.setdefault(key, {})[le] = float(m.group(2))
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over cumulative bucket counts (linear within a bucket)."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return prev_bound  # as Prometheus: the highest finite bound
            in_bucket = count - prev_count
            return prev_bound + (le - prev_bound) * ((rank - prev_count) / in_bucket if in_bucket else 1.0)
        prev_bound, prev_count = le, count
    return prev_bound


def histogram_delta(after: Histograms, before: Histograms) -> Histograms:
    out: Histograms = {}
    for key, buckets in after.items():
        base = before.get(key, {})
        out[key] = {le: n - base.get(le, 0.0) for le, n in buckets.items()}
    return out


def merge(histograms: Iterable[dict[float, float]]) -> dict[float, float]:
    out: dict[float, float] = {}
    for buckets in histograms:
        for le, n in buckets.items():
            out[le] = out.get(le, 0.0) + n
    return out


# --- the mutating-call probe (its own process) ----------------------------------------------------------


async def _probe_child(url: str, pki: Path, rate: float) -> None:
    """ConfigMap create -> update -> delete cycles, started at rate/3 per second whatever earlier
    cycles are doing (open loop, so a stalled server shows as latency, not as fewer samples).
    Runs until a line arrives on stdin, then prints [[t_start, verb, seconds, status], ...]."""
    ssl_ctx = client_ssl_context(pki)
    base = f"{url}/api/v1/namespaces/{PROBE_NAMESPACE}/configmaps"
    samples: list[tuple[float, str, float, int]] = []
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=16)
    timeout = aiohttp.ClientTimeout(total=120)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stdin_ready() -> None:
        loop.remove_reader(sys.stdin.fileno())
        stop.set()

    loop.add_reader(sys.stdin.fileno(), stdin_ready)

    async def call(sess: aiohttp.ClientSession, verb: str, method: str, path: str, body: Any) -> Any:
        t0 = time.monotonic()
        try:
            async with sess.request(method, path, data=orjson.dumps(body), headers=JSON) as resp:
                data = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            data, status = b"", 0
        samples.append((t0, verb, time.monotonic() - t0, status))
        return orjson.loads(data) if status in (200, 201) else None

    async def cycle(sess: aiohttp.ClientSession, k: int) -> None:
        name = f"probe-{k:07d}"
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "0"}}
        created = await call(sess, "POST", "POST", base, body)
        if created is None:
            return
        created["data"] = {"k": "1"}
        await call(sess, "PUT", "PUT", f"{base}/{name}", created)
        await call(sess, "DELETE", "DELETE", f"{base}/{name}", {"kind": "DeleteOptions", "apiVersion": "v1"})

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as sess:
        print("ready", flush=True)
        tasks: set[asyncio.Task[None]] = set()
        start = loop.time()
        k = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, start + k * 3.0 / rate - loop.time()))
            if stop.is_set():
                break
            task = asyncio.create_task(cycle(sess, k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.wait(tasks, timeout=60)
    sys.stdout.buffer.write(orjson.dumps(samples) + b"\n")
    sys.stdout.flush()


# --- the node agent process ----------------------------------------------------------------------------


class NodeAgentProcess:
    """`pinnace node-agent --nodes N` pinned to the client CPU; stopped with SIGTERM."""

    def __init__(self, server: PinnaceServer, root: Path, nodes: int, extra: Sequence[str]) -> None:
        self.profile = common.PROFILE_DIR / "density-agent.prof" if common.PROFILE_DIR is not None else None
        profiler = ["-m", "cProfile", "-o", str(self.profile)] if self.profile is not None else []
        self.cmd = [
            sys.executable,
            *profiler,
            "-m",
            "controlplane",
            "--log-format",
            "text",
            "--log-level",
            "warning",
            "node-agent",
            "--kubeconfig",
            str(server.data_dir / "admin.kubeconfig"),
            "--nodes",
            str(nodes),
            "--node-name-prefix",
            "density-node",
            "--address",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(root / "agent"),
            "--node-status-update-frequency",
            "60s",
            "--node-status-report-frequency",
            "5m",
            *extra,
        ]
        self.log_path = root / "node-agent.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = math.nan

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            pinned(self.cmd, CLIENT_CPU), cwd=common.REPO, stdout=self._log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Samples:
    server_rss_peak: int = 0
    agent_rss_peak: int = 0
    server_rss_last: int = 0
    agent_rss_last: int = 0
    lease_age_max: float = 0.0  # oldest Lease renewTime seen, seconds behind the wall clock
    leases_expired_max: int = 0  # most Leases older than their duration at one time
    tainted_max: int = 0  # most nodes with the unreachable or not-ready taint at one time


@dataclass
class DensityRun:
    nodes: int
    pods: int
    deployments: int
    rate: float
    latency_pods: int
    watch: PodWatch | None = None
    probe: list[tuple[float, str, float, int]] = field(default_factory=list)
    hist: Histograms = field(default_factory=dict)
    samples: Samples = field(default_factory=Samples)
    register_seconds: float = math.nan
    saturation_seconds: float = math.nan  # first deployment created -> last saturation pod Running
    latency_seconds: float = math.nan
    wall_seconds: float = math.nan
    server_cpu: float = 0.0
    agent_cpu: float = 0.0
    agent_cpu_seconds: float = 0.0
    bench_cpu: float = 0.0
    server_cpu_seconds: float = 0.0
    rolled_out: int = 0
    failed_creates: int = 0
    timed_out: list[str] = field(default_factory=list)
    server_rss_idle: int = 0
    server_rss_after_nodes: int = 0
    idle_server_cpu: float = math.nan
    idle_agent_cpu: float = math.nan
    cpu0_others: float = math.nan
    server_warnings: dict[str, tuple[str, int]] = field(default_factory=dict)


def _log(msg: str) -> None:
    print(f"density [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def _get_json(sess: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with sess.get(url, params=params) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {url} answered {resp.status}: {body[:300]!r}")
        return orjson.loads(body)


async def _wait_nodes(sess: aiohttp.ClientSession, url: str, nodes: int, agent: NodeAgentProcess) -> None:
    """Every node registered, Ready and given a podCIDR."""
    while True:
        if not agent.alive():
            raise RuntimeError("node agent exited:\n" + agent.log_tail())
        body = await _get_json(sess, url + "/api/v1/nodes")
        ready = sum(
            1
            for n in body.get("items") or []
            if (n.get("spec") or {}).get("podCIDR")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        )
        if ready >= nodes:
            return
        _log(f"{len(body.get('items') or [])} nodes registered, {ready} ready with a podCIDR")
        await asyncio.sleep(2.0)


async def _create(sess: aiohttp.ClientSession, url: str, body: dict[str, Any], run: DensityRun) -> None:
    for attempt in range(5):
        async with sess.post(url, data=orjson.dumps(body), headers=JSON) as resp:
            data = await resp.read()
            if resp.status in (201, 409):
                return
        _log(
            f"create {body['metadata']['name']} answered {resp.status} ({data[:200]!r}); retry {attempt + 1}"
        )
        await asyncio.sleep(1.0)
    run.failed_creates += 1


async def _create_paced(
    sess: aiohttp.ClientSession, url: str, bodies: list[dict[str, Any]], offsets: list[float], run: DensityRun
) -> None:
    """Create bodies[i] at start + offsets[i] (open loop)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for body, offset in zip(bodies, offsets, strict=True):
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        ns = body["metadata"]["namespace"]
        tasks.append(
            asyncio.create_task(_create(sess, f"{url}/apis/apps/v1/namespaces/{ns}/deployments", body, run))
        )
    await asyncio.gather(*tasks)


NODE_PROBLEM_TAINTS = frozenset({"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"})


async def _heartbeat_health(sess: aiohttp.ClientSession, url: str, run: DensityRun) -> None:
    """Every 10 s: how far behind the node Leases are; every 30 s: how many nodes are tainted as
    unreachable or not ready (late Leases make the node lifecycle controller do that)."""
    s = run.samples
    rounds = 0
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
            leases = await _get_json(
                sess, url + "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
            )
            now = time.time()
            expired = 0
            for lease in leases.get("items") or []:
                spec = lease.get("spec") or {}
                age = now - _parse_time(spec.get("renewTime"))
                if not math.isnan(age):
                    s.lease_age_max = max(s.lease_age_max, age)
                    expired += age > float(spec.get("leaseDurationSeconds") or 40)
            s.leases_expired_max = max(s.leases_expired_max, expired)
            if rounds % 3 == 0:
                nodes = await _get_json(sess, url + "/api/v1/nodes")
                tainted = sum(
                    1
                    for n in nodes.get("items") or []
                    if any(
                        t.get("key") in NODE_PROBLEM_TAINTS for t in (n.get("spec") or {}).get("taints") or []
                    )
                )
                s.tainted_max = max(s.tainted_max, tainted)
        rounds += 1
        await asyncio.sleep(10.0)


async def _sampler(run: DensityRun, server_pid: int, agent: NodeAgentProcess, meters: list[CpuMeter]) -> None:
    """RSS every second; progress every 15 s."""
    s = run.samples
    last_print = 0.0
    while True:
        with contextlib.suppress(OSError):
            s.server_rss_last = proc_rss_kib(server_pid)
            s.server_rss_peak = max(s.server_rss_peak, s.server_rss_last)
        with contextlib.suppress(OSError):
            s.agent_rss_last = proc_rss_kib(agent.pid)
            s.agent_rss_peak = max(s.agent_rss_peak, s.agent_rss_last)
        now = time.monotonic()
        if now - last_print >= 15 and run.watch is not None:
            last_print = now
            w = run.watch
            stages = "/".join(str(w.count(SATURATION, k)) for k in ("added", "bound", "running", "deleted"))
            lat = "/".join(str(w.count(LATENCY, k)) for k in ("added", "bound", "running", "deleted"))
            _log(
                f"saturation added/bound/running/deleted {stages}; latency {lat}; server RSS "
                f"{s.server_rss_last / 1024:.0f} MiB, CPU {meters[0].percent():.0f}%; agent RSS "
                f"{s.agent_rss_last / 1024:.0f} MiB, CPU {meters[1].percent():.0f}%"
            )
            if not agent.alive():
                _log("node agent exited:\n" + agent.log_tail())
        await asyncio.sleep(1.0)


async def _drive(
    server: PinnaceServer,
    agent: NodeAgentProcess,
    root: Path,
    run: DensityRun,
    probe_rate: float,
    timeout: float,
) -> None:
    url = server.url
    ssl_ctx = server.client_ssl()
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=32)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as sess:
        t0 = agent.started_at
        await _wait_nodes(sess, url, run.nodes, agent)
        run.register_seconds = time.monotonic() - t0
        _log(f"{run.nodes} nodes ready after {run.register_seconds:.0f} s")
        await asyncio.sleep(2.0)
        run.server_rss_after_nodes = proc_rss_kib(server.pid)
        # What the nodes alone cost: leases every 10 s, node status, the node lifecycle monitor.
        idle = [CpuMeter([server.pid]), CpuMeter([agent.pid])]
        for m in idle:
            m.start()
        await asyncio.sleep(IDLE_WINDOW)
        run.idle_server_cpu, run.idle_agent_cpu = (m.percent() for m in idle)

        namespaces = [f"density-{i + 1}" for i in range(max(1, run.nodes // NODES_PER_NAMESPACE))]
        for ns in [*namespaces, PROBE_NAMESPACE]:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            async with sess.post(url + "/api/v1/namespaces", data=orjson.dumps(body), headers=JSON) as resp:
                await resp.read()

        # The probe process, then the watch, then the load.
        probe = await asyncio.create_subprocess_exec(
            *pinned(
                [sys.executable, __file__, "--probe-child", url, str(server.pki), str(probe_rate)], CLIENT_CPU
            ),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**30,
        )
        try:
            assert probe.stdout is not None and probe.stdin is not None
            if (await probe.stdout.readline()).strip() != b"ready":
                raise RuntimeError("probe process failed to start")
            metrics_before = await _metrics(sess, url)
            listed = await _get_json(sess, url + "/api/v1/pods", limit="1")
            watch = PodWatch(url, str(listed["metadata"]["resourceVersion"]))
            run.watch = watch
            meters = [CpuMeter([server.pid]), CpuMeter([agent.pid]), CpuMeter([os.getpid()])]
            for m in meters:
                m.start()
            cpu0_before, load_started = cpu_busy_seconds(common.SERVER_CPU), time.monotonic()
            async with asyncio.TaskGroup() as tg:
                watch_task = tg.create_task(watch.run(sess))
                sampler = tg.create_task(_sampler(run, server.pid, agent, meters))
                health = tg.create_task(_heartbeat_health(sess, url, run))
                await _load(sess, url, namespaces, run, watch, timeout)
                run.server_cpu, run.agent_cpu, run.bench_cpu = (m.percent() for m in meters)
                run.server_cpu_seconds = meters[0].total() - meters[0].start_cpu
                cpu0 = cpu_busy_seconds(common.SERVER_CPU) - cpu0_before
                run.cpu0_others = (
                    100 * max(0.0, cpu0 - run.server_cpu_seconds) / (time.monotonic() - load_started)
                )
                run.agent_cpu_seconds = meters[1].total() - meters[1].start_cpu
                run.hist = histogram_delta(await _metrics(sess, url), metrics_before)
                probe.stdin.write(b"stop\n")
                await probe.stdin.drain()
                run.rolled_out = await _rolled_out(sess, url)
                watch_task.cancel()
                sampler.cancel()
                health.cancel()
            samples = await asyncio.wait_for(probe.stdout.readline(), 90)
            run.probe = [(float(a), str(b), float(c), int(d)) for a, b, c, d in orjson.loads(samples)]
            await probe.wait()
        finally:
            if probe.returncode is None:
                probe.kill()
                await probe.wait()


async def _load(
    sess: aiohttp.ClientSession,
    url: str,
    namespaces: list[str],
    run: DensityRun,
    watch: PodWatch,
    timeout: float,
) -> None:
    replicas = split(run.pods, run.deployments)
    bodies = [
        deployment(f"saturation-{i:04d}", namespaces[i % len(namespaces)], n, SATURATION, "1m", "10M")
        for i, n in enumerate(replicas)
    ]
    offsets = []
    before = 0
    for n in replicas:
        offsets.append(before / run.rate)
        before += n
    done = watch.expect(SATURATION, run.pods)
    _log(f"creating {run.deployments} deployments ({run.pods} pods) at {run.rate:g} pods/s")
    t0 = time.monotonic()
    await _create_paced(sess, url, bodies, offsets, run)
    deadline = t0 + run.pods / run.rate + timeout
    try:
        await asyncio.wait_for(done.wait(), max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        run.timed_out.append(f"{run.pods - watch.live(SATURATION)} saturation pods not Running")
    run.saturation_seconds = time.monotonic() - t0
    _log(f"saturation phase over after {run.saturation_seconds:.0f} s")
    if run.latency_pods:
        bodies = [
            deployment(f"latency-{i:04d}", namespaces[i % len(namespaces)], 1, LATENCY, "100m", "350M")
            for i in range(run.latency_pods)
        ]
        done = watch.expect(LATENCY, run.latency_pods)
        t1 = time.monotonic()
        await _create_paced(sess, url, bodies, [i / 5.0 for i in range(run.latency_pods)], run)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            run.timed_out.append(f"{run.latency_pods - watch.live(LATENCY)} latency pods not Running")
        run.latency_seconds = time.monotonic() - t1
        _log(f"latency phase over after {run.latency_seconds:.0f} s")
    await asyncio.sleep(3.0)  # let the probe sample the settled cluster too


async def _metrics(sess: aiohttp.ClientSession, url: str) -> Histograms:
    async with sess.get(url + "/metrics") as resp:
        return parse_histograms((await resp.read()).decode())


async def _rolled_out(sess: aiohttp.ClientSession, url: str) -> int:
    body = await _get_json(sess, url + "/apis/apps/v1/deployments", labelSelector="group")
    return sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in body.get("items") or [])


def density_run(
    nodes: int,
    pods: int,
    deployments: int,
    rate: float,
    latency_pods: int,
    probe_rate: float,
    timeout: float,
    server_args: Sequence[str],
    agent_args: Sequence[str],
) -> DensityRun:
    pin_self_to_client_cpu()
    run = DensityRun(nodes, pods, deployments, rate, latency_pods)
    started = time.monotonic()
    args = ["--cluster-cidr", cluster_cidr(nodes), *server_args]
    with scratch_dir("pinnace-bench-density-") as root, pinnace_server(root, args, name="density") as server:
        time.sleep(1.0)
        run.server_rss_idle = proc_rss_kib(server.pid)
        agent = NodeAgentProcess(server, root, nodes, agent_args)
        agent.start()
        try:
            asyncio.run(_drive(server, agent, root, run, probe_rate, timeout))
        finally:
            agent.stop()
            run.server_warnings = dict(server.warnings)
    run.wall_seconds = time.monotonic() - started
    return run


# --- results -----------------------------------------------------------------------------------------


def _ms(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1000


def _rows(run: DensityRun) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    assert run.watch is not None
    w = run.watch
    for group, label in ((SATURATION, "saturation pods"), (LATENCY, "latency pods")):
        recs = [p for p in w.pods.values() if p.group == group]
        if not recs:
            continue
        startup = [p.running - p.added for p in recs if not math.isnan(p.running)]
        ready = [p.ready - p.added for p in recs if not math.isnan(p.ready)]
        to_bound = [p.bound - p.added for p in recs if not math.isnan(p.bound)]
        bound_to_run = [
            p.running - p.bound for p in recs if not (math.isnan(p.running) or math.isnan(p.bound))
        ]
        upper = [
            p.running_wall - p.created
            for p in recs
            if not (math.isnan(p.running_wall) or math.isnan(p.created))
        ]
        added_lag = [p.added_wall - p.created for p in recs if not math.isnan(p.created)]
        p99 = percentile(startup, 99)
        expected = run.pods if group == SATURATION else run.latency_pods
        rows += [
            Row(
                f"{label}: startup p99 (ADDED -> Running, watch)",
                p99 * 1000,
                "ms",
                target="<= 5,000 ms",
                passed=bool(p99 <= 5.0) and len(startup) == expected,
            ),
            Row(f"{label}: startup p90", _ms(startup, 90), "ms"),
            Row(f"{label}: startup p50", _ms(startup, 50), "ms"),
            Row(f"{label}: ADDED -> Ready p99", _ms(ready, 99), "ms"),
            Row(f"{label}: ADDED -> bound p50 (scheduler queue + binding)", _ms(to_bound, 50), "ms"),
            Row(f"{label}: ADDED -> bound p99", _ms(to_bound, 99), "ms"),
            Row(f"{label}: bound -> Running p50 (node agent + status write)", _ms(bound_to_run, 50), "ms"),
            Row(f"{label}: bound -> Running p99", _ms(bound_to_run, 99), "ms"),
            Row(
                f"{label}: Running observed - creationTimestamp p99 (upper bound, +<1 s)",
                _ms(upper, 99),
                "ms",
            ),
            Row(
                f"{label}: ADDED observed - creationTimestamp p99 (watch lag, +<1 s)",
                _ms(added_lag, 99),
                "ms",
            ),
            Row(f"{label}: Running (of {expected:,})", len(startup), "pods"),
        ]
        late = sum(1 for p in recs if p.first_event != "ADDED")
        if late:
            notes.append(
                f"{label}: {late} first seen in a {'/'.join(sorted({p.first_event for p in recs}))} event"
            )
    # The probe.
    probe = [s for s in run.probe if s[3] in (200, 201)]
    failed = len(run.probe) - len(probe)
    lat = [s[2] for s in probe]
    p99 = percentile(lat, 99)
    rows.append(
        Row(
            "probe: mutating call p99 (ConfigMap POST/PUT/DELETE)",
            p99 * 1000,
            "ms",
            target="<= 1,000 ms",
            passed=bool(p99 <= 1.0) and failed == 0,
        )
    )
    for verb in ("POST", "PUT", "DELETE"):
        v = [s[2] for s in probe if s[1] == verb]
        rows.append(Row(f"probe: {verb} p50", _ms(v, 50), "ms"))
        rows.append(Row(f"probe: {verb} p99", _ms(v, 99), "ms"))
        rows.append(Row(f"probe: {verb} max", max(v, default=math.nan) * 1000, "ms"))
    rows.append(Row(f"probe: calls ({failed} failed)", len(run.probe), "calls"))
    # The server's histogram.
    mutating = {k: b for k, b in run.hist.items() if k[0] in MUTATING_VERBS and b.get(math.inf, 0) > 0}
    if mutating:
        all_p99 = histogram_quantile(0.99, merge(mutating.values()))
        rows.append(Row("server histogram: all mutating calls p99 (every client)", all_p99 * 1000, "ms"))
        ranked = sorted(
            (
                (histogram_quantile(0.99, b), k, b[math.inf])
                for k, b in mutating.items()
                if b[math.inf] >= 100
            ),
            reverse=True,
        )
        if ranked:
            worst, key, _ = ranked[0]
            rows.append(
                Row(
                    f"server histogram: worst (verb, resource) p99: {key[0]} {key[1]}{'/' + key[2] if key[2] else ''}",
                    worst * 1000,
                    "ms",
                    target="<= 1,000 ms",
                    passed=worst <= 1.0,
                )
            )
        detail = ", ".join(
            f"{k[0]} {k[1]}{'/' + k[2] if k[2] else ''} {q * 1000:,.0f} ms (n={n:,.0f})"
            for q, k, n in ranked[:8]
        )
        notes.append(f"server histogram p99 by (verb, resource), >= 100 calls: {detail}")
        counts = sorted(((b[math.inf], k) for k, b in mutating.items()), reverse=True)[:8]
        notes.append(
            "mutating calls during the load: "
            + ", ".join(f"{k[0]} {k[1]}{'/' + k[2] if k[2] else ''} {n:,.0f}" for n, k in counts)
        )
    s = run.samples
    rows += [
        Row(
            "control-plane (server) RSS peak",
            s.server_rss_peak / 1024,
            "MiB",
            target="<= 2,048 MiB",
            passed=s.server_rss_peak <= 2 * 1024 * 1024,
        ),
        Row("server RSS idle (before nodes)", run.server_rss_idle / 1024, "MiB"),
        Row("server RSS after nodes registered", run.server_rss_after_nodes / 1024, "MiB"),
        Row("server RSS at the end", s.server_rss_last / 1024, "MiB"),
        Row("server CPU (CPU0) during the load", run.server_cpu, "% of a core"),
        Row("CPU0 used by other processes during the load (shared machine)", run.cpu0_others, "% of a core"),
        Row(f"server CPU with {run.nodes:,} idle nodes (no pods yet)", run.idle_server_cpu, "% of a core"),
        Row(f"node agent CPU with {run.nodes:,} idle nodes", run.idle_agent_cpu, "% of a core"),
        Row(
            "server CPU per pod started (whole load, all components)",
            1000 * run.server_cpu_seconds / max(1, run.pods + run.latency_pods),
            "ms",
        ),
        Row("node agent RSS peak", s.agent_rss_peak / 1024, "MiB"),
        Row("node agent CPU during the load (CPU1)", run.agent_cpu, "% of a core"),
        Row("node agent CPU time during the load", run.agent_cpu_seconds, "s"),
        Row("bench process CPU (watch + creates, CPU1)", run.bench_cpu, "% of a core"),
        Row(f"{run.nodes:,} nodes registered and Ready", run.register_seconds, "s"),
        Row("oldest node Lease during the load (renewed every 10 s)", s.lease_age_max, "s"),
        Row("most node Leases expired at once (older than 40 s)", s.leases_expired_max, "nodes"),
        Row("most nodes tainted unreachable/not-ready at once", s.tainted_max, "nodes"),
        Row("saturation phase (first Deployment -> last pod Running)", run.saturation_seconds, "s"),
        Row(
            "achieved pods Running per second (saturation)",
            run.pods / run.saturation_seconds if run.saturation_seconds else math.nan,
            "/s",
        ),
        Row("latency phase", run.latency_seconds, "s"),
        Row("total wall time", run.wall_seconds, "s"),
        Row(
            f"Deployments' readyReplicas at the end (of {run.pods + run.latency_pods:,})",
            run.rolled_out,
            "pods",
        ),
    ]
    notes.append(
        f"watch: {w.events:,} events, {w.bytes / 2**20:,.0f} MiB, {w.reconnects} reconnects, {w.relists} relists, "
        f"{w.deleted} DELETED events; {run.failed_creates} Deployment creates failed"
    )
    notes += [f"timed out: {t}" for t in run.timed_out]
    for first, count in sorted(run.server_warnings.values(), key=lambda fc: -fc[1])[:8]:
        notes.append(f"server log, {count:,}x, first: {first[:240]}")
    return rows, notes


def _dump(dr: DensityRun, path: Path) -> None:
    """Every pod's observation times and every probe call, for a closer look afterwards."""
    pods = [vars(p) for p in dr.watch.pods.values()] if dr.watch is not None else []
    path.write_bytes(orjson.dumps({"pods": pods, "probe": dr.probe}))


def run(
    nodes: int = 1000,
    pods: int = 30_000,
    deployments: int = 300,
    rate: float = 20.0,
    latency_pods: int = 100,
    probe_rate: float = 5.0,
    timeout: float = 600.0,
    server_args: Sequence[str] = (),
    agent_args: Sequence[str] = (),
    dump: Path | None = None,
) -> BenchResult:
    dr = density_run(
        nodes, pods, deployments, rate, latency_pods, probe_rate, timeout, server_args, agent_args
    )
    if dump is not None:
        _dump(dr, dump)
    result = BenchResult(
        f"Density: {nodes:,} simulated nodes, {pods:,} pods through {deployments:,} Deployments at {rate:g} pods/s"
    )
    result.rows, result.notes = _rows(dr)
    result.notes.append(
        f"+ {latency_pods} latency pods (1-replica Deployments at 5/s) after saturation; probe {probe_rate:g} "
        f"ConfigMap calls/s; cluster CIDR {cluster_cidr(nodes)}; one node-agent process on CPU1"
    )
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe-child":
        url, pki, rate = sys.argv[2:5]
        asyncio.run(_probe_child(url, Path(pki), float(rate)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30_000, help="saturation pods in total")
    parser.add_argument(
        "--deployments", type=int, default=300, help="the saturation pods are split over these"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="offered pods/s (Deployments paced to it)")
    parser.add_argument(
        "--latency-pods", type=int, default=100, help="1-replica Deployments after saturation"
    )
    parser.add_argument("--probe-rate", type=float, default=5.0, help="ConfigMap calls/s of the probe")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait past the planned load")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `pinnace server` argument")
    parser.add_argument(
        "--agent-arg", action="append", default=[], help="extra `pinnace node-agent` argument"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="server and agent under cProfile: DIR/density*.prof"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    parser.add_argument("--dump", type=Path, default=None, help="write per-pod times and probe calls here")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        common.PROFILE_DIR = args.profile.resolve()
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    result = run(
        args.nodes,
        args.pods,
        args.deployments,
        args.rate,
        args.latency_pods,
        args.probe_rate,
        args.timeout,
        tuple(args.server_arg),
        tuple(args.agent_arg),
        args.dump,
    )
    print_result(result)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
