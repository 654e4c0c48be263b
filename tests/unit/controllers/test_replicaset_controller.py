"""The ReplicaSet controller's sync against an in-memory client and hand-fed informers: a cache
that lags the controller's own writes must never make it create replicas twice."""

from __future__ import annotations

import itertools
from typing import Any

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.runtime import (
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
    R,
)

Obj = dict[str, Any]


class FakeClient:
    """Records writes; answers them the way the API server would, without telling any watch."""

    def __init__(self) -> None:
        self.created: list[Obj] = []
        self.deleted: list[str] = []
        self.statuses: list[Obj] = []
        self._names = itertools.count()

    async def create(self, rp: ResourcePath, obj: Obj, namespace: str | None = None) -> Obj:
        obj = {**obj, "metadata": dict(obj["metadata"])}
        meta = obj["metadata"]
        meta.setdefault("name", f"{meta.pop('generateName', '')}{next(self._names):05d}")
        meta["namespace"] = namespace
        meta["uid"] = f"uid-{meta['name']}"
        meta["resourceVersion"] = "1"
        self.created.append(obj)
        return obj

    async def delete(self, rp: ResourcePath, name: str, namespace: str | None = None, **_: Any) -> None:
        self.deleted.append(name)

    async def request(self, method: str, path: str, **kwargs: Any) -> Obj:
        body: Obj = kwargs["body"]
        self.statuses.append(body["status"])
        return body

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> Obj:
        raise errors.NotFound(message="not used here")

    async def patch(self, *args: Any, **kwargs: Any) -> Obj:
        raise AssertionError("nothing to adopt or release in these tests")


def controller() -> tuple[ReplicaSetController, FakeClient]:
    client = FakeClient()
    clock = FakeClock()
    informers = InformerFactory(client, clock=clock)  # type: ignore[arg-type]
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=informers,
        recorder=EventBroadcaster(client, clock=clock).recorder("replicaset"),  # type: ignore[arg-type]
        clock=clock,
    )
    return ReplicaSetController(ctx), client


def replica_set(replicas: int) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": "rs-uid",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}},
        },
        "status": {},
    }


async def test_lagging_cache_never_double_creates() -> None:
    rsc, client = controller()
    owners = rsc.ctx.informers.informer(R.REPLICASETS)
    pods = rsc.ctx.informers.informer(R.PODS)
    owners.apply("ADDED", replica_set(3))

    await rsc.reconcile("ns/web")
    assert len(client.created) == 3
    assert all(p["metadata"]["name"].startswith("web-") for p in client.created)
    # The cache has not seen the pods yet: another sync must wait, not create three more.
    await rsc.reconcile("ns/web")
    assert len(client.created) == 3
    assert rsc.expectations.get("ns/web") == (3, 0)

    for i, pod in enumerate(client.created[:2]):
        pods.apply(
            "ADDED",
            {
                **pod,
                "status": {"phase": "Pending"},
                "metadata": {**pod["metadata"], "resourceVersion": str(i + 2)},
            },
        )
    await rsc.reconcile("ns/web")
    assert len(client.created) == 3  # one creation still unobserved
    pods.apply("ADDED", {**client.created[2], "status": {"phase": "Pending"}})
    await rsc.reconcile("ns/web")
    assert len(client.created) == 3
    assert client.statuses[-1]["replicas"] == 3


async def test_scale_down_waits_for_its_deletions() -> None:
    rsc, client = controller()
    owners = rsc.ctx.informers.informer(R.REPLICASETS)
    pods = rsc.ctx.informers.informer(R.PODS)
    owners.apply("ADDED", replica_set(3))
    await rsc.reconcile("ns/web")
    for pod in client.created:
        pods.apply("ADDED", {**pod, "status": {"phase": "Pending"}})
    owners.apply(
        "MODIFIED", {**replica_set(1), "metadata": {**replica_set(1)["metadata"], "resourceVersion": "9"}}
    )

    await rsc.reconcile("ns/web")
    assert len(client.deleted) == 2
    assert client.statuses[-1]["replicas"] == 1  # the deleted pods no longer count
    await rsc.reconcile("ns/web")
    assert len(client.deleted) == 2  # deletions not yet observed: nothing more
    for pod in client.created:
        if pod["metadata"]["name"] in client.deleted:
            pods.apply("DELETED", pod)
    assert rsc.expectations.satisfied("ns/web")
    await rsc.reconcile("ns/web")
    assert len(client.deleted) == 2 and len(client.created) == 3
