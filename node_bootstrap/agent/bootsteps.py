"""An instance booting from its user-data: the bootstrap steps, their reports, and the join.

A real instance runs cloud-init: `write_files`, then `pinnace-bootstrap` (cloudinit/runner.py),
which plays the steps of `/etc/pinnace/bootstrap.json` in order under `bash -euo pipefail`,
reports each one to its Machine's status with the bootstrap token (a JSON merge patch of the
whole `status.bootstrap` object on `machines/<name>/status`), and writes the success marker.
Here the same happens with the shell simulated: the files are written under the instance's
directory, each step is reported exactly as the runner reports it, and the steps whose effects
the node depends on do their bookkeeping: the instance-metadata step adds `--provider-id` and
`--hostname-override` to the kubelet's flags (with the runner's own function), and the step
that starts the kubelet starts the simulated kubelet, which joins by TLS bootstrap, and
succeeds once it holds its client certificate, as the runner's step waits for it.

A fault plan can make a step fail with the log its command would have left; the boot stops
there (no CSR, no Node). Reporting is best effort: a missing Machine or a refused token is
logged, and the boot goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from controlplane.client import Client, ResourcePath
from node_bootstrap.agent.agent import NodeAgent
from node_bootstrap.agent.bootstrap import BootstrapSource
from node_bootstrap.agent.clock import Clock, RealClock, format_time
from node_bootstrap.agent.kube import Api, status_code
from node_bootstrap.agent.userdata import (
    BOOTSTRAP_KUBECONFIG_NAME,
    InstanceFacts,
    agent_config_for,
    bootstrap_kubeconfig_yaml,
    instance_dir,
    node_name,
    provider_id,
)
from node_bootstrap.cloudinit.joinconfig import (
    BOOTSTRAP_SCRIPT_PATH,
    KUBE_PROXY_CONFIG_PATH,
    KUBELET_CONFIG_PATH,
    KUBELET_EXTRA_ARGS_PATH,
    SUCCESS_MARKER_PATH,
    JoinConfig,
    MachineRef,
    Step,
)
from node_bootstrap.cloudinit.read import RenderedNode, read_user_data
from node_bootstrap.cloudinit.runner import with_identity

__all__ = [
    "MACHINES",
    "BootProgress",
    "BootResult",
    "BootState",
    "MachineReporter",
    "StepFailed",
    "StepFault",
    "StepReport",
    "StepState",
    "boot_instance",
    "bootstrap_status",
    "failure_log",
    "log_tail",
    "play_steps",
    "status_patch",
    "success_log",
]

log = logging.getLogger("pinnace.nodeagent.boot")

# Group infra.pinnace.dev (ccm/provisioning/api.py; node_bootstrap may not import ccm).
MACHINES = ResourcePath("infra.pinnace.dev", "v1alpha1", "machines", namespaced=False)
# As the runner keeps them: the last 20 lines, at most 2048 bytes.
TAIL_LINES, TAIL_BYTES = 20, 2048
ROOTFS = "rootfs"
FAILED_MARKER_PATH = "/var/lib/pinnace/bootstrap-failed"
INSTANCE_ENV_PATH = "/etc/pinnace/instance.env"
# How long the kubelet-starting step waits for the client certificate (the runner's is 600 s).
JOIN_TIMEOUT = 600.0


class StepState(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class BootState(StrEnum):
    """Where a simulated instance is, for progress views."""

    PENDING = "Pending"
    BOOTSTRAPPING = "Bootstrapping"  # playing the steps
    JOINING = "Joining"  # the kubelet runs; TLS bootstrap and registration under way
    RUNNING = "Running"  # registered and heartbeating
    FAILED = "Failed"  # a bootstrap step failed; as on a real instance, it stays so
    ERROR = "Error"  # could not boot (bad user-data, CA not pinned, join refused); retried
    STOPPED = "Stopped"


@dataclass
class BootProgress:
    state: BootState = BootState.PENDING
    step: str = ""
    message: str = ""
    agent: NodeAgent | None = None


@dataclass(frozen=True)
class StepFault:
    """Make `step` fail; `log` is its output (default: what its command would print)."""

    step: str
    log: str = ""


class StepFailed(Exception):
    """A step's bookkeeping failed; `output` is its log."""

    def __init__(self, output: str, exit_status: int = 1) -> None:
        super().__init__(output)
        self.output = output
        self.exit_status = exit_status


@dataclass
class StepReport:
    name: str
    state: StepState
    started_at: str
    finished_at: str = ""
    log_tail: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "state": self.state.value, "startedAt": self.started_at}
        if self.finished_at:
            doc["finishedAt"] = self.finished_at
        if self.log_tail is not None:
            doc["logTail"] = self.log_tail
        return doc


@dataclass(frozen=True)
class BootResult:
    succeeded: bool
    steps: tuple[StepReport, ...] = ()
    failed_step: str = ""


def bootstrap_status(
    steps: Sequence[StepReport], *, failed_step: str = "", completed: bool = False
) -> dict[str, Any]:
    """The whole `status.bootstrap` object, as the runner sends it every time (a null
    failedStep removes one a merge patch would otherwise keep)."""
    return {"steps": [s.to_json() for s in steps], "failedStep": failed_step or None, "completed": completed}


def status_patch(
    steps: Sequence[StepReport], *, failed_step: str = "", completed: bool = False
) -> dict[str, Any]:
    """The JSON merge patch for `machines/<name>/status`."""
    return {"status": {"bootstrap": bootstrap_status(steps, failed_step=failed_step, completed=completed)}}


def log_tail(text: str) -> str:
    lines = text.rstrip("\n").splitlines()[-TAIL_LINES:]
    return "\n".join(lines).encode()[-TAIL_BYTES:].decode(errors="ignore")


# -- what the commands would have printed --------------------------------------------------------

_STARTS = {"start", "restart", "enable", "reload-or-restart"}
_APT_INSTALL = re.compile(r"\bapt-get\b[^;&|\n]*?\binstall\b(?P<args>[^;&|\n]*)")
_STARTS_KUBELET = re.compile(r"\bsystemctl\s+(?:(?:re)?start|enable\s+--now)\s+kubelet\b")


def _joined(script: str) -> str:
    return script.replace("\\\n", " ")


def _commands(script: str) -> list[list[str]]:
    out = []
    for line in _joined(script).splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            words = shlex.split(text, comments=True)
        except ValueError:
            words = text.split()
        if words:
            out.append(words)
    return out


def _packages(script: str) -> list[str]:
    found = []
    for match in _APT_INSTALL.finditer(_joined(script)):
        for word in match.group("args").split():
            if word.startswith(("-", "$", "'", '"', "\\")):
                continue
            found.append(word.split("=", 1)[0].strip("\"'"))
    return found


def success_log(step: Step) -> str:
    """A plausible output of a step that worked: the packages set up, the units enabled."""
    lines = []
    packages = _packages(step.script)
    if packages:
        lines += ["Reading package lists...", "Building dependency tree...", "Reading state information..."]
        lines += [f"Setting up {p} ..." for p in packages]
    for words in _commands(step.script):
        units = [w for w in words[2:] if not w.startswith("-")]
        if words[0] == "systemctl" and len(words) > 1 and words[1] == "enable" and units:
            for unit in units:
                name = unit if "." in unit else f"{unit}.service"
                lines.append(
                    f"Created symlink /etc/systemd/system/multi-user.target.wants/{name} "
                    f"\u2192 /lib/systemd/system/{name}."
                )
        elif words[0] == "echo" and len(words) > 1 and not any(c in " ".join(words) for c in "$>"):
            lines.append(" ".join(words[1:]))
    return "\n".join(lines)


def failure_log(step: Step) -> tuple[str, int]:
    """What the step's failing command would leave at the end of its log, and its exit status."""
    packages = _packages(step.script)
    if packages:
        lines = ["Reading package lists...", "Building dependency tree...", "Reading state information..."]
        return "\n".join([*lines, f"E: Unable to locate package {packages[0]}"]), 100
    if "apt-get" in step.script:
        return (
            "\n".join(
                [
                    "Err:1 https://pkgs.k8s.io/core:/stable:/v1.33/deb  InRelease",
                    "  Could not resolve 'pkgs.k8s.io'",
                    "E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.33/deb/InRelease  "
                    "Could not resolve 'pkgs.k8s.io'",
                    "E: Some index files failed to download. They have been ignored, or old ones used instead.",
                ]
            ),
            100,
        )
    for words in _commands(step.script):
        if words[0] == "curl":
            return "curl: (22) The requested URL returned error: 404", 22
        units = [w for w in words[2:] if not w.startswith("-")]
        if words[0] == "systemctl" and len(words) > 1 and words[1] in _STARTS and units:
            unit = units[-1].removesuffix(".service")
            return (
                f"Job for {unit}.service failed because the control process exited with error code.\n"
                f'See "systemctl status {unit}.service" and "journalctl -xeu {unit}.service" for details.'
            ), 1
        if words[0] == "modprobe" and len(words) > 1:
            return (
                f"modprobe: FATAL: Module {words[-1]} not found in directory /lib/modules/6.8.0-1012-aws",
                1,
            )
    commands = _commands(step.script)
    command = commands[0][0] if commands else step.name
    return f"{step.name}: line 1: {command}: command not found", 127


# -- reporting -------------------------------------------------------------------------------


class MachineReporter:
    """Patches a Machine's status.bootstrap; never raises for the API's refusals."""

    def __init__(self, api: Api | None, machine: MachineRef | None) -> None:
        self._api = api
        self.machine = machine
        self.reported = 0
        self.refused: int | None = None

    async def report(self, patch: Mapping[str, Any]) -> bool:
        if self._api is None or self.machine is None:
            return False
        name = self.machine.name
        try:
            await self._api.patch(MACHINES, name, dict(patch), subresource="status")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("machine %s: cannot report bootstrap status: %s", name, exc)
            return False
        except Exception as exc:
            code = status_code(exc)
            if code is None:
                raise
            if self.refused != code:
                # Once per kind of refusal: every later step would meet it again.
                what = {404: "the Machine does not exist", 401: "the bootstrap token was refused"}.get(
                    code, "the bootstrap token may not patch it"
                )
                log.warning("machine %s: bootstrap status not reported (%s, %d): %s", name, what, code, exc)
            self.refused = code
            return False
        self.reported += 1
        return True


# -- the steps --------------------------------------------------------------------------------

Bookkeeping = Callable[[Step], Awaitable[str | None]]


async def play_steps(
    join: JoinConfig,
    reporter: MachineReporter,
    *,
    clock: Clock,
    fault: StepFault | None = None,
    step_seconds: float = 0.0,
    on_step: Callable[[str], None] | None = None,
    bookkeeping: Bookkeeping | None = None,
) -> BootResult:
    """Every step in order, reported Running and then Succeeded or Failed; stops at a failure.

    `bookkeeping(step)` does what the step means for the node; it returns the step's output
    (None: the usual output of its commands) or raises StepFailed."""
    if fault is not None and fault.step not in {s.name for s in join.steps}:
        log.warning("fault plan names step %r, not among %s", fault.step, [s.name for s in join.steps])
    done: list[StepReport] = []
    for step in join.steps:
        if on_step is not None:
            on_step(step.name)
        report = StepReport(step.name, StepState.RUNNING, started_at=format_time(clock.now().timestamp()))
        await reporter.report(status_patch([*done, report]))
        if step_seconds > 0:
            await clock.sleep(step_seconds)
        failure: tuple[str, int] | None = None
        output: str | None = None
        if fault is not None and fault.step == step.name:
            failure = (fault.log, 1) if fault.log else failure_log(step)
        elif bookkeeping is not None:
            try:
                output = await bookkeeping(step)
            except StepFailed as exc:
                failure = (exc.output, exc.exit_status)
        report.finished_at = format_time(clock.now().timestamp())
        done.append(report)
        if failure is not None:
            text, code = failure
            report.state = StepState.FAILED
            # The runner's own last line after the command's output.
            report.log_tail = log_tail(f"{text}\nstep {step.name} failed: exit status {code}\n")
            log.warning("bootstrap step %s failed:\n%s", step.name, report.log_tail)
            await reporter.report(status_patch(done, failed_step=step.name))
            return BootResult(False, tuple(done), failed_step=step.name)
        report.state = StepState.SUCCEEDED
        report.log_tail = log_tail(success_log(step) if output is None else output)
        await reporter.report(status_patch(done))
    await reporter.report(status_patch(done, completed=True))
    return BootResult(True, tuple(done))


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _in_root(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _extra_args(text: str) -> tuple[str, ...]:
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() == "KUBELET_EXTRA_ARGS":
            words = shlex.split(value)
            return tuple(shlex.split(words[0])) if len(words) == 1 else tuple(words)
    return ()


class _Kubelet:
    """The simulated kubelet of one instance, run by the boot's TaskGroup; its failure is kept
    (not raised into the group) so the step that started it can report it."""

    def __init__(self, agent: NodeAgent, stop: asyncio.Event) -> None:
        self.agent = agent
        self.stop = stop
        self.error: BaseException | None = None
        self.done = asyncio.Event()

    async def run(self) -> None:
        try:
            await self.agent.run(self.stop)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    def has_certificate(self) -> bool:
        return any(m.certificate is not None for m in self.agent.certificates.values())


class _Instance:
    """One boot: the instance's root file system under its directory, and its kubelet."""

    def __init__(
        self,
        rendered: RenderedNode,
        facts: InstanceFacts,
        *,
        data_dir: Path,
        clock: Clock,
        tg: asyncio.TaskGroup,
        stop: asyncio.Event,
        progress: BootProgress,
        agent_options: Mapping[str, Any],
        join_timeout: float,
    ) -> None:
        self.rendered = rendered
        self.facts = facts
        self.data_dir = data_dir
        self.home = instance_dir(data_dir, facts.instance_id)
        self.root = self.home / ROOTFS
        self.clock = clock
        self.tg = tg
        self.stop = stop
        self.progress = progress
        self.agent_options = agent_options
        self.join_timeout = join_timeout
        self.kubelet: _Kubelet | None = None

    def path(self, path: str) -> Path:
        return _in_root(self.root, path)

    def write_files(self) -> None:
        """cloud-init's write_files, under the instance's root instead of /."""
        for path, data in self.rendered.files.items():
            _write(self.path(path), data)

    def as_written(self) -> RenderedNode:
        """The user-data's view with the kubelet's files as the steps left them."""
        rendered = self.rendered
        extra = self.path(KUBELET_EXTRA_ARGS_PATH)
        config = self.path(KUBELET_CONFIG_PATH)
        if extra.exists():
            rendered = dataclasses.replace(rendered, kubelet_extra_args=_extra_args(extra.read_text()))
        if config.exists():
            doc = yaml.safe_load(config.read_text()) or {}
            if isinstance(doc, dict):
                rendered = dataclasses.replace(rendered, kubelet_config=doc)
        return rendered

    async def bookkeeping(self, step: Step) -> str | None:
        if f"{BOOTSTRAP_SCRIPT_PATH} metadata" in step.script:
            return self.instance_metadata()
        if _STARTS_KUBELET.search(step.script):
            try:
                return await self.start_kubelet(wait=True)
            except ValueError as exc:
                # A kubelet that refuses its flags exits at once; the step sees it in the journal.
                raise StepFailed(f"kubelet: {exc}", 1) from exc
        return None

    def instance_metadata(self) -> str:
        """`pinnace-bootstrap metadata`: who the instance is, into the kubelet's flags."""
        name = node_name(self.rendered, self.facts)
        pid = provider_id(self.rendered, self.facts)
        values = {
            "PINNACE_INSTANCE_ID": self.facts.instance_id,
            "PINNACE_ZONE": self.facts.zone,
            "PINNACE_REGION": self.facts.region,
            "PINNACE_NODE_NAME": name,
            "PINNACE_PROVIDER_ID": pid,
        }
        env = "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())
        _write(self.path(INSTANCE_ENV_PATH), env.encode(), 0o644)
        extra = self.path(KUBELET_EXTRA_ARGS_PATH)
        if extra.exists():
            _write(extra, with_identity(extra.read_text(), name, pid).encode(), 0o644)
        proxy = self.path(KUBE_PROXY_CONFIG_PATH)
        if proxy.exists():
            lines = [ln for ln in proxy.read_text().splitlines() if not ln.startswith("hostnameOverride:")]
            _write(proxy, ("\n".join([*lines, f'hostnameOverride: "{name}"']) + "\n").encode(), 0o644)
        return f"node {name}, providerID {pid}"

    async def start_kubelet(self, *, wait: bool) -> str:
        """Start the kubelet; with `wait`, until it holds its client certificate (the join)."""
        if self.kubelet is None:
            config = agent_config_for(
                self.as_written(), self.facts, data_dir=self.data_dir, **self.agent_options
            )
            agent = NodeAgent(config, clock=self.clock)
            self.kubelet = _Kubelet(agent, self.stop)
            self.progress.agent = agent
            self.tg.create_task(self.kubelet.run(), name=f"kubelet {self.facts.instance_id}")
            self.tg.create_task(self._mark_running(self.kubelet))
        kubelet = self.kubelet
        if not wait:
            return ""
        deadline = self.clock.monotonic() + self.join_timeout
        while not kubelet.has_certificate():
            if kubelet.done.is_set() or self.clock.monotonic() > deadline:
                journal = f"kubelet: {kubelet.error}" if kubelet.error else "kubelet: waiting for its CSR"
                raise StepFailed(
                    f"the kubelet got no client certificate in {self.join_timeout:g}s\n{journal}", 1
                )
            # Polled, as the runner's loop polls the certificate file.
            await asyncio.sleep(0.05)
        return "kubelet joined"

    async def _mark_running(self, kubelet: _Kubelet) -> None:
        started = asyncio.ensure_future(kubelet.agent.started.wait())
        ended = asyncio.ensure_future(kubelet.done.wait())
        try:
            await asyncio.wait({started, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
            ended.cancel()
        if kubelet.agent.started.is_set() and not kubelet.done.is_set():
            self.progress.state = BootState.RUNNING


def _reporter_client(rendered: RenderedNode) -> Client:
    source = BootstrapSource(
        server=rendered.join.server or rendered.bootstrap.server,
        ca_pem=rendered.bootstrap.ca_pem,
        token=rendered.bootstrap.token,
    )
    return Client(source.credentials(), user_agent="pinnace-bootstrap", max_retries=2)


async def boot_instance(
    user_data: bytes,
    instance: InstanceFacts,
    *,
    data_dir: Path,
    stop: asyncio.Event,
    clock: Clock | None = None,
    fault: StepFault | None = None,
    progress: BootProgress | None = None,
    step_seconds: float = 0.0,
    port: int = 0,
    bind_address: str = "127.0.0.1",
    overrides: Mapping[str, Any] | None = None,
    reporter_api: Api | None = None,
    join_timeout: float = JOIN_TIMEOUT,
) -> BootResult:
    """Boot `instance` from `user_data` and run its node until `stop` is set.

    Raises JoinConfigError / UserDataError (ValueErrors) for user-data that cannot make a node
    and CAPinError for a CA that is not pinned (before anything is sent with the token), and
    BootstrapError when a node that bootstrapped before cannot rejoin. Returns when `stop` is
    set, or at once with a failed result when a step failed, now or on an earlier boot: as
    with cloud-init, the steps run once per instance."""
    clock = clock or RealClock()
    progress = progress or BootProgress()
    rendered = read_user_data(user_data)
    options: dict[str, Any] = {"port": port, "bind_address": bind_address, "overrides": overrides}
    # Everything checked (the CA pin first) before the token is used for anything.
    agent_config_for(rendered, instance, data_dir=data_dir, **options)
    home = instance_dir(data_dir, instance.instance_id)
    _write(home / BOOTSTRAP_KUBECONFIG_NAME, bootstrap_kubeconfig_yaml(rendered).encode())
    failed_marker = _in_root(home / ROOTFS, FAILED_MARKER_PATH)
    success_marker = _in_root(home / ROOTFS, SUCCESS_MARKER_PATH)
    if failed_marker.exists():
        step = failed_marker.read_text().strip()
        progress.state, progress.step = BootState.FAILED, step
        progress.message = f"bootstrap step {step} failed on an earlier boot"
        return BootResult(False, failed_step=step)
    result = BootResult(True)
    error: BaseException | None = None
    kubelet_stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        node = _Instance(
            rendered,
            instance,
            data_dir=data_dir,
            clock=clock,
            tg=tg,
            stop=kubelet_stop,
            progress=progress,
            agent_options=options,
            join_timeout=join_timeout,
        )
        try:
            if success_marker.exists():
                log.info("instance %s: bootstrapped before; starting the kubelet", instance.instance_id)
            else:
                played = await _unless_stopped(
                    stop, _bootstrap(node, fault, progress, clock, step_seconds, reporter_api)
                )
                if played is None:
                    # Powered off mid-boot: nothing is marked, so the next boot plays every step.
                    progress.state, progress.step = BootState.STOPPED, ""
                    return BootResult(False)
                result = played
                if not result.succeeded:
                    _write(failed_marker, result.failed_step.encode() + b"\n", 0o644)
                    progress.state = BootState.FAILED
                    progress.message = f"bootstrap step {result.failed_step} failed"
                    return result
                _write(success_marker, format_time(clock.now().timestamp()).encode() + b"\n", 0o644)
            if progress.state is not BootState.RUNNING:
                progress.state = BootState.JOINING
            progress.step = ""
            await node.start_kubelet(wait=False)
            kubelet = node.kubelet
            assert kubelet is not None
            stopped = asyncio.ensure_future(stop.wait())
            ended = asyncio.ensure_future(kubelet.done.wait())
            try:
                await asyncio.wait({stopped, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                ended.cancel()
            error = kubelet.error
        finally:
            kubelet_stop.set()
    progress.agent = None
    if error is not None:
        # Raised here, not in the TaskGroup, so callers get the error itself, not a group.
        raise error
    progress.state = BootState.STOPPED
    return result


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[BootResult]) -> BootResult | None:
    """`work`'s result, or None when `stop` came first (then `work` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


async def _bootstrap(
    node: _Instance,
    fault: StepFault | None,
    progress: BootProgress,
    clock: Clock,
    step_seconds: float,
    reporter_api: Api | None,
) -> BootResult:
    progress.state = BootState.BOOTSTRAPPING
    node.write_files()

    def on_step(name: str) -> None:
        progress.step = name

    rendered = node.rendered
    own = _reporter_client(rendered) if reporter_api is None and rendered.join.machine else None
    try:
        reporter = MachineReporter(reporter_api or own, rendered.join.machine)
        return await play_steps(
            rendered.join,
            reporter,
            clock=clock,
            fault=fault,
            step_seconds=step_seconds,
            on_step=on_step,
            bookkeeping=node.bookkeeping,
        )
    finally:
        if own is not None:
            await own.close()
