"""What `pinnace up` adds to the control plane of `pinnace server`, under the same TaskGroup and
stop Event: the provisioning operator (NodePools -> Machines -> instances), for simulated
clouds the Fleet that boots one node agent per instance from its user-data, and the driver that
installs the CRDs, creates the default NodePool on a new cluster, shows progress until every
pool's nodes are Ready and then says how to use the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ccm.provisioning import api
from controlplane.api import errors
from controlplane.client import Client, ResourcePath, load_kubeconfig
from controlplane.up.progress import (
    LiveView,
    MachineRow,
    PlainView,
    PoolProgress,
    View,
    all_ready,
    machine_rows,
    pool_progress,
    renewed_since,
    stuck_report,
)
from controlplane.up.record import ClusterRecord

__all__ = ["MACHINES", "NODEPOOLS", "UpSettings", "Upper", "default_pool"]

log = logging.getLogger("pinnace.up")

NODEPOOLS = ResourcePath(api.GROUP, api.VERSION, api.NODEPOOLS, namespaced=False)
MACHINES = ResourcePath(api.GROUP, api.VERSION, api.MACHINES, namespaced=False)
NODES = ResourcePath("", "v1", "nodes", namespaced=False)
LEASES = ResourcePath("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_POOL = "default"
USER_AGENT = "pinnace-up/v1.33.0"


@dataclass(frozen=True)
class UpSettings:
    data_dir: Path
    record: ClusterRecord
    cloud_config: Path
    nodes: int = 3
    zones: tuple[str, ...] = ()
    instance_type: str = ""
    image: str = ""
    wait: bool = True
    wait_timeout: float = 600.0
    keep_running_on_timeout: bool = False
    progress_interval: float = 1.0
    fleet_poll_interval: float = 1.0
    # `--simulate-bootstrap-failure` values (STEP[@GLOB][:COUNT]) for the simulated fleet.
    boot_faults: tuple[str, ...] = ()
    provisioner_resync_interval: float | None = None
    # The URL nodes reach the API server at (default: the server's own URL).
    advertise_url: str = ""
    live: bool = False  # a rich Live table (a terminal) rather than one line per change


def default_pool(settings: UpSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": settings.nodes, "provider": settings.record.provider}
    if settings.instance_type:
        spec["instanceType"] = settings.instance_type
    if settings.image:
        spec["image"] = settings.image
    if settings.zones:
        spec["zones"] = list(settings.zones)
    return {
        "apiVersion": api.API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": DEFAULT_POOL},
        "spec": spec,
    }


class Upper:
    """One `pinnace up` run: `attach` is the hook `_serve` calls inside its TaskGroup."""

    def __init__(self, settings: UpSettings, *, out: TextIO | None = None) -> None:
        self.settings = settings
        self.out = out or sys.stdout
        self.exit_code = 0
        self._started = datetime.now(UTC)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def attach(self, running: Any, tg: asyncio.TaskGroup, stop: asyncio.Event) -> None:
        config = running.config
        tg.create_task(self._operator(running, stop), name="provisioner")
        if self.settings.record.simulated:
            tg.create_task(self._fleet(stop), name="fleet")
        tg.create_task(self._drive(config.kubeconfig_path, stop), name="up")

    def _provider(self) -> tuple[Any, str]:
        from ccm.manager import open_provider

        provider, config = open_provider(
            self.settings.record.provider,
            self.settings.cloud_config,
            cluster_name=self.settings.record.cluster_name,
            data_dir=self.settings.data_dir,
        )
        return provider, config.cluster_id

    async def _operator(self, running: Any, stop: asyncio.Event) -> None:
        from ccm.provisioning.operator import run_provisioner
        from ccm.provisioning.settings import ProvisionerSettings

        provider, cluster_id = self._provider()
        config = running.config
        settings = ProvisionerSettings(
            provider=provider,
            cluster_id=cluster_id,
            server_url=self.settings.advertise_url or running.url,
            ca_pem=(config.data_dir / "pki" / "ca.crt").read_bytes(),
            cluster_cidr=config.cluster_cidr,
        )
        if self.settings.provisioner_resync_interval is not None:
            settings = replace(settings, running_resync_interval=self.settings.provisioner_resync_interval)
        await run_provisioner(config.provisioner_kubeconfig_path, stop, settings, leader_election=True)

    async def _fleet(self, stop: asyncio.Event) -> None:
        from ccm.provisioning.instance_source import ProviderInstanceSource
        from node_bootstrap.fleet import BootFault, BootFaults, Fleet

        provider, cluster_id = self._provider()
        faults = BootFaults([BootFault.parse(text) for text in self.settings.boot_faults])
        fleet = Fleet(
            ProviderInstanceSource(provider, cluster_id),
            data_dir=self.settings.data_dir / "nodes",
            faults=faults,
            poll_interval=self.settings.fleet_poll_interval,
        )
        await fleet.run(stop)

    async def _drive(self, kubeconfig: Path, stop: asyncio.Event) -> None:
        from ccm.provisioning.crds import ensure_crds_unless_stopped

        async with Client(load_kubeconfig(kubeconfig), user_agent=USER_AGENT) as client:
            if await ensure_crds_unless_stopped(client, stop):
                await self.drive(client, kubeconfig, stop)

    async def drive(self, client: Client, kubeconfig: Path, stop: asyncio.Event) -> None:
        """Create the default pool on a new cluster, follow it until Ready (or the timeout),
        say how to use the cluster, then keep reporting changes until `stop`."""
        pools = (await client.list(NODEPOOLS)).get("items", [])
        if pools:
            names = ", ".join(p["metadata"]["name"] for p in pools)
            self.say(f"Resuming cluster {self.settings.record.cluster_name!r}: node pools {names}")
        else:
            try:
                await client.create(NODEPOOLS, default_pool(self.settings))
                self.say(
                    f"Created NodePool {DEFAULT_POOL!r} with {self.settings.nodes} node(s) "
                    f"on the {self.settings.record.provider} cloud"
                )
            except errors.AlreadyExists:
                pass
        if not self.settings.wait:
            self._instructions(kubeconfig, ready=None)
            await self._follow(client, stop, PlainView(self.out), deadline=None)
            return
        view: View = LiveView(self.out) if self.settings.live else PlainView(self.out)
        started = time.monotonic()
        ready = await self._follow(client, stop, view, deadline=started + self.settings.wait_timeout)
        if stop.is_set():
            return
        if ready:
            self._instructions(kubeconfig, ready=time.monotonic() - started)
        else:
            self.say(
                f"error: the nodes were not all Ready after {self.settings.wait_timeout:g}s (--wait-timeout):"
            )
            for line in stuck_report(self._rows, self._progress):
                self.say(line)
            self.say(
                "See `kubectl get machines -o yaml` for each step's log, and the log file "
                "for the operator's view."
            )
            if not self.settings.keep_running_on_timeout:
                self.exit_code = 1
                stop.set()
                return
            self.say("Still running (--keep-running-on-timeout); Ctrl-C stops.")
        # Keep reporting changes (scaling, replacements) as lines.
        after = PlainView(self.out, seen=self._rows, progress=self._progress)
        await self._follow(client, stop, after, deadline=None)

    _rows: Sequence[MachineRow] = ()
    _progress: Sequence[PoolProgress] = ()

    async def _snapshot(self, client: Client) -> tuple[list[MachineRow], list[PoolProgress]]:
        pools, machines, nodes, leases = await asyncio.gather(
            client.list(NODEPOOLS),
            client.list(MACHINES),
            client.list(NODES),
            client.list(LEASES, NODE_LEASE_NAMESPACE),
        )
        # A resumed cluster's Nodes still say Ready from before the restart: count a node only
        # once its kubelet has renewed its Lease since this `up` started.
        alive = renewed_since(leases.get("items", []), self._started - timedelta(seconds=1))
        rows = machine_rows(machines.get("items", []), nodes.get("items", []), alive=alive)
        return rows, pool_progress(pools.get("items", []), rows)

    async def _follow(
        self,
        client: Client,
        stop: asyncio.Event,
        view: View,
        *,
        deadline: float | None,
    ) -> bool:
        """Update `view` until every pool is Ready (True), the deadline passes (False), or stop."""
        try:
            while not stop.is_set():
                try:
                    self._rows, self._progress = await self._snapshot(client)
                except (errors.StatusError, OSError) as exc:
                    log.info("progress: %s", exc)
                else:
                    view.update(self._rows, self._progress)
                    if deadline is not None and all_ready(self._progress):
                        return True
                if deadline is not None and time.monotonic() > deadline:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.progress_interval)
            return False
        finally:
            view.close()

    def _instructions(self, kubeconfig: Path, *, ready: float | None) -> None:
        total = sum(p.desired for p in self._progress)
        data_dir = self.settings.data_dir
        if ready is not None:
            self.say(
                f"Cluster {self.settings.record.cluster_name!r} is up: {total} node(s) Ready in {ready:.1f}s."
            )
        else:
            self.say(f"Cluster {self.settings.record.cluster_name!r} is starting (--no-wait).")
        self.say("Use it with kubectl:")
        self.say(f"  export KUBECONFIG={kubeconfig}")
        self.say("  kubectl get nodes")
        self.say("  kubectl get nodepools,machines")
        self.say(
            f"Ctrl-C stops the control plane (`pinnace up --data-dir {data_dir}` resumes this cluster); "
            f"`pinnace down --data-dir {data_dir}` deletes its nodes and cloud resources."
        )
