"""Provisioning: `pinnace up` from start to every node Ready, on the local cloud and against moto's
server, a NodePool scaled up against moto, and the EC2 calls each provisioned node costs (issue 7,
Performance).

Measured (each scenario in a fresh data directory, and for moto a fresh moto server):
- **up -> N Ready**: from spawning `pinnace up --nodes N` (the control plane with its CCM, the
  provisioning operator, the simulated fleet booting one node agent per instance from its
  cloud-init user-data, each node joining by bootstrap token and CSR) until this process sees N
  Nodes with `Ready=True` (listing Nodes every 0.25 s, 1 s above 20 nodes).
- **scale -> M Ready** (`--scale-to M`, moto only): after the N nodes are Ready, the default
  NodePool's `spec.replicas` is merge-patched to M (what `kubectl scale nodepool` amounts to);
  time until M Nodes are Ready.
- **Same-run baseline**: what a user would do by hand without provisioning: `pinnace server
  --cloud-provider none` in a fresh data directory, `pinnace token create --print-join-command`,
  then `pinnace node-agent --nodes N --server ... --token ... --discovery-token-ca-cert-hash ...`
  (every node TLS-bootstraps through a CSR). Time from spawning the server to N Ready; for the
  scale case a second `pinnace node-agent --nodes M-N` joins the same server, timed to M Ready.
  The ratio up / baseline is the provisioning machinery's cost (operator, CRDs, instance records,
  cloud-init rendering and parsing, the CCM's initialisation, and for moto the EC2 round trips).
- **EC2 calls**: `pinnace up` talks to moto through a counting reverse proxy in this process
  (its URL is the `--aws-endpoint-url`); each request is counted by Action and by caller. The
  caller is told apart by a header that a thin wrapper around `pinnace`'s entry point adds to every
  botocore request (a context variable set around `up`'s operator task and fleet task and its
  preflight; anything else is the CCM in the server): `operator` (RunInstances, the Machines'
  lookups, terminations), `ccm` (the cloud node controller's initialisation and its periodic syncs),
  `fleet` (the simulated hardware: it lists the cluster's instances every second and reads each new
  instance's user-data, as a real machine's boot would, so it is not a control-plane cost) and
  `preflight` (`up`'s account check and default-network discovery, once per run). Calls per
  provisioned node = (operator + ccm calls in the phase) / nodes added in the phase; the minimum is
  1 (one RunInstances per node, tags and user-data in the same call).

The default run (local and moto at 3 and 20 nodes, with their baselines) takes a few minutes;
`--scale-to 100` adds the 3 -> 100 moto run and its baseline.

    .venv/bin/python bench/bench_provisioning.py
    .venv/bin/python bench/bench_provisioning.py --scale-to 100
    .venv/bin/python bench/bench_provisioning.py --nodes 3 --skip-local     # moto only, quick
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import math
import os
import re
import shutil
import signal
import socket
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from common import REPO, BenchResult, Row, machine_description, print_result, proc_cpu_seconds, scratch_dir

from ccm.provisioning import api
from controlplane.client import Client, ResourcePath, load_kubeconfig

REGION = "us-east-1"
NODES = ResourcePath("", "v1", "nodes", namespaced=False)
NODEPOOLS = ResourcePath(api.GROUP, api.VERSION, api.NODEPOOLS, namespaced=False)
READY_TIMEOUT = 600.0
TAINT_UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}
CALLER_HEADER = "X-Bench-Caller"
CONTROL_PLANE_CALLERS = ("operator", "ccm")

# `pinnace` with every botocore request labelled by who made it (see the module docstring). The
# label rides a context variable: asyncio tasks copy it when created and asyncio.to_thread (the
# provider's SdkCaller) into the worker thread, so it reaches botocore's before-send event.
_UP_MAIN = f"""
import contextvars, os, sys
import botocore.client
from controlplane.up import cloud, compose

CALLER = contextvars.ContextVar("bench_caller", default="ccm")
_create_client = botocore.client.ClientCreator.create_client

def _label(request, **_):
    request.headers[{CALLER_HEADER!r}] = CALLER.get()

def create_client(self, *args, **kwargs):
    client = _create_client(self, *args, **kwargs)
    client.meta.events.register("before-send", _label)
    return client

botocore.client.ClientCreator.create_client = create_client

def _as(name, fn):
    async def labelled(*args, **kwargs):
        CALLER.set(name)
        return await fn(*args, **kwargs)
    return labelled

cloud.prepare_cloud_config = _as("preflight", cloud.prepare_cloud_config)
compose.Upper._operator = _as("operator", compose.Upper._operator)
compose.Upper._fleet = _as("fleet", compose.Upper._fleet)
from controlplane.__main__ import main

if os.environ.get("BENCH_UP_PROFILE"):  # --profile: the main thread (API server, CCM, fleet) only
    import cProfile
    profile = cProfile.Profile()
    profile.enable()
    try:
        code = main(sys.argv[1:])
    finally:
        profile.disable()
        profile.dump_stats(os.environ["BENCH_UP_PROFILE"])
    sys.exit(code)
sys.exit(main(sys.argv[1:]))
"""


def _log(msg: str) -> None:
    print(f"provisioning [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes -----------------------------------------------------------------------------------


# Every process started, so that none outlives the benchmark however it ends (see _kill_leftovers).
_STARTED: list[Proc] = []


class Proc:
    """A subprocess with its output in a log file; stopped with `sig`, killed after a grace."""

    def __init__(
        self, name: str, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log_path
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd, cwd=REPO, stdout=out, stderr=asyncio.subprocess.STDOUT, env=self.env
            )
        _STARTED.append(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def cpu(self) -> float:
        """CPU seconds used so far (user + system, every thread); 0 once it has exited."""
        if self.proc is None:
            return 0.0
        try:
            return proc_cpu_seconds(self.proc.pid)
        except OSError:
            return 0.0

    def check(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    async def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            _log(f"{self.name} did not stop within {grace:g} s: killed")
            self.proc.kill()
            await self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def pinnace(*args: str) -> list[str]:
    return [sys.executable, "-m", "controlplane", "--log-format", "text", "--log-level", "warning", *args]


@contextlib.asynccontextmanager
async def running(*procs: Proc) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for p in reversed(procs):
            await p.stop(signal.SIGINT if p.name.startswith("up") else signal.SIGTERM)


# --- moto and the counting proxy -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def moto_server(root: Path) -> AsyncIterator[tuple[str, Proc]]:
    port = free_port()
    proc = Proc(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        root / f"moto-{port}.log",
        env={**os.environ, **AWS_ENV},
    )
    await proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as sess:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with sess.get(f"{url}/moto-api/") as resp:
                        if resp.status == 200:
                            break
                proc.check()
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start")
                await asyncio.sleep(0.2)
        yield url, proc
    finally:
        await proc.stop()


_CREDENTIAL = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")
_DROP_REQUEST = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
_DROP_RESPONSE = {"content-length", "transfer-encoding", "connection", "content-encoding"}


@dataclass
class CountingProxy:
    """A reverse proxy to moto counting requests by (caller, operation)."""

    upstream: str
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @staticmethod
    def operation(request: web.Request, body: bytes) -> str:
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
        action = (form.get("Action") or [request.query.get("Action", "")])[0]
        if not action:
            action = f"{request.method} {request.path}"
        m = _CREDENTIAL.search(request.headers.get("Authorization", ""))
        service = m.group(1) if m else "?"
        return action if service == "ec2" else f"{service}:{action}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self.counts[(request.headers.get(CALLER_HEADER, "unlabelled"), self.operation(request, body))] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
        async with self._session.request(
            request.method, self.upstream + str(request.rel_url), headers=headers, data=body
        ) as resp:
            payload = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _DROP_RESPONSE}
            return web.Response(status=resp.status, body=payload, headers=out)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def snapshot(self) -> collections.Counter[tuple[str, str]]:
        return collections.Counter(self.counts)


# --- waiting for Ready nodes ---------------------------------------------------------------------


def _ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def _initialised(node: dict[str, Any]) -> bool:
    """Ready, and the CCM has done its part: the uninitialized taint is gone and, where the route
    controller reports it, the node's pod network is routed (NetworkUnavailable=False)."""
    taints = (node.get("spec") or {}).get("taints") or []
    conditions = (node.get("status") or {}).get("conditions") or []
    return (
        _ready(node)
        and not any(t.get("key") == TAINT_UNINITIALIZED for t in taints)
        and not any(c.get("type") == "NetworkUnavailable" and c.get("status") != "False" for c in conditions)
    )


async def open_client(kubeconfig: Path, procs: Sequence[Proc], timeout: float = 120.0) -> Client:
    """A client once the kubeconfig exists and the API server answers."""
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            p.check()
        if await asyncio.to_thread(kubeconfig.exists):
            client: Client | None = None
            try:
                client = Client(load_kubeconfig(kubeconfig), user_agent="bench-provisioning")
                await client.__aenter__()
                await client.list(NODES, params={"limit": "1"})
                return client
            except Exception:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.__aexit__(None, None, None)
        if time.monotonic() > deadline:
            raise RuntimeError("the API server did not answer:\n" + "\n".join(p.tail() for p in procs))
        await asyncio.sleep(0.1)


async def wait_ready(
    client: Client,
    count: int,
    procs: Sequence[Proc],
    label: str,
    check: Callable[[dict[str, Any]], bool] = _ready,
) -> float:
    """Monotonic time at which `count` Nodes were seen to pass `check` (Ready)."""
    interval = 0.25 if count <= 20 else 1.0
    deadline = time.monotonic() + READY_TIMEOUT
    last_report = 0.0
    while True:
        for p in procs:
            p.check()
        items = (await client.list(NODES)).get("items") or []
        ready = sum(1 for n in items if check(n))
        now = time.monotonic()
        if ready >= count:
            return now
        if now > deadline:
            raise RuntimeError(f"{label}: {ready}/{count} Ready after {READY_TIMEOUT:g} s")
        if now - last_report > 10:
            _log(f"{label}: {len(items)} nodes, {ready}/{count} Ready")
            last_report = now
        await asyncio.sleep(interval)


# --- the scenarios ---------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    nodes_added: int
    seconds: float
    # to every node Ready and initialised by the CCM (taint gone, routed); calls counted up to then
    initialised_seconds: float = math.nan
    calls: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    cpu: float = math.nan  # CPU seconds of the `pinnace up` process up to Ready
    moto_cpu: float = math.nan  # and of moto's server

    def by_caller(self, caller: str) -> int:
        return sum(n for (c, _), n in self.calls.items() if c == caller)

    def control_plane_calls(self) -> int:
        return sum(self.by_caller(c) for c in CONTROL_PLANE_CALLERS)


@dataclass
class UpRun:
    provider: str
    nodes: int
    phases: list[Phase] = field(default_factory=list)
    self_reported: float = math.nan  # "N node(s) Ready in X s" as `up` prints it


_SELF_REPORTED = re.compile(r"node\(s\) Ready in ([0-9.]+)s")


async def run_up(
    root: Path, provider: str, nodes: int, scale_to: int = 0, profile: Path | None = None
) -> UpRun:
    """`pinnace up` in a fresh data dir (and for aws a fresh moto behind the counting proxy)."""
    data = root / f"up-{provider}-{nodes}"
    run = UpRun(provider, nodes)
    port = free_port()
    args = ["up", "--data-dir", str(data), "--port", str(port), "--nodes", str(nodes)]
    label = f"up {provider} {nodes}"
    async with contextlib.AsyncExitStack() as stack:
        proxy: CountingProxy | None = None
        moto_proc: Proc | None = None
        env = None
        if provider == "aws":
            moto, moto_proc = await stack.enter_async_context(moto_server(root))
            proxy = CountingProxy(moto)
            await proxy.start()
            stack.push_async_callback(proxy.stop)
            args += ["--provider", "aws", "--aws-endpoint-url", proxy.url, "--region", REGION]
            env = {**os.environ, **AWS_ENV}
        else:
            args += ["--provider", "local"]
        if profile is not None:  # the directory made by run()
            env = {**(env or os.environ), "BENCH_UP_PROFILE": str(profile / f"{data.name}.prof")}
        cmd = [sys.executable, "-c", _UP_MAIN, "--log-format", "text", "--log-level", "warning", *args]
        up = Proc("up", cmd, root / f"{data.name}.out", env=env)
        t0 = time.monotonic()
        await up.start()
        await stack.enter_async_context(running(up))
        client = await open_client(data / "admin.kubeconfig", [up])
        stack.push_async_callback(client.__aexit__, None, None, None)
        t1 = await wait_ready(client, nodes, [up], label)
        cpu1, moto1 = up.cpu(), moto_proc.cpu() if moto_proc else math.nan
        t1i = await wait_ready(client, nodes, [up], label + " initialised", _initialised)
        calls = proxy.snapshot() if proxy else collections.Counter()
        run.phases.append(Phase(f"start -> {nodes} Ready", nodes, t1 - t0, t1i - t0, calls, cpu1, moto1))
        _log(f"{label}: {nodes} Ready in {t1 - t0:.1f} s, initialised in {t1i - t0:.1f} s")
        if scale_to > nodes:
            t2 = time.monotonic()
            await client.patch(NODEPOOLS, "default", {"spec": {"replicas": scale_to}})
            cpu2, moto2 = up.cpu(), moto_proc.cpu() if moto_proc else math.nan
            t3 = await wait_ready(client, scale_to, [up], f"{label} -> {scale_to}")
            cpu3, moto3 = up.cpu(), moto_proc.cpu() if moto_proc else math.nan
            t3i = await wait_ready(client, scale_to, [up], f"{label} -> {scale_to} initialised", _initialised)
            after = proxy.snapshot() if proxy else collections.Counter()
            run.phases.append(
                Phase(
                    f"scale {nodes} -> {scale_to} Ready",
                    scale_to - nodes,
                    t3 - t2,
                    t3i - t2,
                    after - calls,
                    cpu3 - cpu2,
                    moto3 - moto2,
                )
            )
            _log(f"{label}: scaled to {scale_to} Ready in {t3 - t2:.1f} s, initialised in {t3i - t2:.1f} s")
    with contextlib.suppress(OSError):
        m = _SELF_REPORTED.search(up.log_path.read_text(errors="replace"))
        if m:
            run.self_reported = float(m.group(1))
    return run


@dataclass
class BaselineRun:
    nodes: int
    seconds: float
    scale_to: int = 0
    scale_seconds: float = math.nan
    cpu: float = math.nan  # CPU seconds of the server and the node agent(s) up to Ready
    scale_cpu: float = math.nan


async def run_baseline(root: Path, nodes: int, scale_to: int = 0) -> BaselineRun:
    """`pinnace server --cloud-provider none`, a bootstrap token, `pinnace node-agent --nodes N`."""
    data = root / f"baseline-{nodes}"
    port = free_port()
    server = Proc(
        "server",
        pinnace("server", "--data-dir", str(data), "--secure-port", str(port), "--cloud-provider", "none"),
        root / f"{data.name}-server.out",
    )
    label = f"baseline {nodes}"
    t0 = time.monotonic()
    await server.start()
    agents: list[Proc] = []
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(running(server))
        client = await open_client(data / "admin.kubeconfig", [server])
        stack.push_async_callback(client.__aexit__, None, None, None)
        token = await asyncio.create_subprocess_exec(
            *pinnace(
                "token", "create", "--kubeconfig", str(data / "admin.kubeconfig"), "--print-join-command"
            ),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await token.communicate()
        join = out.decode().split()
        if token.returncode != 0 or "--token" not in join:
            raise RuntimeError(f"pinnace token create failed: {out!r}")
        secret = join[join.index("--token") + 1]
        ca_hash = join[join.index("--discovery-token-ca-cert-hash") + 1]

        async def agent(index: int, count: int) -> Proc:
            p = Proc(
                f"node-agent-{index}",
                pinnace(
                    "node-agent",
                    "--server",
                    f"https://127.0.0.1:{port}",
                    "--token",
                    secret,
                    "--discovery-token-ca-cert-hash",
                    ca_hash,
                    "--nodes",
                    str(count),
                    "--node-name-prefix",
                    f"base{index}",
                    "--address",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--data-dir",
                    str(root / f"{data.name}-agent{index}"),
                ),
                root / f"{data.name}-agent{index}.out",
            )
            await p.start()
            agents.append(p)
            await stack.enter_async_context(running(p))
            return p

        await agent(0, nodes)
        t1 = await wait_ready(client, nodes, [server, *agents], label)
        result = BaselineRun(nodes, t1 - t0, cpu=sum(p.cpu() for p in [server, *agents]))
        _log(f"{label}: {nodes} Ready in {t1 - t0:.1f} s")
        if scale_to > nodes:
            t2 = time.monotonic()
            cpu2 = sum(p.cpu() for p in [server, *agents])
            await agent(1, scale_to - nodes)
            t3 = await wait_ready(client, scale_to, [server, *agents], f"{label} -> {scale_to}")
            result.scale_cpu = sum(p.cpu() for p in [server, *agents]) - cpu2
            result.scale_to, result.scale_seconds = scale_to, t3 - t2
            _log(f"{label}: {scale_to - nodes} more joined, {scale_to} Ready in {t3 - t2:.1f} s")
    return result


# --- results ---------------------------------------------------------------------------------------


def _calls_table(phase: Phase) -> str:
    """Calls by operation and caller, e.g. `RunInstances 3 (operator 3)`, most frequent first."""
    by_op: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for (caller, op), n in phase.calls.items():
        by_op[op][caller] += n
    parts = []
    for op, callers in sorted(by_op.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        who = ", ".join(f"{c} {n}" for c, n in callers.most_common())
        parts.append(f"{op} {sum(callers.values())} ({who})")
    return "; ".join(parts)


def rows(ups: list[UpRun], baselines: dict[int, BaselineRun]) -> tuple[list[Row], list[str]]:
    out: list[Row] = []
    notes: list[str] = []
    for up in ups:
        where = "moto" if up.provider == "aws" else "local cloud"
        for phase in up.phases:
            base = baselines.get(up.nodes)
            if phase.name.startswith("scale"):
                baseline = base.scale_seconds if base is not None else None
                base_cpu = base.scale_cpu if base is not None else None
                baseline_label = f"node-agent +{phase.nodes_added} joining"
            else:
                baseline = base.seconds if base is not None else None
                base_cpu = base.cpu if base is not None else None
                baseline_label = f"server + node-agent {up.nodes}"
            out.append(Row(f"up, {where}: {phase.name}", phase.seconds, "s", baseline, baseline_label))
            out.append(
                Row(f"up, {where}: {phase.name} and initialised by the CCM", phase.initialised_seconds, "s")
            )
            out.append(
                Row(
                    f"up, {where}: {phase.name}: CPU of the `pinnace up` process",
                    phase.cpu,
                    "CPU s",
                    base_cpu,
                    "server + node-agent processes",
                )
            )
            if not math.isnan(phase.moto_cpu):
                out.append(Row(f"up, moto: {phase.name}: CPU of moto's server", phase.moto_cpu, "CPU s"))
            if up.provider != "aws":
                continue
            per_node = phase.control_plane_calls() / max(1, phase.nodes_added)
            out.append(
                Row(
                    f"up, moto: {phase.name}: EC2 calls per node to initialised (operator + ccm)",
                    per_node,
                    "calls",
                    target="minimum 1 (RunInstances)",
                )
            )
            for caller in ("operator", "ccm", "fleet", "preflight"):
                count = phase.by_caller(caller)
                if count:
                    out.append(
                        Row(
                            f"up, moto: {phase.name}: {caller} calls per node",
                            count / max(1, phase.nodes_added),
                            "calls",
                        )
                    )
            unlabelled = phase.by_caller("unlabelled")
            if unlabelled:
                notes.append(f"{where} {phase.name}: {unlabelled} EC2 calls without a caller label")
            notes.append(f"moto {phase.name} ({phase.seconds:.1f} s), EC2 calls: {_calls_table(phase)}")
        # With a scale phase, `up` saw the pool's new size before it saw the first nodes Ready.
        if not math.isnan(up.self_reported) and len(up.phases) == 1:
            notes.append(
                f"{where} {up.nodes}: `pinnace up` itself reported Ready in {up.self_reported:.1f} s"
            )
    return out, notes


def _keep_logs(root: Path, keep: Path) -> None:
    """The processes' output and each data dir's pinnace.log, for a look after the run."""
    keep.mkdir(parents=True, exist_ok=True)
    for path in [*root.glob("*.out"), *root.glob("*.log")]:
        shutil.copy(path, keep / path.name)
    for path in root.glob("*/pinnace.log"):
        shutil.copy(path, keep / f"{path.parent.name}-pinnace.log")


async def _run(
    nodes: Sequence[int],
    scale_to: int,
    local: bool,
    moto: bool,
    keep: Path | None = None,
    profile: Path | None = None,
) -> BenchResult:
    result = BenchResult("Provisioning: `pinnace up` to Ready nodes (local cloud, moto)")
    ups: list[UpRun] = []
    baselines: dict[int, BaselineRun] = {}
    with scratch_dir("pinnace-bench-provisioning-") as root:
        # Baselines first, then the up runs, each its own processes, one at a time.
        for n in nodes:
            baselines[n] = await run_baseline(root, n, scale_to if n == min(nodes) else 0)
        for n in nodes:
            if local:
                ups.append(await run_up(root, "local", n, profile=profile))
            if moto:
                ups.append(await run_up(root, "aws", n, scale_to if n == min(nodes) else 0, profile))
        if keep is not None:
            _keep_logs(root, keep)
    result.rows, result.notes = rows(ups, baselines)
    result.notes.append(
        "baseline: `pinnace server --cloud-provider none` + `pinnace token create` + `pinnace node-agent "
        "--nodes N` (TLS bootstrap by CSR); times from spawning the first process to N Nodes Ready"
    )
    return result


def run(
    nodes: Sequence[int] = (3, 20),
    scale_to: int = 0,
    local: bool = True,
    moto: bool = True,
    keep: Path | None = None,
    profile: Path | None = None,
) -> BenchResult:
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(nodes, scale_to, local, moto, keep, profile))


def _kill_leftovers() -> None:
    """SIGKILL any started process still running (unreaped) after an interrupted run."""
    for p in _STARTED:
        if p.proc is None:
            continue
        try:
            if os.waitpid(p.proc.pid, os.WNOHANG) != (0, 0):
                continue  # exited just now, reaped here
        except ChildProcessError:
            continue  # reaped already
        _log(f"{p.name} (pid {p.proc.pid}) left running: killed")
        os.kill(p.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p.proc.pid, 0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the running scenario's cleanup stops its processes


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="3,20", help="comma-separated node counts (default 3,20)")
    parser.add_argument(
        "--scale-to", type=int, default=0, help="moto: scale the smallest pool to this many nodes (e.g. 100)"
    )
    parser.add_argument("--skip-local", action="store_true", help="no local-cloud runs")
    parser.add_argument("--skip-moto", action="store_true", help="no moto runs")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy every process's log here")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run `pinnace up` under cProfile: DIR/up-<provider>-<N>.prof",
    )
    args = parser.parse_args()
    nodes = sorted({int(n) for n in args.nodes.split(",") if n.strip()})
    machine = machine_description()
    print(f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"- machine: nproc={machine['nproc']}, CPU {machine['cpu_model']}, Python {machine['python']}")
    print(f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}\n", flush=True)
    started = time.monotonic()
    try:
        result = run(
            nodes,
            args.scale_to,
            local=not args.skip_local,
            moto=not args.skip_moto,
            keep=args.keep_logs,
            profile=args.profile,
        )
    finally:
        _kill_leftovers()
    result.notes.append(
        f"wall time {time.monotonic() - started:.0f} s; load average at end "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print_result(result)


if __name__ == "__main__":
    main()
