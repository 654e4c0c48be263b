"""What the agent needs of the API: resource paths, the client surface, and error codes.

Errors are recognised by their Status code and reason (every error the client raises carries
both), so this package needs nothing from `controlplane` beyond the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from controlplane.client import ResourcePath

__all__ = [
    "LEASES",
    "NODES",
    "NODE_LEASE_NAMESPACE",
    "PODS",
    "Api",
    "is_already_exists",
    "is_conflict",
    "is_expired",
    "is_not_found",
    "status_code",
]

NODES = ResourcePath("", "v1", "nodes", namespaced=False)
PODS = ResourcePath("", "v1", "pods")
LEASES = ResourcePath("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class Api(Protocol):
    """The part of `controlplane.client.Client` the agent uses (tests pass a fake)."""

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    async def list(
        self, rp: ResourcePath, namespace: str | None = None, *, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]: ...

    async def create(
        self, rp: ResourcePath, obj: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]: ...

    async def patch(
        self,
        rp: ResourcePath,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str = "",
        patch_type: str = "application/merge-patch+json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...

    async def delete(
        self,
        rp: ResourcePath,
        name: str,
        namespace: str | None = None,
        *,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None: ...

    def watch(
        self, rp: ResourcePath, namespace: str | None = None, *, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any: ...


def status_code(exc: BaseException) -> int | None:
    """The HTTP code of an API error (a Status), None for anything else (network, bugs)."""
    code = getattr(exc, "code", None)
    reason = getattr(exc, "reason", None)
    if isinstance(code, int) and isinstance(reason, str) and hasattr(exc, "to_status"):
        return code
    return None


def is_not_found(exc: BaseException) -> bool:
    return status_code(exc) == 404


def is_conflict(exc: BaseException) -> bool:
    return status_code(exc) == 409 and getattr(exc, "reason", "") != "AlreadyExists"


def is_already_exists(exc: BaseException) -> bool:
    return status_code(exc) == 409 and getattr(exc, "reason", "") == "AlreadyExists"


def is_expired(exc: BaseException) -> bool:
    return status_code(exc) == 410
