"""Custom resources between served and stored versions: strategy None in place, Webhook through
`controlplane.apiserver.conversion.convert_objects`, and watches converting what they deliver."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from controlplane.api.resources import ResourceInfo
from controlplane.apiserver import conversion
from controlplane.apiserver.crd.codec import CustomResourceCodec
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage


def info(version: str, strategy: str = "None") -> ResourceInfo:
    crd = {"spec": {"conversion": {"strategy": strategy}}}
    return ResourceInfo(
        group="example.com",
        version=version,
        kind="Widget",
        plural="widgets",
        namespaced=False,
        storage_version="v1",
        custom=True,
        extra={"conversion": crd["spec"]["conversion"], "crd_object": crd},
    )


def obj(version: str, name: str = "w") -> dict[str, Any]:
    return {"apiVersion": f"example.com/{version}", "kind": "Widget", "metadata": {"name": name}}


async def test_strategy_none_rewrites_api_version_both_ways() -> None:
    codec = CustomResourceCodec()
    stored = await codec.to_storage(info("v2"), obj("v2"))
    assert stored["apiVersion"] == "example.com/v1"
    read = await codec.from_storage(info("v2"), [obj("v1")])
    assert read[0]["apiVersion"] == "example.com/v2"
    assert codec.synchronous(info("v2"))


async def test_webhook_strategy_calls_the_conversion_client(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], str]] = []

    async def fake(ctx: Any, crd: Any, objects: list[dict[str, Any]], desired: str) -> list[dict[str, Any]]:
        calls.append(([o["metadata"]["name"] for o in objects], desired))
        return [{**o, "apiVersion": desired, "converted": True} for o in objects]

    monkeypatch.setattr(conversion, "convert_objects", fake)
    codec = CustomResourceCodec()
    target = info("v2", "Webhook")
    assert not codec.synchronous(target)
    read = await codec.from_storage(target, [obj("v1", "a"), obj("v2", "b")])
    assert [o.get("converted") for o in read] == [True, None]  # already in v2: not sent
    stored = await codec.to_storage(target, obj("v2", "c"))
    assert stored["apiVersion"] == "example.com/v1"
    assert calls == [(["a"], "example.com/v2"), (["c"], "example.com/v1")]


async def test_a_watch_of_another_version_delivers_converted_events() -> None:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    try:
        store = ObjectStore(storage, CustomResourceCodec())
        v2 = info("v2")
        watch = await store.watch(v2, None, revision=await store.current_revision())
        await store.create(v2, obj("v2", "a"))
        await store.create(v2, obj("v2", "b"))
        raw = await storage.get("/registry/example.com/widgets/a")
        assert raw is not None and orjson.loads(raw.value)["apiVersion"] == "example.com/v1"
        first = await watch.__aiter__().__anext__()
        events = [first, *watch.ready()]
        assert [orjson.loads(e.kv.value)["apiVersion"] for e in events] == ["example.com/v2"] * 2
        # Watchers of the storage version must not share decoded events with this one.
        assert events[0].kv.key != "/registry/example.com/widgets/a"
        await watch.close()
    finally:
        await storage.close()
