"""The NodePool and Machine CustomResourceDefinitions, and installing them.

Structural schemas with the defaults the operator relies on (so `kubectl get -o yaml` shows what
is in effect), a status subresource on both, the scale subresource on NodePool (`kubectl scale
nodepool`, and anything that speaks autoscaling/v1 Scale), printer columns, short names and the
`pinnace` category (`kubectl get pinnace`). Shapes: see `ccm.provisioning.api`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from ccm.provisioning import api
from controlplane.api import errors
from controlplane.client import Client, ResourcePath

__all__ = ["CRDS", "CRD_PATH", "ensure_crds", "machine_crd", "nodepool_crd"]

CRD_PATH = ResourcePath("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
CATEGORIES = ["pinnace", "infra"]
OS_CHOICES = ["ubuntu-22.04", "ubuntu-24.04", "debian-12"]
_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"

Schema = dict[str, Any]


def _str(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def _int(**extra: Any) -> Schema:
    return {"type": "integer", **extra}


def _duration(default: str) -> Schema:
    return _str(default=default, pattern=_DURATION)


def _conditions() -> Schema:
    return {
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": _str(),
                "status": _str(enum=["True", "False", "Unknown"]),
                "reason": _str(),
                "message": _str(),
                "lastTransitionTime": _str(format="date-time"),
                "observedGeneration": _int(format="int64"),
            },
        },
    }


def _taints() -> Schema:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["key", "effect"],
            "properties": {
                "key": _str(),
                "value": _str(),
                "effect": _str(enum=["NoSchedule", "PreferNoSchedule", "NoExecute"]),
            },
        },
    }


def _addresses() -> Schema:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["type", "address"],
            "properties": {"type": _str(), "address": _str()},
        },
    }


def _nodepool_schema() -> Schema:
    bootstrap = {
        "type": "object",
        "default": {},
        "properties": {
            "packageSource": {
                "type": "object",
                "default": {},
                "properties": {
                    "type": _str(enum=["upstream", "mirror", "offline"], default="upstream"),
                    "url": _str(),
                    "keyURL": _str(),
                    "keyFingerprint": _str(),
                },
            },
            "joinTimeout": _duration("10m"),
            "tokenTTL": _duration("30m"),
        },
    }
    remediation = {
        "type": "object",
        "default": {},
        "properties": {
            # An absolute count or "NN%" of the pool, as MachineHealthCheck's maxUnhealthy.
            "maxUnhealthy": {"x-kubernetes-int-or-string": True, "default": 1},
            "notReadyTimeout": _duration("5m"),
        },
    }
    autoscaling = {
        "type": "object",
        "default": {},
        "properties": {
            "enabled": {"type": "boolean", "default": False},
            "minReplicas": _int(minimum=0),
            "maxReplicas": _int(minimum=0),
            "scaleDownDelay": _duration("10m"),
        },
    }
    spec = {
        "type": "object",
        "default": {},
        "properties": {
            "replicas": _int(minimum=0, default=1, format="int32"),
            "provider": _str(),
            "instanceType": _str(),
            "image": _str(),
            "os": _str(enum=OS_CHOICES, default="ubuntu-24.04"),
            "zones": {"type": "array", "items": _str()},
            "subnets": {"type": "array", "items": _str()},
            "kubernetesVersion": _str(default="1.33", pattern=r"^1\.[0-9]+$"),
            "labels": {"type": "object", "additionalProperties": _str()},
            "taints": _taints(),
            "bootstrap": bootstrap,
            "remediation": remediation,
            "autoscaling": autoscaling,
        },
    }
    status = {
        "type": "object",
        "properties": {
            "replicas": _int(format="int32"),
            "readyReplicas": _int(format="int32"),
            "selector": _str(),
            "observedGeneration": _int(format="int64"),
            "conditions": _conditions(),
        },
    }
    return {"type": "object", "properties": {"spec": spec, "status": status}}


def _machine_schema() -> Schema:
    step = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _str(),
            "state": _str(enum=[s.value for s in api.StepState]),
            "startedAt": _str(),
            "finishedAt": _str(),
            "logTail": _str(),
        },
    }
    spec = {
        "type": "object",
        "properties": {
            "nodePool": _str(),
            "provider": _str(),
            "instanceType": _str(),
            "image": _str(),
            "os": _str(enum=OS_CHOICES, default="ubuntu-24.04"),
            "zone": _str(),
            "subnet": _str(),
            "kubernetesVersion": _str(default="1.33"),
        },
    }
    status = {
        "type": "object",
        "properties": {
            "phase": _str(enum=[p.value for p in api.MachinePhase]),
            "instanceID": _str(),
            "providerID": _str(),
            "nodeName": _str(),
            "zone": _str(),
            "addresses": _addresses(),
            "bootstrap": {
                "type": "object",
                "properties": {
                    "steps": {"type": "array", "items": step},
                    "failedStep": _str(),
                    "completed": {"type": "boolean"},
                },
            },
            "conditions": _conditions(),
            "failureReason": _str(),
            "failureMessage": _str(),
        },
    }
    return {"type": "object", "properties": {"spec": spec, "status": status}}


def _age() -> dict[str, str]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _crd(kind: str, plural: str, short: str, schema: Schema, columns: list[dict[str, Any]]) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if plural == api.NODEPOOLS:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def nodepool_crd() -> dict[str, Any]:
    return _crd(
        "NodePool",
        api.NODEPOOLS,
        "np",
        _nodepool_schema(),
        [
            {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Current", "type": "integer", "jsonPath": ".status.replicas", "priority": 1},
            {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
            {"name": "Provider", "type": "string", "jsonPath": ".spec.provider", "priority": 1},
            _age(),
        ],
    )


def machine_crd() -> dict[str, Any]:
    return _crd(
        "Machine",
        api.MACHINES,
        "mach",
        _machine_schema(),
        [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Instance", "type": "string", "jsonPath": ".status.instanceID"},
            {"name": "Node", "type": "string", "jsonPath": ".status.nodeName"},
            {"name": "Pool", "type": "string", "jsonPath": ".spec.nodePool", "priority": 1},
            {"name": "Zone", "type": "string", "jsonPath": ".status.zone", "priority": 1},
            _age(),
        ],
    )


CRDS = (nodepool_crd, machine_crd)


def _covers(current: Any, wanted: Any) -> bool:
    """Everything in `wanted` is in `current` (which may hold more: the server's defaults)."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(
            k in current and _covers(current[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(current, list)
            and len(current) == len(wanted)
            and all(_covers(c, w) for c, w in zip(current, wanted, strict=True))
        )
    return bool(current == wanted)


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def ensure_crds(client: Client, *, timeout: float = 30.0) -> None:
    """Create both CRDs or bring them up to date, then wait until both are Established.

    Needs rights on customresourcedefinitions (the admin credential, as `kubectl apply` would);
    the operator itself only reads them."""
    names = []
    for build in CRDS:
        wanted = build()
        name = wanted["metadata"]["name"]
        names.append(name)
        try:
            current = await client.get(CRD_PATH, name)
        except errors.NotFound:
            try:
                await client.create(CRD_PATH, wanted)
                continue
            except errors.AlreadyExists:
                current = await client.get(CRD_PATH, name)
        if not _covers(current.get("spec"), wanted["spec"]):
            body = {
                **wanted,
                "metadata": {**wanted["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            await client.request("PUT", CRD_PATH.url(None, name), body=body)
    deadline = time.monotonic() + timeout
    for name in names:
        while not _established(await client.get(CRD_PATH, name)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CustomResourceDefinition {name} did not become Established")
            await asyncio.sleep(0.05)


async def wait_served(client: Client, stop: asyncio.Event, *, interval: float = 0.25) -> bool:
    """Wait until discovery lists both kinds (True), or `stop` is set first (False).

    kopf scans discovery once at start and then ignores the initial listing of its CRD watch:
    a CRD that appears between the two is never watched (kopf 1.45.2, seen when `pinnace up`
    creates the CRDs while the operator starts). Starting kopf only once both are served
    closes that window."""
    wanted = {api.NODEPOOLS, api.MACHINES}
    path = f"/apis/{api.GROUP}/{api.VERSION}"
    while not stop.is_set():
        try:
            listing = await client.request("GET", path)
            if wanted <= {str(r.get("name")) for r in (listing or {}).get("resources") or ()}:
                return True
        except errors.NotFound:
            pass
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    return False


async def ensure_crds_unless_stopped(client: Client, stop: asyncio.Event, *, timeout: float = 30.0) -> bool:
    """ensure_crds, given up on as soon as `stop` is set (False): a Ctrl-C while the CRDs are
    being installed stops at once instead of waiting out the Established timeout. Errors of
    ensure_crds itself propagate."""
    installing = asyncio.ensure_future(ensure_crds(client, timeout=timeout))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((installing, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not installing.done():
            installing.cancel()
    if installing.cancelled() or not installing.done():
        with contextlib.suppress(asyncio.CancelledError):
            await installing
        return False
    installing.result()
    return True
