"""Disruption controller (upstream pkg/controller/disruption): PodDisruptionBudget status.

For each budget: the pods its selector picks, how many of them are expected (for an integer
minAvailable, the pods themselves; otherwise the summed `spec.replicas` of the pods' controllers:
ReplicationController, Deployment (through its ReplicaSet), ReplicaSet, StatefulSet, or any
resource with a scale subresource), how many are healthy (Ready, not being deleted, not just
evicted), and from those `desiredHealthy` and `disruptionsAllowed`, the DisruptionAllowed
condition and observedGeneration. The apiserver's pods/eviction reads `disruptionsAllowed`
(and quotes `desiredHealthy`/`currentHealthy` in its 429); entries an eviction puts in
`disruptedPods` are dropped here once the pod is being deleted, or after two minutes without.
When the status cannot be computed, `disruptionsAllowed` is set to 0 with reason SyncFailed:
the budget fails closed. DisruptionTarget pod conditions that no deletion followed within two
minutes are reset to False.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controlplane.api import errors, selectors
from controlplane.client import ResourcePath
from controlplane.controllers.podutil import (
    condition,
    controller_of,
    is_pod_ready,
    is_pod_terminal,
    parse_time,
    status_condition,
)
from controlplane.controllers.runtime import Controller, R, key_of, rfc3339, split_key

__all__ = [
    "DELETION_TIMEOUT",
    "STALE_POD_DISRUPTION_TIMEOUT",
    "DisruptionController",
    "build_disrupted_pods",
    "conditions_up_to_date",
    "count_healthy",
    "desired_healthy_from",
    "disruptions_allowed",
    "scaled_value",
    "set_condition",
    "stale_disruption_wait",
    "update_disruption_allowed_condition",
]

Obj = Mapping[str, Any]

# How long an eviction's entry in status.disruptedPods is trusted before the pod must show a
# deletionTimestamp.
DELETION_TIMEOUT = 120.0
STALE_POD_DISRUPTION_TIMEOUT = 120.0
STALE_POD_PREFIX = "stale-pod:"


# -- the arithmetic (pure) ----------------------------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of `total`; ValueError with
    upstream's message for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError("invalid value for IntOrString: invalid type: neither int nor percentage")  # noqa: TRY004
    if not value.endswith("%"):
        raise ValueError("invalid value for IntOrString: invalid type: string is not a percentage")
    digits = value[:-1]
    body = digits[1:] if digits[:1] in ("+", "-") else digits
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(
            f'invalid value for IntOrString: invalid value "{value}": '
            f'strconv.Atoi: parsing "{digits}": invalid syntax'
        )
    scaled = float(int(digits)) * float(total) / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def desired_healthy_from(spec: Obj, expected_count: int) -> int:
    """desiredHealthy once the expected count is known (maxUnavailable, or minAvailable)."""
    if spec.get("maxUnavailable") is not None:
        return max(expected_count - scaled_value(spec["maxUnavailable"], expected_count, True), 0)
    if spec.get("minAvailable") is not None:
        return scaled_value(spec["minAvailable"], expected_count, True)
    return 0


def disruptions_allowed(current_healthy: int, desired_healthy: int, expected_count: int) -> int:
    """Zero while the budget expects no pods: pods that appear before the controller has counted
    them are then still protected."""
    allowed = current_healthy - desired_healthy
    if expected_count <= 0 or allowed <= 0:
        return 0
    return allowed


def _within_timeout(stamp: str | None, now: datetime) -> bool:
    at = parse_time(stamp)
    return at is not None and at + timedelta(seconds=DELETION_TIMEOUT) > now


def count_healthy(pods: Iterable[Obj], disrupted: Mapping[str, str], now: datetime) -> int:
    healthy = 0
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        if _within_timeout(disrupted.get(str(meta.get("name", ""))), now):
            continue  # evicted moments ago: about to go
        if is_pod_ready(pod):
            healthy += 1
    return healthy


def build_disrupted_pods(
    pods: Iterable[Obj], disrupted: Mapping[str, str] | None, now: datetime
) -> tuple[dict[str, str], datetime | None, list[str]]:
    """The disruptedPods entries to keep (pods not yet being deleted, within the timeout), when
    to look again, and the pods whose entry expired without a deletion."""
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    expired: list[str] = []
    if not disrupted:
        return kept, recheck, expired
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        name = str(meta.get("name", ""))
        stamp = disrupted.get(name)
        at = parse_time(stamp)
        if stamp is None or at is None:
            continue
        expected_deletion = at + timedelta(seconds=DELETION_TIMEOUT)
        if expected_deletion < now:
            expired.append(name)
            continue
        if recheck is None or expected_deletion < recheck:
            recheck = expected_deletion
        kept[name] = str(stamp)
    return kept, recheck, expired


def set_condition(conditions: list[dict[str, Any]], new: Mapping[str, Any], now: datetime) -> None:
    """apimeta.SetStatusCondition: lastTransitionTime moves only when the status changes."""
    for cond in conditions:
        if cond.get("type") == new["type"]:
            if cond.get("status") != new["status"]:
                cond["status"] = new["status"]
                cond["lastTransitionTime"] = rfc3339(now)
            cond["reason"] = new.get("reason", "")
            cond["message"] = new.get("message", "")
            cond["observedGeneration"] = new.get("observedGeneration", 0)
            return
    conditions.append({**new, "lastTransitionTime": rfc3339(now)})


def update_disruption_allowed_condition(status: dict[str, Any], now: datetime) -> None:
    sufficient = int(status.get("disruptionsAllowed") or 0) > 0
    set_condition(
        status.setdefault("conditions", []),
        {
            "type": "DisruptionAllowed",
            "status": "True" if sufficient else "False",
            "reason": "SufficientPods" if sufficient else "InsufficientPods",
            "message": "",
            "observedGeneration": int(status.get("observedGeneration") or 0),
        },
        now,
    )


def conditions_up_to_date(pdb: Obj) -> bool:
    status = pdb.get("status") or {}
    cond = status_condition(status, "DisruptionAllowed")
    if cond is None:
        return False
    if int(status.get("observedGeneration") or 0) != int((pdb.get("metadata") or {}).get("generation") or 0):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return bool(cond.get("status") == "True" and cond.get("reason") == "SufficientPods")
    return bool(cond.get("status") == "False" and cond.get("reason") == "InsufficientPods")


def stale_disruption_wait(pod: Obj, now: datetime) -> float | None:
    """Seconds until a DisruptionTarget condition that no deletion followed is stale (0: now);
    None when the pod has no such condition to reset."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    cond = condition(pod, "DisruptionTarget")
    if cond is None or cond.get("status") != "True" or cond.get("reason") == "TerminationByKubelet":
        return None
    if is_pod_terminal(pod):
        return None
    since = parse_time(cond.get("lastTransitionTime")) or now
    return max(STALE_POD_DISRUPTION_TIMEOUT - (now - since).total_seconds(), 0.0)


# -- the controller -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scale:
    uid: str
    replicas: int


def _group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def _verify_group_kind(ref: Obj, kind: str, groups: tuple[str, ...]) -> bool:
    return ref.get("kind") == kind and _group_of(str(ref.get("apiVersion") or "")) in groups


def _replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


class DisruptionController(Controller):
    name = "disruption"
    event_source = "controllermanager"
    workers = 2

    def setup(self) -> None:
        informers = self.ctx.informers
        self.pdbs = informers.informer(R.PDBS)
        self.pods = informers.informer(R.PODS)
        self.rcs = informers.informer(R.REPLICATIONCONTROLLERS)
        self.rss = informers.informer(R.REPLICASETS)
        self.deployments = informers.informer(R.DEPLOYMENTS)
        self.statefulsets = informers.informer(R.STATEFULSETS)
        self.pdbs.add_handler(lambda _e, old, new: self.enqueue_obj(new if new is not None else old))
        self.pods.add_handler(self._on_pod)
        self._discovery: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # -- event handlers ----------------------------------------------------------------------

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        pod = new if new is not None else old
        if pod is None:
            return
        pdb = self._pdb_for_pod(pod)
        if pdb is not None:
            self.enqueue(key_of(pdb))
        if event != "DELETED":
            wait = stale_disruption_wait(pod, self.ctx.clock.now())
            if wait is not None:
                self.enqueue_after(STALE_POD_PREFIX + key_of(pod), wait)

    def _pdb_for_pod(self, pod: Obj) -> Obj | None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        matching = []
        for pdb in self.pdbs.list(str(pod["metadata"].get("namespace") or "")):
            try:
                selector = selectors.label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
            except errors.BadRequest:
                continue  # an invalid selector matches no pod
            if selector.matches(labels):
                matching.append(pdb)
        if not matching:
            return None
        matching.sort(key=lambda p: str(p["metadata"]["name"]))
        if len(matching) > 1:
            meta = pod["metadata"]
            message = (
                f'Pod "{meta.get("namespace")}"/"{meta["name"]}" matches multiple PodDisruptionBudgets.  '
                f'Chose "{matching[0]["metadata"]["name"]}" arbitrarily.'
            )
            self.ctx.recorder.event(pod, "Warning", "MultiplePodDisruptionBudgets", message)
        return matching[0]

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(STALE_POD_PREFIX):
            return await self._sync_stale_pod_disruption(key[len(STALE_POD_PREFIX) :])
        pdb = self.pdbs.get(key)
        if pdb is None:
            return None
        try:
            await self._try_sync(pdb)
        except errors.Conflict:
            raise
        except (errors.StatusError, ValueError) as exc:
            self.log.warning("failed to sync PDB %s: %s", key, exc)
            await self._fail_safe(pdb, exc)
        return None

    async def _try_sync(self, pdb: Obj) -> None:
        namespace = str(pdb["metadata"].get("namespace") or "")
        try:
            selector = selectors.label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
        except errors.BadRequest as exc:
            self.ctx.recorder.event(pdb, "Warning", "NoPods", f"Failed to get pods: {exc}")
            raise
        pods = [
            p
            for p in self.pods.list(namespace)
            if selector.matches((p.get("metadata") or {}).get("labels") or {})
        ]
        if not pods:
            self.ctx.recorder.event(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = await self._expected_pod_count(pdb, pods)
        except (errors.StatusError, ValueError) as exc:
            self.ctx.recorder.event(
                pdb,
                "Warning",
                "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {exc}",
            )
            raise
        if unmanaged:
            self.ctx.recorder.event(
                pdb,
                "Warning",
                "UnmanagedPods",
                f"Pods selected by this PodDisruptionBudget (selector: {selectors.format_label_selector(selector)}) "
                "were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, "
                'which may result in undefined behavior. To account for these pods please set ".spec.minAvailable" '
                "field of the PDB to an integer value.",
            )
        now = self.ctx.clock.now()
        disrupted, recheck, expired = build_disrupted_pods(
            pods, (pdb.get("status") or {}).get("disruptedPods"), now
        )
        for name in expired:
            pod = self.pods.get(f"{namespace}/{name}")
            if pod is not None:
                self.ctx.recorder.event(
                    pod,
                    "Warning",
                    "NotDeleted",
                    f"Pod was expected by PDB {namespace}/{pdb['metadata']['name']} to be deleted but it wasn't",
                )
        healthy = count_healthy(pods, disrupted, now)
        await self._update_status(pdb, healthy, desired, expected, disrupted, now)
        if recheck is not None:
            self.enqueue_after(key_of(pdb), (recheck - now).total_seconds())

    async def _expected_pod_count(self, pdb: Obj, pods: Sequence[Obj]) -> tuple[int, int, list[str]]:
        """(expectedPods, desiredHealthy, unmanaged pod names)."""
        spec = pdb.get("spec") or {}
        if spec.get("maxUnavailable") is not None:
            expected, unmanaged = await self._expected_scale(pods)
            return expected, desired_healthy_from(spec, expected), unmanaged
        min_available = spec.get("minAvailable")
        if isinstance(min_available, int) and not isinstance(min_available, bool):
            return len(pods), min_available, []
        if isinstance(min_available, str):
            expected, unmanaged = await self._expected_scale(pods)
            return expected, desired_healthy_from(spec, expected), unmanaged
        return 0, 0, []

    async def _expected_scale(self, pods: Sequence[Obj]) -> tuple[int, list[str]]:
        """The summed scale of the controllers of `pods` (each counted once)."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_of(pod)
            name = str(pod["metadata"]["name"])
            if ref is None:
                unmanaged.append(name)
                continue
            if str(ref.get("uid")) in scales:
                continue
            namespace = str(pod["metadata"].get("namespace") or "")
            found: _Scale | None = None
            for finder in (
                self._rc_scale,
                self._deployment_scale,
                self._replicaset_scale,
                self._statefulset_scale,
                self._subresource_scale,
            ):
                found = await finder(ref, namespace)
                if found is not None:
                    break
            if found is None:
                raise ValueError(f'found no controllers for pod "{name}"')
            scales[found.uid] = found.replicas
        return sum(scales.values()), unmanaged

    async def _rc_scale(self, ref: Obj, namespace: str) -> _Scale | None:
        if not _verify_group_kind(ref, "ReplicationController", ("",)):
            return None
        rc = self.rcs.get(f"{namespace}/{ref.get('name')}")
        if rc is None or rc["metadata"].get("uid") != ref.get("uid"):
            return None
        return _Scale(str(rc["metadata"]["uid"]), _replicas(rc))

    def _owned_replicaset(self, ref: Obj, namespace: str) -> Obj | None:
        if not _verify_group_kind(ref, "ReplicaSet", ("apps", "extensions")):
            return None
        rs = self.rss.get(f"{namespace}/{ref.get('name')}")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return rs

    async def _deployment_scale(self, ref: Obj, namespace: str) -> _Scale | None:
        rs = self._owned_replicaset(ref, namespace)
        if rs is None:
            return None
        rs_ref = controller_of(rs)
        if rs_ref is None or not _verify_group_kind(rs_ref, "Deployment", ("apps", "extensions")):
            return None
        deployment = self.deployments.get(f"{namespace}/{rs_ref.get('name')}")
        if deployment is None or deployment["metadata"].get("uid") != rs_ref.get("uid"):
            return None
        return _Scale(str(deployment["metadata"]["uid"]), _replicas(deployment))

    async def _replicaset_scale(self, ref: Obj, namespace: str) -> _Scale | None:
        rs = self._owned_replicaset(ref, namespace)
        if rs is None:
            return None
        rs_ref = controller_of(rs)
        if rs_ref is not None and rs_ref.get("kind") == "Deployment":
            return None  # counted through its Deployment
        return _Scale(str(rs["metadata"]["uid"]), _replicas(rs))

    async def _statefulset_scale(self, ref: Obj, namespace: str) -> _Scale | None:
        if not _verify_group_kind(ref, "StatefulSet", ("apps",)):
            return None
        sts = self.statefulsets.get(f"{namespace}/{ref.get('name')}")
        if sts is None or sts["metadata"].get("uid") != ref.get("uid"):
            return None
        return _Scale(str(sts["metadata"]["uid"]), _replicas(sts))

    async def _resources(self, group: str, version: str) -> list[dict[str, Any]]:
        cached = self._discovery.get((group, version))
        if cached is not None:
            return cached
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        doc = await self.ctx.client.request("GET", path)
        found = list(doc.get("resources") or [])
        self._discovery[(group, version)] = found
        return found

    async def _subresource_scale(self, ref: Obj, namespace: str) -> _Scale | None:
        """Any other controller, through its scale subresource (custom resources included)."""
        api_version = str(ref.get("apiVersion") or "")
        group, _, version = api_version.rpartition("/")
        kind = str(ref.get("kind") or "")
        try:
            resources = await self._resources(group, version)
        except errors.NotFound:
            resources = []
        plural = next((r["name"] for r in resources if r.get("kind") == kind and "/" not in r["name"]), None)
        if plural is None:
            self._discovery.pop((group, version), None)  # a CRD may arrive later
            raise ValueError(f'no matches for kind "{kind}" in version "{api_version}"')
        rp = ResourcePath(group, version, plural, namespaced=True)
        try:
            scale = await self.ctx.client.request("GET", rp.url(namespace, str(ref.get("name")), "scale"))
        except errors.NotFound:
            if not any(r.get("name") == f"{plural}/scale" for r in resources):
                qualified = f"{plural}.{group}" if group else plural
                raise ValueError(f"{qualified} does not implement the scale subresource") from None
            return None
        if (scale.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return _Scale(str(scale["metadata"]["uid"]), int((scale.get("spec") or {}).get("replicas") or 0))

    # -- writing status ----------------------------------------------------------------------

    async def _update_status(
        self, pdb: Obj, healthy: int, desired: int, expected: int, disrupted: dict[str, str], now: datetime
    ) -> None:
        allowed = disruptions_allowed(healthy, desired, expected)
        status = pdb.get("status") or {}
        generation = int(pdb["metadata"].get("generation") or 0)
        if (
            int(status.get("currentHealthy") or 0) == healthy
            and int(status.get("desiredHealthy") or 0) == desired
            and int(status.get("expectedPods") or 0) == expected
            and int(status.get("disruptionsAllowed") or 0) == allowed
            and (status.get("disruptedPods") or {}) == disrupted
            and int(status.get("observedGeneration") or 0) == generation
            and "currentHealthy" in status
            and conditions_up_to_date(pdb)
        ):
            return
        new = copy.deepcopy(dict(pdb))
        new_status: dict[str, Any] = {
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": copy.deepcopy(status.get("conditions") or []),
        }
        if disrupted:
            new_status["disruptedPods"] = disrupted
        update_disruption_allowed_condition(new_status, now)
        new["status"] = new_status
        await self._write_status(new)

    async def _fail_safe(self, pdb: Obj, error: Exception) -> None:
        """Whatever went wrong, allow no disruption until a sync succeeds again."""
        new = copy.deepcopy(dict(pdb))
        status = new.setdefault("status", {})
        status["disruptionsAllowed"] = 0
        set_condition(
            status.setdefault("conditions", []),
            {
                "type": "DisruptionAllowed",
                "status": "False",
                "reason": "SyncFailed",
                "message": str(error),
                "observedGeneration": int(status.get("observedGeneration") or 0),
            },
            self.ctx.clock.now(),
        )
        await self._write_status(new)

    async def _write_status(self, pdb: dict[str, Any]) -> None:
        pdb.setdefault("apiVersion", "policy/v1")
        pdb.setdefault("kind", "PodDisruptionBudget")
        namespace, name = split_key(key_of(pdb))
        await self.ctx.client.request("PUT", R.PDBS.url(namespace, name, "status"), body=pdb)

    async def _sync_stale_pod_disruption(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None:
            return None
        wait = stale_disruption_wait(pod, self.ctx.clock.now())
        if wait is None:
            return None
        if wait > 0:
            return wait
        new = copy.deepcopy(dict(pod))
        new.setdefault("apiVersion", "v1")
        new.setdefault("kind", "Pod")
        conditions = new.setdefault("status", {}).setdefault("conditions", [])
        for i, cond in enumerate(conditions):
            if cond.get("type") == "DisruptionTarget":
                conditions[i] = {
                    "type": "DisruptionTarget",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(self.ctx.clock.now()),
                }
        namespace, name = split_key(key)
        await self.ctx.client.request("PUT", R.PODS.url(namespace, name, "status"), body=new)
        self.log.info("reset stale DisruptionTarget condition of pod %s to False", key)
        return None
