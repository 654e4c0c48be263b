"""The informer cache: indexes, handlers, and a relist that reconciles what a watch missed."""

from __future__ import annotations

from typing import Any

from controlplane.client import ResourcePath
from controlplane.controllers.runtime import Informer, key_of, split_key

PODS = ResourcePath("", "v1", "pods")


def pod(name: str, rv: str, *, node: str = "", owner: str = "", ns: str = "default") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "resourceVersion": rv, "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "kind": "ReplicaSet", "name": "rs", "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}}


class ListingClient:
    """Only what `Informer._relist` calls: `list` with paging."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, str]] = []

    async def list(
        self, rp: ResourcePath, namespace: str | None = None, *, params: Any = None
    ) -> dict[str, Any]:
        self.calls.append(dict(params or {}))
        return self.pages.pop(0)


def test_keys() -> None:
    assert key_of(pod("a", "1")) == "default/a"
    assert key_of({"metadata": {"name": "n1"}}) == "n1"
    assert split_key("default/a") == ("default", "a")
    assert split_key("n1") == ("", "n1")


def test_watch_events_update_cache_indexes_and_handlers() -> None:
    inf = Informer(ListingClient([]), PODS)  # type: ignore[arg-type]
    seen: list[tuple[str, str | None, str | None]] = []
    inf.add_handler(
        lambda ev, old, new: seen.append(
            (ev, old and old["metadata"]["resourceVersion"], new and new["metadata"]["resourceVersion"])
        )
    )
    inf.apply("ADDED", pod("a", "1", node="n1", owner="rs1"))
    inf.apply("MODIFIED", pod("a", "2", node="n2", owner="rs1"))
    assert [p["metadata"]["name"] for p in inf.by_index("node", "n2")] == ["a"]
    assert inf.by_index("node", "n1") == []
    assert len(inf.by_index("owner", "rs1")) == 1
    inf.apply("BOOKMARK", {"metadata": {"resourceVersion": "7"}})
    assert inf.resource_version == "7"
    inf.apply("DELETED", pod("a", "8", node="n2"))
    assert inf.get("default/a") is None
    assert inf.by_index("node", "n2") == []
    assert seen == [("ADDED", None, "1"), ("MODIFIED", "1", "2"), ("DELETED", "2", "8")]


async def test_relist_pages_and_synthesises_the_missed_changes() -> None:
    client = ListingClient(
        [
            {"kind": "PodList", "apiVersion": "v1", "metadata": {"continue": "t1"}, "items": [pod("a", "5")]},
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "9"},
                "items": [pod("c", "9")],
            },
        ]
    )
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    inf.apply("ADDED", pod("a", "1"))
    inf.apply("ADDED", pod("b", "2"))
    events: list[tuple[str, str]] = []
    inf.add_handler(lambda ev, old, new: events.append((ev, (new or old or {})["metadata"]["name"])))
    events.clear()  # add_handler on an unsynced informer replays nothing; keep the test explicit
    await inf._relist()
    assert sorted(events) == [("ADDED", "c"), ("DELETED", "b"), ("MODIFIED", "a")]
    assert inf.resource_version == "9"
    assert client.calls[1]["continue"] == "t1"
    assert inf.get("default/c")["kind"] == "Pod"  # type: ignore[index]


async def test_relist_keeps_the_cached_object_of_an_unchanged_item() -> None:
    listed = pod("a", "1")
    client = ListingClient(
        [
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "3"},
                "items": [listed, pod("b", "3")],
            }
        ]
    )
    inf = Informer(client, PODS)  # type: ignore[arg-type]
    cached = pod("a", "1")
    inf.apply("ADDED", cached)
    events: list[tuple[str, str]] = []
    inf.add_handler(lambda ev, old, new: events.append((ev, (new or old or {})["metadata"]["name"])))
    await inf._relist()
    assert events == [("ADDED", "b")]  # nothing to say about "a"
    assert inf.get("default/a") is cached  # the decoded duplicate was dropped
    assert inf.by_index("namespace", "default") and len(inf) == 2


def test_custom_indexer_covers_existing_items() -> None:
    inf = Informer(ListingClient([]), PODS)  # type: ignore[arg-type]
    inf.apply("ADDED", pod("a", "1"))
    inf.add_indexer("name-initial", lambda obj: [obj["metadata"]["name"][0]])
    assert len(inf.by_index("name-initial", "a")) == 1
