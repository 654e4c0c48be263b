"""Garbage collector decisions that live timing makes rare: an owner that exists but that no
informer has shown yet, then is deleted before any does."""

from __future__ import annotations

from typing import Any

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.garbage_collector import UNOBSERVED_OWNER_RECHECK, GarbageCollector
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
)

OWNERS = ResourcePath("example.com", "v1", "owners", True)
CONFIGMAPS = ResourcePath("", "v1", "configmaps", True)


def owner() -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Owner",
        "metadata": {"name": "o", "namespace": "ns", "uid": "uid-o", "resourceVersion": "1"},
    }


def child() -> dict[str, Any]:
    ref = {"apiVersion": "example.com/v1", "kind": "Owner", "name": "o", "uid": "uid-o"}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "namespace": "ns",
            "uid": "uid-child",
            "resourceVersion": "2",
            "ownerReferences": [ref],
        },
    }


class FakeClient:
    def __init__(self) -> None:
        self.owners: dict[str, dict[str, Any]] = {}
        self.deleted: list[tuple[str, Any]] = []

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]:
        if rp == OWNERS and name in self.owners:
            return self.owners[name]
        raise errors.NotFound(message=f'{rp.plural} "{name}" not found')

    async def delete(
        self, rp: ResourcePath, name: str, namespace: str | None = None, *, options: Any = None
    ) -> None:
        self.deleted.append((name, options))


def collector(client: FakeClient) -> GarbageCollector:
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("garbage-collector"),  # type: ignore[arg-type]
        clock=FakeClock(),
        config=ControllerConfig(),
    )
    gc = GarbageCollector(ctx)
    # What discovery found: both kinds are watched.
    gc._kinds[("example.com", "Owner")] = OWNERS
    gc._kinds[("", "ConfigMap")] = CONFIGMAPS
    return gc


async def test_a_dependent_is_rechecked_until_its_owner_is_observed_or_gone() -> None:
    client = FakeClient()
    client.owners["o"] = owner()
    gc = collector(client)
    gc._handler(CONFIGMAPS)("ADDED", None, child())
    # The owner exists (a live GET finds it) but its informer has not listed it yet: if it were
    # deleted now, no DELETED event would ever reach the collector. So: look again soon.
    assert await gc.reconcile("uid-child") == UNOBSERVED_OWNER_RECHECK
    assert client.deleted == []
    # Deleted before any informer showed it: the next look finds it gone and collects the child.
    del client.owners["o"]
    assert await gc.reconcile("uid-child") is None
    assert client.deleted == [
        ("child", {"propagationPolicy": "Background", "preconditions": {"uid": "uid-child"}})
    ]


async def test_an_observed_owner_needs_no_more_looks() -> None:
    client = FakeClient()
    client.owners["o"] = owner()
    gc = collector(client)
    gc._handler(CONFIGMAPS)("ADDED", None, child())
    gc._handler(OWNERS)("ADDED", None, owner())
    # From here its deletion arrives as an event, which enqueues the child again.
    assert await gc.reconcile("uid-child") is None
    assert client.deleted == []
