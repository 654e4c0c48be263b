"""The simulated machines of a cloud: one node agent per running instance, booted from its user-data.

`Fleet` polls an `InstanceSource` (the local or moto cloud, adapted in ccm/provisioning) and
boots every running instance as a real one would: it fetches the instance's user-data, plays
the bootstrap steps (reporting them to the Machine), then joins with the bootstrap token
through a CSR and runs the kubelet stand-in. An instance that stops or terminates has its node
stopped (its Lease lapses, as a powered-off machine's does); one that comes back reuses its
certificate and skips the steps, which ran once. A second Fleet over the same data directory
does the same, so `pinnace up` resumes without bootstrapping again.

One instance's trouble (user-data that is not Pinnace's, a CA that is not pinned, a token the
server refuses) is logged and retried with backoff; a failed bootstrap step stays failed, as it
would on a real instance. `BootFaults` plans such failures for tests and demos.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from node_bootstrap.agent.bootsteps import BootProgress, BootState, StepFault, boot_instance
from node_bootstrap.agent.clock import Clock, RealClock, wait_event
from node_bootstrap.agent.userdata import InstanceFacts

__all__ = ["BootFault", "BootFaults", "BootTarget", "Fleet", "InstanceSource"]

log = logging.getLogger("pinnace.fleet")

RUNNING = "running"


@dataclass(frozen=True)
class BootTarget:
    """An instance as the fleet sees it; `state` is EC2's word (pending, running, stopped, ...)."""

    instance_id: str
    zone: str
    region: str
    private_ip: str
    instance_type: str
    state: str
    name: str = ""

    @property
    def facts(self) -> InstanceFacts:
        """What its instance metadata service would answer."""
        return InstanceFacts(
            instance_id=self.instance_id,
            zone=self.zone,
            region=self.region,
            private_ip=self.private_ip,
            instance_type=self.instance_type,
        )


class InstanceSource(Protocol):
    async def list_instances(self) -> list[BootTarget]:
        """The cluster's instances that are not terminated."""
        ...

    async def user_data(self, instance_id: str) -> bytes:
        """The user-data the instance was launched with, as launched (possibly gzip)."""
        ...


@dataclass(frozen=True)
class BootFault:
    """Fail `step` on the first `count` instances whose name matches `name_glob`."""

    step: str
    name_glob: str = "*"
    count: int = 1
    log: str = ""

    @classmethod
    def parse(cls, text: str) -> BootFault:
        """`STEP[@NAME-GLOB][:COUNT]`, e.g. `install-kubelet@workers-*:2`."""
        spec, sep, count = text.rpartition(":")
        if not sep or not count.isdigit():
            spec, count = text, "1"
        step, _, glob = spec.partition("@")
        if not step:
            raise ValueError(f"invalid boot fault {text!r}: expected STEP[@NAME-GLOB][:COUNT]")
        return cls(step=step, name_glob=glob or "*", count=int(count))


class BootFaults:
    """A fault plan; each instance's fate is decided once, so a retried boot meets the same one."""

    def __init__(self, faults: Iterable[BootFault] = ()) -> None:
        self._faults = list(faults)
        self._left = [f.count for f in self._faults]
        self._decided: dict[str, StepFault | None] = {}

    def for_instance(self, target: BootTarget) -> StepFault | None:
        if target.instance_id in self._decided:
            return self._decided[target.instance_id]
        chosen: StepFault | None = None
        for i, fault in enumerate(self._faults):
            if self._left[i] > 0 and fnmatch.fnmatchcase(target.name or target.instance_id, fault.name_glob):
                self._left[i] -= 1
                chosen = StepFault(fault.step, fault.log)
                break
        self._decided[target.instance_id] = chosen
        return chosen


@dataclass
class _Running:
    stop: asyncio.Event
    task: asyncio.Task[None]


class Fleet:
    """Boots and stops simulated nodes as the instances of `source` come and go."""

    def __init__(
        self,
        source: InstanceSource,
        *,
        data_dir: Path,
        faults: BootFaults | None = None,
        poll_interval: float = 2.0,
        clock: Clock | None = None,
        step_seconds: float = 0.0,
        retry_initial: float = 2.0,
        retry_max: float = 120.0,
        bind_address: str = "127.0.0.1",
        agent_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.data_dir = data_dir
        self.faults = faults or BootFaults()
        self.poll_interval = poll_interval
        self.step_seconds = step_seconds
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.bind_address = bind_address
        self.agent_overrides = dict(agent_overrides or {})
        self._clock: Clock = clock or RealClock()
        # instance id -> where it is; read by progress views and tests.
        self.booted: dict[str, BootProgress] = {}
        self.names: dict[str, str] = {}
        self._running: dict[str, _Running] = {}
        self._retry_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self.synced = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; then every node is stopped and awaited."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with asyncio.TaskGroup() as tg:
            try:
                while not stop.is_set():
                    await self.sync(tg)
                    self.synced.set()
                    await wait_event(self._clock, stop, self.poll_interval)
            finally:
                for running in self._running.values():
                    running.stop.set()

    async def sync(self, tg: asyncio.TaskGroup) -> None:
        """One pass: stop the nodes of instances no longer running, boot the new ones."""
        try:
            targets = await self.source.list_instances()
        except Exception as exc:
            # The cloud is unreachable or throttling: the nodes keep running; try again later.
            log.warning("cannot list instances: %s: %s", type(exc).__name__, exc)
            return
        running = {t.instance_id: t for t in targets if t.state == RUNNING}
        for instance_id, node in list(self._running.items()):
            if instance_id not in running and not node.stop.is_set():
                log.info("instance %s is no longer running; stopping its node", instance_id)
                node.stop.set()
        now = self._clock.monotonic()
        for instance_id, target in running.items():
            self.names[instance_id] = target.name
            progress = self.booted.get(instance_id)
            if instance_id in self._running or now < self._retry_at.get(instance_id, 0.0):
                continue
            if progress is not None and progress.state is BootState.FAILED:
                continue
            node_stop = asyncio.Event()
            task = tg.create_task(self._boot(target, node_stop), name=f"boot {instance_id}")
            self._running[instance_id] = _Running(node_stop, task)

    async def _boot(self, target: BootTarget, stop: asyncio.Event) -> None:
        instance_id = target.instance_id
        progress = self.booted.setdefault(instance_id, BootProgress())
        progress.state, progress.message = BootState.PENDING, ""
        try:
            user_data = await self.source.user_data(instance_id)
            result = await boot_instance(
                user_data,
                target.facts,
                data_dir=self.data_dir,
                stop=stop,
                clock=self._clock,
                fault=self.faults.for_instance(target),
                progress=progress,
                step_seconds=self.step_seconds,
                bind_address=self.bind_address,
                overrides=self.agent_overrides,
            )
            if result.succeeded:
                self._delay.pop(instance_id, None)
        except Exception as exc:
            delay = self._delay.get(instance_id, self.retry_initial)
            self._delay[instance_id] = min(delay * 2, self.retry_max)
            self._retry_at[instance_id] = self._clock.monotonic() + delay
            progress.state = BootState.ERROR
            progress.message = f"{type(exc).__name__}: {exc}"
            log.warning(
                "instance %s (%s) could not boot, retrying in %gs: %s",
                instance_id,
                target.name or "unnamed",
                delay,
                progress.message,
            )
        finally:
            self._running.pop(instance_id, None)

    def state(self, instance_id: str) -> BootState | None:
        progress = self.booted.get(instance_id)
        return progress.state if progress is not None else None
