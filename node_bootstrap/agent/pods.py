"""One pod's simulated life on a node: a pure state machine over (pod object, time).

`SimPod` holds what the container runtime would know (which containers run, since when, with
what id, how often they restarted) and advances it to a given time; `status()` renders the
PodStatus the kubelet would write, with upstream phases, conditions, reasons and messages
(`pkg/kubelet/status/generate.go`, `getPhase` in `kubelet_pods.go`). It never does IO: the pod
worker feeds it pod objects and the time, sends the status it renders, and appends the log
lines it reports to the container log buffers.

How a simulated container behaves comes from the pod's annotations (`sim.pinnace.dev/...`),
re-read on every update, so a test can change a running pod's fate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node_bootstrap.agent.clock import format_time, parse_time
from node_bootstrap.agent.quantity import parse_quantity

__all__ = [
    "ANNOTATION_EXIT_CODE",
    "ANNOTATION_IGNORE_SIGTERM",
    "ANNOTATION_INIT_SECONDS",
    "ANNOTATION_READY",
    "ANNOTATION_RUN_SECONDS",
    "ANNOTATION_START_DELAY",
    "Backoff",
    "Behaviour",
    "LogEvent",
    "SimPod",
    "behaviour_from",
    "go_duration",
    "normalize_image",
    "qos_class",
]

Obj = dict[str, Any]

ANNOTATION_PREFIX = "sim.pinnace.dev/"
# "false": every container's readiness probe fails (the pod leaves Service endpoints).
ANNOTATION_READY = ANNOTATION_PREFIX + "ready"
# Containers exit this many seconds after they start (with exit-code, default 0).
ANNOTATION_RUN_SECONDS = ANNOTATION_PREFIX + "run-seconds"
# The exit code of app containers when they exit; alone, it makes them exit at once.
ANNOTATION_EXIT_CODE = ANNOTATION_PREFIX + "exit-code"
# Seconds a container spends in ContainerCreating (pulling its image) before it starts.
ANNOTATION_START_DELAY = ANNOTATION_PREFIX + "start-delay-seconds"
# Seconds each (non-sidecar) init container runs before completing with code 0.
ANNOTATION_INIT_SECONDS = ANNOTATION_PREFIX + "init-seconds"
# "true": containers ignore SIGTERM and are killed when the grace period ends.
ANNOTATION_IGNORE_SIGTERM = ANNOTATION_PREFIX + "ignore-sigterm"

KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")

# Reasons and messages as the kubelet writes them.
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"
CONTAINER_STATUS_UNKNOWN_MESSAGE = "The container could not be located when the pod was terminated"
DEADLINE_EXCEEDED = "DeadlineExceeded"
DEADLINE_EXCEEDED_MESSAGE = "Pod was active on the node longer than the specified deadline"
EXIT_SIGKILL = 137


@dataclass(frozen=True)
class Behaviour:
    """What the annotations ask of the simulated containers."""

    ready: bool = True
    run_seconds: float | None = None
    exit_code: int = 0
    start_delay: float = 0.0
    init_seconds: float = 0.0
    ignore_sigterm: bool = False
    problems: tuple[str, ...] = ()


def behaviour_from(annotations: Mapping[str, Any] | None) -> Behaviour:
    """Parse the `sim.pinnace.dev/` annotations; values that do not parse are reported in
    `problems` and ignored."""
    notes = annotations or {}
    problems: list[str] = []

    def seconds(key: str) -> float | None:
        raw = notes.get(key)
        if raw is None:
            return None
        try:
            value = float(str(raw))
        except ValueError:
            value = -1.0
        if not value >= 0:  # negative or NaN
            problems.append(f'{key}: "{raw}" is not a number of seconds')
            return None
        return value

    def flag(key: str, default: bool) -> bool:
        raw = notes.get(key)
        if raw is None:
            return default
        text = str(raw).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        problems.append(f'{key}: "{raw}" is neither "true" nor "false"')
        return default

    exit_code = 0
    exit_given = False
    if (raw := notes.get(ANNOTATION_EXIT_CODE)) is not None:
        try:
            exit_code = int(str(raw))
        except ValueError:
            exit_code = -1
        if 0 <= exit_code <= 255:
            exit_given = True
        else:
            problems.append(f'{ANNOTATION_EXIT_CODE}: "{raw}" is not an exit code (0-255)')
            exit_code = 0
    run_seconds = seconds(ANNOTATION_RUN_SECONDS)
    if run_seconds is None and exit_given:
        run_seconds = 0.0
    return Behaviour(
        ready=flag(ANNOTATION_READY, True),
        run_seconds=run_seconds,
        exit_code=exit_code,
        start_delay=seconds(ANNOTATION_START_DELAY) or 0.0,
        init_seconds=seconds(ANNOTATION_INIT_SECONDS) or 0.0,
        ignore_sigterm=flag(ANNOTATION_IGNORE_SIGTERM, False),
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class Backoff:
    """Crash-loop back-off: the first restart is immediate, then base, 2*base, ... up to max;
    a run that lasted `reset_after` seconds forgets earlier crashes (upstream: 10 s, 5 min, 10 min)."""

    base: float = 10.0
    maximum: float = 300.0
    reset_after: float = 600.0

    def delay(self, crashes: int) -> float:
        if crashes <= 1:
            return 0.0
        return float(min(self.base * 2 ** (crashes - 2), self.maximum))


@dataclass(frozen=True)
class LogEvent:
    container: str
    at: float
    message: str
    new_run: bool = False  # the line opens a new run of the container (a restart)
    end_run: bool = False  # the line is the run's last (the container exited)


def go_duration(seconds: float) -> str:
    """time.Duration.String() for whole seconds: "10s", "1m20s", "5m0s", "1h0m0s"."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def normalize_image(image: str) -> tuple[str, str]:
    """(image as containerd reports it, its image ID). The digest is simulated: the sha256 of the
    reference, stable for a given image name."""
    name, _, digest = image.partition("@")
    first, slash, rest = name.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        domain, path = "docker.io", name
    else:
        domain, path = first, rest
    if domain == "docker.io" and "/" not in path.split(":")[0]:
        path = f"library/{path}"
    repo, colon, tag = path.rpartition(":") if ":" in path.split("/")[-1] else (path, "", "")
    if not colon:
        repo, tag = path, ""
    full_repo = f"{domain}/{repo}"
    if digest:
        reported = f"{full_repo}@{digest}"
        return reported, reported
    reported = f"{full_repo}:{tag or 'latest'}"
    return reported, f"{full_repo}@sha256:{hashlib.sha256(reported.encode()).hexdigest()}"


_QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: Obj) -> str:
    """`qos.GetPodQOS`: Guaranteed, Burstable or BestEffort from cpu/memory requests and limits."""
    pod_resources = spec.get("resources")
    if isinstance(pod_resources, dict) and pod_resources:
        holders = [pod_resources]
    else:
        holders = [
            c.get("resources") or {}
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        ]
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for res in holders:
        found_limits = set()
        for name, value in (res.get("requests") or {}).items():
            if name in _QOS_RESOURCES and _quantity(value) != 0:
                requests[name] = requests.get(name, 0) + _quantity(value)
        for name, value in (res.get("limits") or {}).items():
            if name in _QOS_RESOURCES and _quantity(value) != 0:
                found_limits.add(name)
                limits[name] = limits.get(name, 0) + _quantity(value)
        if not found_limits.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for name, req in requests.items():
            if limits.get(name) != req:
                guaranteed = False
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _quantity(value: Any) -> Any:
    try:
        return parse_quantity(value)
    except ValueError:
        return 0


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    init: bool
    restartable: bool  # an init container with restartPolicy Always: a sidecar
    readiness_delay: float | None  # None: no readiness probe
    startup_delay: float | None  # None: no startup probe

    @classmethod
    def from_dict(cls, ctr: Obj, *, init: bool) -> ContainerSpec:
        def delay(probe: Any) -> float | None:
            if not isinstance(probe, dict):
                return None
            return float(probe.get("initialDelaySeconds") or 0)

        return cls(
            name=str(ctr.get("name", "")),
            image=str(ctr.get("image", "")),
            init=init,
            restartable=init and ctr.get("restartPolicy") == "Always",
            readiness_delay=delay(ctr.get("readinessProbe")),
            startup_delay=delay(ctr.get("startupProbe")),
        )


@dataclass
class ContainerRun:
    """The runtime's view of one container across its restarts."""

    spec: ContainerSpec
    state: str = "waiting"  # waiting | running | terminated
    waiting_reason: str = CONTAINER_CREATING
    waiting_message: str = ""
    create_at: float | None = None  # when it will start; None while not yet due to start
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int = 0
    term_reason: str = ""
    term_message: str = ""
    last_terminated: Obj | None = None
    restart_count: int = 0
    container_id: str = ""
    ready: bool = False
    started: bool = False
    restart_at: float | None = None
    crashes: int = 0
    signalled: bool = False
    ever_ran: bool = False
    probe_failure_logged: bool = False
    pull_started_at: float | None = None

    def terminated_dict(self) -> Obj:
        out: Obj = {"exitCode": self.exit_code, "reason": self.term_reason}
        if self.term_message:
            out["message"] = self.term_message
        out["startedAt"] = format_time(self.started_at) if self.started_at is not None else None
        out["finishedAt"] = format_time(self.finished_at) if self.finished_at is not None else None
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def _container_id(uid: str, name: str, restart: int) -> str:
    return "containerd://" + hashlib.sha256(f"{uid}/{name}/{restart}".encode()).hexdigest()


def _container_map(statuses: Any) -> dict[str, Obj]:
    return {str(s.get("name")): s for s in statuses or [] if isinstance(s, dict)}


@dataclass
class SimPod:
    """Create with `SimPod.adopt(pod, now, ...)`: a new pod starts fresh, a pod whose status shows
    running containers (an agent restart) continues where the status says it is."""

    uid: str
    namespace: str
    name: str
    host_ips: list[str]
    restart_policy: str
    host_network: bool
    init: list[ContainerRun]
    app: list[ContainerRun]
    backoff: Backoff
    images: set[str]
    behaviour: Behaviour = field(default_factory=Behaviour)
    start_time: float | None = None
    active_deadline: float | None = None
    pod_ips: list[str] = field(default_factory=list)
    sandbox: bool = False
    init_done_at: float | None = None
    deleting_since: float | None = None
    kill_at: float | None = None
    grace: float = 30.0
    terminal: bool = False
    reason: str = ""
    message: str = ""
    readiness_gates: tuple[str, ...] = ()
    qos: str = "BestEffort"
    events: list[LogEvent] = field(default_factory=list)
    # Counts state changes, so `advance` can repeat until nothing more happens at `now`.
    _transitions: int = field(default=0, init=False, repr=False)

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def adopt(
        cls,
        pod: Obj,
        now: float,
        *,
        host_ips: list[str],
        backoff: Backoff | None = None,
        images: set[str] | None = None,
    ) -> SimPod:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        sim = cls(
            uid=str(meta.get("uid", "")),
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            host_ips=list(host_ips),
            restart_policy=str(spec.get("restartPolicy") or "Always"),
            host_network=bool(spec.get("hostNetwork")),
            init=[
                ContainerRun(ContainerSpec.from_dict(c, init=True)) for c in spec.get("initContainers") or []
            ],
            app=[ContainerRun(ContainerSpec.from_dict(c, init=False)) for c in spec.get("containers") or []],
            backoff=backoff or Backoff(),
            images=images if images is not None else set(),
            readiness_gates=tuple(
                str(g.get("conditionType")) for g in spec.get("readinessGates") or [] if isinstance(g, dict)
            ),
            qos=str(status.get("qosClass") or qos_class(spec)),
        )
        if sim.init:
            for run in sim.init + sim.app:
                run.waiting_reason = POD_INITIALIZING
        sim._adopt_status(status, now)
        sim.observe(pod, now)
        return sim

    def _adopt_status(self, status: Obj, now: float) -> None:
        phase = status.get("phase")
        self.start_time = parse_time(status.get("startTime"))
        if phase in ("Succeeded", "Failed"):
            self.terminal = True
            self.reason = str(status.get("reason") or "")
            self.message = str(status.get("message") or "")
        restored = False
        for runs, key in ((self.init, "initContainerStatuses"), (self.app, "containerStatuses")):
            old = _container_map(status.get(key))
            for run in runs:
                restored |= self._adopt_container(run, old.get(run.spec.name), now)
        ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
        if not ips and status.get("podIP"):
            ips = [str(status["podIP"])]
        if restored or self.terminal:
            self.pod_ips = ips
            self.sandbox = not self.terminal
        if self.init and all(self._init_complete(run) for run in self.init):
            self.init_done_at = now
        for run in self.app:
            if self.init_done_at is not None and run.waiting_reason == POD_INITIALIZING:
                run.waiting_reason = CONTAINER_CREATING

    def _adopt_container(self, run: ContainerRun, old: Obj | None, now: float) -> bool:
        if not old:
            return False
        state = old.get("state") or {}
        run.restart_count = int(old.get("restartCount") or 0)
        last = (old.get("lastState") or {}).get("terminated")
        run.last_terminated = dict(last) if isinstance(last, dict) else None
        run.crashes = run.restart_count
        if isinstance(state.get("running"), dict) and old.get("containerID"):
            run.state = "running"
            run.ever_ran = True
            run.container_id = str(old["containerID"])
            run.started_at = parse_time(state["running"].get("startedAt")) or now
            run.started = bool(old.get("started")) or run.spec.startup_delay is None
            run.ready = bool(old.get("ready"))
            self.events.append(
                LogEvent(
                    run.spec.name,
                    now,
                    "node agent restarted: adopted the running container; earlier log lines were not kept",
                )
            )
            return True
        if isinstance(state.get("terminated"), dict):
            term = state["terminated"]
            run.state = "terminated"
            run.ever_ran = True
            run.exit_code = int(term.get("exitCode") or 0)
            run.term_reason = str(term.get("reason") or "")
            run.term_message = str(term.get("message") or "")
            run.started_at = parse_time(term.get("startedAt"))
            run.finished_at = parse_time(term.get("finishedAt"))
            run.container_id = str(term.get("containerID") or old.get("containerID") or "")
            run.ready = bool(old.get("ready"))
            # A container due to restart is picked up by `advance`, with its back-off.
            self.events.append(
                LogEvent(
                    run.spec.name,
                    now,
                    f"node agent restarted: the container had exited with code {run.exit_code}; "
                    "its log lines were not kept",
                )
            )
            return True
        if run.last_terminated is not None:
            # Crash-looping when the agent stopped: restart it now.
            run.ever_ran = True
            run.restart_at = now
            run.waiting_reason = CRASH_LOOP_BACK_OFF
            return True
        return False

    # -- inputs --------------------------------------------------------------------------------

    def observe(self, pod: Obj, now: float) -> None:
        """Take in a newer version of the pod: annotations, deadlines, deletion."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        behaviour = behaviour_from(meta.get("annotations"))
        if behaviour.problems and behaviour.problems != self.behaviour.problems:
            for problem in behaviour.problems:
                self._log_all(now, f"ignoring annotation {problem}")
        self.behaviour = behaviour
        deadline = spec.get("activeDeadlineSeconds")
        self.active_deadline = float(deadline) if isinstance(deadline, int | float) else None
        if meta.get("deletionTimestamp"):
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            if self.deleting_since is None:
                self.deleting_since = now
                self.grace = grace
                self.kill_at = now + grace
            elif self.kill_at is not None and now + grace < self.kill_at:
                # A second delete with a shorter grace period shortens the wait, as upstream.
                self.grace = grace
                self.kill_at = now + grace

    @property
    def needs_sandbox(self) -> bool:
        return not self.sandbox and not self.terminal and self.deleting_since is None

    def set_sandbox(self, pod_ips: list[str], now: float, note: str = "") -> None:
        self.sandbox = True
        self.pod_ips = list(self.host_ips if self.host_network else pod_ips)
        if note:
            self._log_all(now, note)

    @property
    def deletable(self) -> bool:
        """Deleted by the user and nothing runs any more: the pod can be removed."""
        return self.deleting_since is not None and self.terminal

    # -- time ----------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Everything that happens up to `now`, in order, until nothing more does (a container
        that exits at once and restarts at once is two steps at the same instant)."""
        for _ in range(64):
            before = self._transitions
            self._step(now)
            if self._transitions == before:
                return

    def _step(self, now: float) -> None:
        if self.start_time is None:
            self.start_time = now
        if self.terminal:
            return
        if self.deleting_since is not None:
            self._terminate_for_deletion(now)
            return
        if self.active_deadline is not None and now >= self.start_time + self.active_deadline:
            self._kill_all(now, f"pod exceeded activeDeadlineSeconds ({go_duration(self.active_deadline)})")
            self.reason, self.message = DEADLINE_EXCEEDED, DEADLINE_EXCEEDED_MESSAGE
            self.terminal = True
            return
        if not self.sandbox:
            return
        if not self._advance_init(now):
            self._update_probes(now)
            return
        for run in self.app:
            self._advance_container(run, now)
        self._update_probes(now)
        self._stop_sidecars_when_done(now)
        if self.restart_policy != "Always" and self._phase() in ("Succeeded", "Failed"):
            self.terminal = True
            self._transitions += 1

    def _advance_init(self, now: float) -> bool:
        """Run init containers in order; True once all of them are done (sidecars: started)."""
        if self.init_done_at is not None:
            for run in self.init:
                if run.spec.restartable:
                    self._advance_container(run, now)
            return True
        for run in self.init:
            if run.spec.restartable:
                self._advance_container(run, now)
                if not run.started:
                    return False
                continue
            if run.state == "terminated" and run.exit_code == 0:
                continue
            if run.state == "waiting" and run.create_at is None:
                run.create_at = now + self.behaviour.start_delay
                self._announce_pull(run, now)
            if run.state == "waiting" and run.create_at is not None and now >= run.create_at:
                self._start(run, now)
            if run.state == "running" and run.started_at is not None:
                done_at = run.started_at + self.behaviour.init_seconds
                if now >= done_at:
                    self._exit(run, done_at, 0, "Completed", "init container completed")
                    run.ready = True
                    continue
            return False
        self.init_done_at = now
        self._transitions += 1
        for run in self.app:
            if run.state == "waiting" and run.waiting_reason == POD_INITIALIZING:
                run.waiting_reason = CONTAINER_CREATING
        return True

    def _advance_container(self, run: ContainerRun, now: float) -> None:
        if run.state == "waiting" and not run.ever_ran and run.create_at is None:
            run.create_at = now + self.behaviour.start_delay
            self._announce_pull(run, now)
        if run.state == "waiting" and run.restart_at is not None and now >= run.restart_at:
            run.restart_at = None
            self._restart(run, now)
        elif (
            run.state == "waiting" and not run.ever_ran and run.create_at is not None and now >= run.create_at
        ):
            self._start(run, now)
        if run.state == "running" and run.started_at is not None and not run.spec.restartable:
            runtime = self.behaviour.run_seconds
            if runtime is not None and now >= run.started_at + runtime:
                code = self.behaviour.exit_code
                self._exit(
                    run,
                    run.started_at + runtime,
                    code,
                    "Completed" if code == 0 else "Error",
                    f"exited with code {code} after {_secs(runtime)} ({ANNOTATION_RUN_SECONDS})",
                )
        if run.state == "terminated" and run.restart_at is None and self._should_restart(run):
            self._schedule_restart(run, now)
            if run.restart_at is not None and now >= run.restart_at:
                run.restart_at = None
                self._restart(run, now)

    def _should_restart(self, run: ContainerRun) -> bool:
        if run.spec.init and not run.spec.restartable:
            return False
        if run.spec.restartable or self.restart_policy == "Always":
            return True
        return self.restart_policy == "OnFailure" and run.exit_code != 0

    def _schedule_restart(self, run: ContainerRun, now: float) -> None:
        ran = (run.finished_at or now) - (run.started_at or now)
        if ran >= self.backoff.reset_after:
            run.crashes = 0
        run.crashes += 1
        self._transitions += 1
        delay = self.backoff.delay(run.crashes)
        run.last_terminated = run.terminated_dict()
        run.restart_at = now + delay
        if delay > 0:
            run.state = "waiting"
            run.waiting_reason = CRASH_LOOP_BACK_OFF
            run.waiting_message = (
                f"back-off {go_duration(delay)} restarting failed container={run.spec.name} "
                f"pod={self.name}_{self.namespace}({self.uid})"
            )
            self._log(
                run,
                now,
                f"Back-off restarting failed container {run.spec.name}: waiting {go_duration(delay)}",
            )

    def _restart(self, run: ContainerRun, now: float) -> None:
        if run.state == "terminated":
            run.last_terminated = run.terminated_dict()
        run.restart_count += 1
        run.state = "waiting"
        self._start(run, now, restart=True)

    def _announce_pull(self, run: ContainerRun, now: float) -> None:
        run.pull_started_at = now
        image = run.spec.image
        if image in self.images:
            self._log(run, now, f'Container image "{image}" already present on machine')
        else:
            self._log(run, now, f'Pulling image "{image}"')

    def _start(self, run: ContainerRun, now: float, *, restart: bool = False) -> None:
        image = run.spec.image
        if not restart and image not in self.images:
            pulled_in = now - (run.pull_started_at if run.pull_started_at is not None else now)
            self._log(run, now, f'Successfully pulled image "{image}" in {_secs(max(pulled_in, 0.0))}')
            self.images.add(image)
        self._transitions += 1
        run.container_id = _container_id(self.uid, run.spec.name, run.restart_count)
        run.state = "running"
        run.ever_ran = True
        run.started_at = now
        run.finished_at = None
        run.signalled = False
        run.waiting_reason, run.waiting_message = "", ""
        run.ready = False
        run.started = run.spec.startup_delay is None
        self.events.append(
            LogEvent(run.spec.name, now, f"Created container {run.spec.name}", new_run=restart)
        )
        suffix = f" (restart {run.restart_count})" if run.restart_count else ""
        self._log(run, now, f"Started container {run.spec.name}{suffix}")

    def _exit(self, run: ContainerRun, at: float, code: int, reason: str, why: str) -> None:
        self._transitions += 1
        run.state = "terminated"
        run.exit_code = code
        run.term_reason = reason
        run.term_message = ""
        run.finished_at = at
        if run.ready:
            self._log(run, at, f"Container {run.spec.name} is no longer ready: it stopped")
        run.ready = False
        run.started = False
        self.events.append(LogEvent(run.spec.name, at, f"Container {run.spec.name} {why}", end_run=True))

    def _update_probes(self, now: float) -> None:
        for run in self.init + self.app:
            if run.state != "running" or run.started_at is None:
                continue
            if run.spec.init and not run.spec.restartable:
                continue
            if not run.started and run.spec.startup_delay is not None:
                if now >= run.started_at + run.spec.startup_delay:
                    run.started = True
                    self._transitions += 1
                    self._log(run, now, "Startup probe succeeded")
                else:
                    continue
            ready_at = run.started_at + (run.spec.readiness_delay or 0.0)
            want = run.started and self.behaviour.ready and now >= ready_at
            if want and not run.ready:
                self._log(run, now, "Readiness probe succeeded: container is ready")
                run.probe_failure_logged = False
            elif not want and run.started and now >= ready_at and not run.probe_failure_logged:
                # Logged once per failing stretch: later probes fail the same way.
                self._log(run, now, f'Readiness probe failed: {ANNOTATION_READY} is "false"')
                run.probe_failure_logged = True
            if want != run.ready:
                self._transitions += 1
            run.ready = want

    def _stop_sidecars_when_done(self, now: float) -> None:
        if self.restart_policy == "Always":
            return
        if not all(r.state == "terminated" and r.restart_at is None for r in self.app):
            return
        for run in self.init:
            if run.spec.restartable and run.state == "running":
                self._exit(
                    run, now, 0, "Completed", "exited with code 0 on SIGTERM (all app containers finished)"
                )

    def _terminate_for_deletion(self, now: float) -> None:
        assert self.deleting_since is not None and self.kill_at is not None
        for run in self.app + self.init:
            if run.state == "running":
                if not run.signalled:
                    run.signalled = True
                    self._log(
                        run,
                        now,
                        f"Stopping container {run.spec.name}: SIGTERM, grace period {_secs(self.grace)}",
                    )
                    if not self.behaviour.ignore_sigterm:
                        self._exit(run, now, 0, "Completed", "exited with code 0 on SIGTERM")
                        continue
                    self._log(
                        run, now, f"Container {run.spec.name} ignores SIGTERM ({ANNOTATION_IGNORE_SIGTERM})"
                    )
                if now >= self.kill_at:
                    self._exit(
                        run,
                        now,
                        EXIT_SIGKILL,
                        "Error",
                        f"killed with SIGKILL: grace period {_secs(self.grace)} ended",
                    )
            elif run.state == "waiting":
                run.restart_at = None
                if not run.ever_ran:
                    run.state = "terminated"
                    run.exit_code = EXIT_SIGKILL
                    run.term_reason = CONTAINER_STATUS_UNKNOWN
                    run.term_message = CONTAINER_STATUS_UNKNOWN_MESSAGE
        if not any(r.state == "running" for r in self.app + self.init):
            self.terminal = True

    def _kill_all(self, now: float, why: str) -> None:
        for run in self.app + self.init:
            run.restart_at = None
            if run.state == "running":
                self._exit(run, now, EXIT_SIGKILL, "Error", f"killed: {why}")

    def next_deadline(self, now: float) -> float | None:
        """When `advance` next has something to do without a new input."""
        if self.terminal:
            return None
        times: list[float] = []
        if self.deleting_since is not None:
            if self.kill_at is not None and any(r.state == "running" for r in self.app + self.init):
                times.append(self.kill_at)
        else:
            if self.active_deadline is not None and self.start_time is not None:
                times.append(self.start_time + self.active_deadline)
            for run in self.init + self.app:
                times.extend(self._container_deadlines(run))
        future = [t for t in times if t > now]
        return min(future) if future else None

    def _container_deadlines(self, run: ContainerRun) -> list[float]:
        out: list[float] = []
        if run.state == "waiting":
            if run.restart_at is not None:
                out.append(run.restart_at)
            elif run.create_at is not None:
                out.append(run.create_at)
        elif run.state == "running" and run.started_at is not None:
            if run.spec.init and not run.spec.restartable:
                out.append(run.started_at + self.behaviour.init_seconds)
            elif not run.spec.restartable and self.behaviour.run_seconds is not None:
                out.append(run.started_at + self.behaviour.run_seconds)
            if run.spec.startup_delay is not None and not run.started:
                out.append(run.started_at + run.spec.startup_delay)
            if run.spec.readiness_delay:
                out.append(run.started_at + run.spec.readiness_delay)
        return out

    # -- logging -------------------------------------------------------------------------------

    def _log(self, run: ContainerRun, at: float, message: str) -> None:
        self.events.append(LogEvent(run.spec.name, at, message))

    def _log_all(self, at: float, message: str) -> None:
        for run in self.init + self.app:
            self.events.append(LogEvent(run.spec.name, at, message))

    def take_events(self) -> list[LogEvent]:
        events, self.events = self.events, []
        return events

    # -- status --------------------------------------------------------------------------------

    def _container_status(self, run: ContainerRun) -> Obj:
        image, image_id = normalize_image(run.spec.image)
        state: Obj
        if run.state == "running":
            state = {"running": {"startedAt": format_time(run.started_at or 0.0)}}
        elif run.state == "terminated":
            state = {"terminated": run.terminated_dict()}
        else:
            waiting: Obj = {"reason": run.waiting_reason or CONTAINER_CREATING}
            if run.waiting_message:
                waiting["message"] = run.waiting_message
            state = {"waiting": waiting}
        out: Obj = {
            "name": run.spec.name,
            "state": state,
            "lastState": {"terminated": dict(run.last_terminated)} if run.last_terminated else {},
            "ready": run.ready,
            "restartCount": run.restart_count,
            "image": image,
            "imageID": image_id if run.ever_ran else "",
        }
        if run.container_id:
            out["containerID"] = run.container_id
        out["started"] = run.started
        return out

    @staticmethod
    def _init_complete(run: ContainerRun) -> bool:
        if run.spec.restartable:
            return run.started
        return run.state == "terminated" and run.exit_code == 0

    def _phase(self) -> str:
        """`getPhase` over the current container states."""
        if self.reason == DEADLINE_EXCEEDED:
            return "Failed"
        pending_init = failed_init = 0
        pending_sidecar = 0
        unknown = running = waiting = stopped = succeeded = 0
        for run in self.init:
            if run.spec.restartable:
                if run.state == "running":
                    running += 1
                    if not run.started:
                        pending_sidecar += 1
                elif run.state == "waiting" and run.last_terminated is None:
                    pending_sidecar += 1
                    waiting += 1
                continue
            if run.state == "running":
                pending_init += 1
            elif run.state == "terminated":
                failed_init += run.exit_code != 0
            elif run.last_terminated is not None:
                failed_init += int(run.last_terminated.get("exitCode") or 0) != 0
            else:
                pending_init += 1
        for run in self.app:
            if run.state == "running":
                running += 1
            elif run.state == "terminated":
                stopped += 1
                succeeded += run.exit_code == 0
            elif run.last_terminated is not None:
                stopped += 1
            else:
                waiting += 1
        if failed_init and self.restart_policy == "Never":
            return "Failed"
        any_started = any(r.ever_ran for r in self.app)
        if pending_init or (pending_sidecar and not any_started) or waiting:
            return "Pending"
        if running and not unknown:
            return "Running"
        if not running and stopped and not unknown:
            if self.terminal:
                return "Succeeded" if stopped == succeeded else "Failed"
            if self.restart_policy == "Always":
                return "Running"
            if stopped == succeeded:
                return "Succeeded"
            if self.restart_policy == "Never":
                return "Failed"
            return "Running"
        return "Pending"

    def status(self, old: Obj | None, now: float) -> Obj:
        """The PodStatus to write, given the stored one (for transition times and the
        conditions other components own)."""
        old = old or {}
        phase = self._phase()
        if self.terminal and phase not in ("Succeeded", "Failed"):
            phase = "Failed"
        init_statuses = [self._container_status(r) for r in self.init]
        app_statuses = [self._container_status(r) for r in self.app]
        conditions = [
            c
            for c in old.get("conditions") or []
            if isinstance(c, dict) and c.get("type") not in KUBELET_CONDITIONS
        ]
        conditions.append(
            _condition(
                "PodReadyToStartContainers",
                self.sandbox and not self.terminal,
            )
        )
        conditions.append(self._initialized(phase))
        containers_ready = self._containers_ready(phase)
        conditions.append(self._ready(containers_ready, conditions))
        conditions.append(containers_ready)
        scheduled = next(
            (
                c
                for c in old.get("conditions") or []
                if isinstance(c, dict) and c.get("type") == "PodScheduled"
            ),
            None,
        )
        conditions.append(dict(scheduled) if scheduled else _condition("PodScheduled", True))
        _carry_transition_times(conditions, old.get("conditions") or [], now)
        out: Obj = {"phase": phase, "conditions": conditions}
        if self.message:
            out["message"] = self.message
        if self.reason:
            out["reason"] = self.reason
        if self.host_ips:
            out["hostIP"] = self.host_ips[0]
            out["hostIPs"] = [{"ip": ip} for ip in self.host_ips]
        if self.pod_ips:
            out["podIP"] = self.pod_ips[0]
            out["podIPs"] = [{"ip": ip} for ip in self.pod_ips]
        out["startTime"] = format_time(self.start_time if self.start_time is not None else now)
        if init_statuses:
            out["initContainerStatuses"] = init_statuses
        out["containerStatuses"] = app_statuses
        out["qosClass"] = self.qos
        return out

    def _initialized(self, phase: str) -> Obj:
        if phase == "Succeeded":
            return _condition("Initialized", True, "PodCompleted")
        if any(r.ever_ran for r in self.app) or self.init_done_at is not None or not self.init:
            return _condition("Initialized", True)
        incomplete = [r.spec.name for r in self.init if not self._init_complete(r)]
        return _condition(
            "Initialized",
            False,
            "ContainersNotInitialized",
            f"containers with incomplete status: {_go_list(incomplete)}",
        )

    def _containers_ready(self, phase: str) -> Obj:
        if phase == "Succeeded":
            return _condition("ContainersReady", False, "PodCompleted")
        if phase == "Failed":
            return _condition("ContainersReady", False, "PodFailed")
        unready = [r.spec.name for r in self.init if r.spec.restartable and not r.ready]
        unready += [r.spec.name for r in self.app if not r.ready]
        if unready:
            return _condition(
                "ContainersReady",
                False,
                "ContainersNotReady",
                f"containers with unready status: {_go_list(unready)}",
            )
        return _condition("ContainersReady", True)

    def _ready(self, containers_ready: Obj, conditions: list[Obj]) -> Obj:
        if containers_ready["status"] != "True":
            return _condition(
                "Ready", False, containers_ready.get("reason", ""), containers_ready.get("message", "")
            )
        problems = []
        for gate in self.readiness_gates:
            found = next((c for c in conditions if c.get("type") == gate), None)
            if found is None:
                problems.append(f'corresponding condition of pod readiness gate "{gate}" does not exist.')
            elif found.get("status") != "True":
                problems.append(
                    f'the status of pod readiness gate "{gate}" is not "True", but {found.get("status")}'
                )
        if problems:
            return _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(problems))
        return _condition("Ready", True)


def _go_list(names: list[str]) -> str:
    """fmt's %s of a []string: "[a b]"."""
    return "[" + " ".join(names) + "]"


def _secs(seconds: float) -> str:
    return f"{seconds:g}s"


def _condition(kind: str, status: bool, reason: str = "", message: str = "") -> Obj:
    out: Obj = {"type": kind, "status": "True" if status else "False", "lastProbeTime": None}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _carry_transition_times(conditions: list[Obj], old: list[Any], now: float) -> None:
    """The status manager keeps a condition's lastTransitionTime while its status is unchanged."""
    previous = {c.get("type"): c for c in old if isinstance(c, dict)}
    stamp = format_time(now)
    for cond in conditions:
        before = previous.get(cond["type"])
        if before is not None and before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            cond["lastTransitionTime"] = before["lastTransitionTime"]
        elif not cond.get("lastTransitionTime") or before is None or before.get("status") != cond["status"]:
            cond["lastTransitionTime"] = stamp
