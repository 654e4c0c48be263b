"""Shared pieces of the benchmarks: start and stop a pinned server, TLS for the admin client, a
realistic ~2 KiB Pod, CPU and RSS readings from /proc, percentiles and the result table.

Every benchmark compares against a baseline measured in the same run, because the machines we
run on are shared and absolute numbers drift by +-30 % between runs. The server (or baseline
server) runs on CPU 0 and the load generator on CPU 1, so neither steals the other's core.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
# What a benchmark imports in-process (the pure scheduler run, clients) must be the tree it
# spawns servers from (`python -m controlplane` with cwd=REPO), not whichever checkout the
# virtualenv's editable install points at: benchmarks run from `git archive` copies for A/B.
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))
BENCH_DIR = Path(__file__).resolve().parent
SERVER_CPU = 0
CLIENT_CPU = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")
# Set by run.py --profile: every pinnace server then runs under cProfile, writing DIR/<bench>.prof.
PROFILE_DIR: Path | None = None


def bare_server_args(tree: Path | None = None) -> list[str]:
    """A server with no controllers and no scheduler. No controller makes `default`
    ServiceAccounts there, so, as upstream's scheduler_perf and integration servers do, it runs
    without the ServiceAccount admission plugin (for a `tree` from before that flag, without it)."""
    args = ["--controllers=", "--disable-scheduler"]
    main = (tree or REPO) / "controlplane" / "__main__.py"
    if "--disable-admission-plugins" in main.read_text():
        args.append("--disable-admission-plugins=ServiceAccount")
    return args


# --- pinning and process readings ----------------------------------------------------------------


def cpus_available() -> int:
    return len(os.sched_getaffinity(0))


def pin(pid: int, cpu: int) -> None:
    """Pin `pid` (0: this process) to one CPU, when the machine has it."""
    if cpu < (os.cpu_count() or 1):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def pin_self_to_client_cpu() -> None:
    pin(0, CLIENT_CPU)


def pinned(cmd: Sequence[str], cpu: int) -> list[str]:
    """`cmd` run under `taskset -c cpu` (taskset execs, so the pid stays the command's)."""
    if cpu < (os.cpu_count() or 1) and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *cmd]
    return list(cmd)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class CpuMeter:
    """CPU utilisation of a set of processes over a window, as % of one core."""

    pids: Sequence[int]
    start_cpu: float = 0.0
    _start_wall: float = 0.0

    def total(self) -> float:
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                total += proc_cpu_seconds(pid)
        return total

    def start(self) -> None:
        self.start_cpu = self.total()
        self._start_wall = time.monotonic()

    def percent(self) -> float:
        wall = time.monotonic() - self._start_wall
        return 100.0 * (self.total() - self.start_cpu) / wall if wall > 0 else 0.0


def machine_description() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": str(os.cpu_count()), "cpu_model": model, "python": sys.version.split()[0]}


# --- the pinnace server under test -----------------------------------------------------------------


_LISTENING = re.compile(r"listening on (https://\S+)")


# "<date> <time> LEVEL logger: message" (the text log format of `pinnace`).
_LEVEL = re.compile(r" (WARNING|ERROR|CRITICAL) ([\w.]+: \D*)")


class PinnaceServer:
    """`pinnace server` in a fresh data dir, pinned to the server CPU, stopped with SIGTERM."""

    def __init__(self, data_dir: Path, extra_args: Sequence[str] = (), profile: Path | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.profile = profile
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._log: list[str] = []
        # Every WARNING/ERROR line, by logger and the start of its message: the first of a kind
        # (with its time) and how many followed, for a benchmark's summary.
        self.warnings: dict[str, tuple[str, int]] = {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    def start(self, timeout: float = 60.0) -> None:
        # With a profile path the server runs under cProfile; it exits normally on SIGTERM, so the
        # profile is written (read it with `python -m pstats FILE`).
        profiler = ["-m", "cProfile", "-o", str(self.profile)] if self.profile is not None else []
        cmd = [
            sys.executable,
            *profiler,
            "-m",
            "controlplane",
            "--log-format",
            "text",
            "--log-level",
            "warning",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--secure-port",
            "0",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            pinned(cmd, SERVER_CPU), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        found = threading.Event()

        def reader() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self._log.append(line)
                del self._log[:-200]
                found_level = _LEVEL.search(line)
                if found_level:
                    kind = found_level.group(1) + " " + found_level.group(2)[:60]
                    first, count = self.warnings.get(kind, (line.strip(), 0))
                    self.warnings[kind] = (first, count + 1)
                m = _LISTENING.search(line)
                if m and not found.is_set():
                    self.url = m.group(1)
                    found.set()

        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("pinnace server did not start:\n" + "".join(self._log[-40:]))

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self) -> str:
        return "".join(self._log[-40:])

    def client_ssl(self) -> ssl.SSLContext:
        return client_ssl_context(self.pki)


@contextlib.contextmanager
def pinnace_server(
    root: Path, extra_args: Sequence[str] = (), name: str = "server"
) -> Iterator[PinnaceServer]:
    profile = PROFILE_DIR / f"{name}.prof" if PROFILE_DIR is not None else None
    server = PinnaceServer(root / "pinnace-data", extra_args, profile)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class BaselineServer:
    """bench/baseline_server.py (bare aiohttp + orjson) pinned to the server CPU, same TLS setup."""

    def __init__(self, pki: Path, pod: bytes, workdir: Path) -> None:
        self.pki = pki
        self.pod_file = workdir / "baseline-pod.json"
        self.pod_file.write_bytes(pod)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        cmd = [sys.executable, str(BENCH_DIR / "baseline_server.py"), str(self.pki), str(self.pod_file)]
        self.proc = subprocess.Popen(pinned(cmd, SERVER_CPU), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        m = _LISTENING.search(line)
        if not m or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"baseline server did not start: {line!r}")
        self.url = m.group(1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def client_ssl_context(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def server_ssl_context(pki: Path) -> ssl.SSLContext:
    """What the baseline server uses: pinnace's serving cert, client certs required like pinnace."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temp dir; the SQLite baseline and the server's data dir both live under it, so both are
    on the same filesystem."""
    base = os.environ.get("PINNACE_BENCH_TMP") or None
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as d:
        yield Path(d)


# --- workload -----------------------------------------------------------------------------------


BENCH_NAMESPACE = "bench"


def make_pod(name: str, namespace: str = BENCH_NAMESPACE) -> dict[str, Any]:
    """A Pod shaped like a real workload's (labels, annotations, probes, env, mounts): ~2 KiB."""
    app = "checkout"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/instance": f"{app}-prod",
                "app.kubernetes.io/version": "1.14.2",
                "app.kubernetes.io/component": "backend",
                "pod-template-hash": "7d9c5b8f6d",
                "tier": "web",
            },
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9102",
                "kubectl.kubernetes.io/default-container": app,
            },
        },
        "spec": {
            "containers": [
                {
                    "name": app,
                    "image": "registry.example.com/shop/checkout:1.14.2",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["--port=8080", "--metrics-port=9102", "--log-level=info"],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9102, "protocol": "TCP"},
                    ],
                    "env": [
                        {"name": "DATABASE_HOST", "value": "postgres.shop.svc.cluster.local"},
                        {"name": "CACHE_URL", "value": "redis://redis.shop.svc.cluster.local:6379/0"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
                        },
                    ],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                        "initialDelaySeconds": 5,
                        "periodSeconds": 10,
                    },
                    "livenessProbe": {
                        "httpGet": {"path": "/livez", "port": 8080, "scheme": "HTTP"},
                        "initialDelaySeconds": 15,
                        "periodSeconds": 20,
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/checkout", "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                    },
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": f"{app}-config"}},
                {"name": "tmp", "emptyDir": {}},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        },
    }


def pod_bytes(name: str, namespace: str = BENCH_NAMESPACE) -> bytes:
    return orjson.dumps(make_pod(name, namespace))


def namespace_body(name: str = BENCH_NAMESPACE) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def pods_path(namespace: str = BENCH_NAMESPACE) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


# --- statistics and results ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Row:
    """One line of a result table: measured value against a same-run baseline and a target."""

    metric: str
    value: float
    unit: str
    baseline: float | None = None  # None: the target is absolute (an SLO), no baseline
    baseline_label: str = ""
    target: str = ""
    passed: bool | None = None  # None: informational

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


@dataclass
class BenchResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"### {self.name}",
            "",
            "| metric | measured | baseline (same run) | ratio | target | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            base = "-" if r.baseline is None else f"{_fmt(r.baseline)} {r.unit} ({r.baseline_label})"
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
            verdict = "info" if r.passed is None else ("PASS" if r.passed else "FAIL")
            lines.append(
                f"| {r.metric} | {_fmt(r.value)} {r.unit} | {base} | {ratio} | {r.target or '-'} | {verdict} |"
            )
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": [
                {
                    "metric": r.metric,
                    "value": r.value,
                    "unit": r.unit,
                    "baseline": r.baseline,
                    "baseline_label": r.baseline_label,
                    "ratio": r.ratio,
                    "target": r.target,
                    "passed": r.passed,
                }
                for r in self.rows
            ],
            "notes": self.notes,
        }


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def print_result(result: BenchResult) -> None:
    print(result.markdown(), flush=True)
