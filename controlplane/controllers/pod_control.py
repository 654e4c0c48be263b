"""Creating and deleting a controller's pods, with the events upstream's RealPodControl records on
the owner (k8s.io/kubernetes/pkg/controller/controller_utils.go): FailedCreate and
SuccessfulCreate, FailedDelete and SuccessfulDelete. ReplicaSets, ReplicationControllers,
DaemonSets and Jobs create and delete their pods through here; what a pod looks like, and what a
failure means for the sync, stays each controller's own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.runtime import EventRecorder
from controlplane.controllers.runtime import resources as R
from controlplane.controllers.status_causes import namespace_terminating

__all__ = [
    "FAILED_CREATE",
    "FAILED_DELETE",
    "SUCCESSFUL_CREATE",
    "SUCCESSFUL_DELETE",
    "create_pod",
    "delete_pod",
]

Obj = dict[str, Any]

FAILED_CREATE = "FailedCreate"
SUCCESSFUL_CREATE = "SuccessfulCreate"
FAILED_DELETE = "FailedDelete"
SUCCESSFUL_DELETE = "SuccessfulDelete"


async def create_pod(
    client: Client, recorder: EventRecorder, owner: Mapping[str, Any], pod: Obj, namespace: str | None
) -> Obj:
    """Create `pod` for `owner`; a failure is recorded (unless the namespace is terminating, which
    refuses every create alike) and raised."""
    try:
        created = await client.create(R.PODS, pod, namespace)
    except errors.StatusError as exc:
        if not namespace_terminating(exc):
            recorder.event(owner, "Warning", FAILED_CREATE, f"Error creating: {exc.message}")
        raise
    name = (created.get("metadata") or {}).get("name")
    recorder.event(owner, "Normal", SUCCESSFUL_CREATE, f"Created pod: {name}")
    return created


async def delete_pod(
    client: Client, recorder: EventRecorder, owner: Mapping[str, Any], name: str, namespace: str | None
) -> None:
    """Delete pod `name` of `owner`; NotFound (already gone) is raised without an event, any other
    failure is recorded and raised."""
    try:
        await client.delete(R.PODS, name, namespace)
    except errors.NotFound:
        raise
    except errors.StatusError as exc:
        recorder.event(owner, "Warning", FAILED_DELETE, f"Error deleting: {exc.message}")
        raise
    recorder.event(owner, "Normal", SUCCESSFUL_DELETE, f"Deleted pod: {name}")
