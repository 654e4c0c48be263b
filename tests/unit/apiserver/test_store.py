"""Serving stored bytes without decoding: the resourceVersion splice must equal decode + encode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.api.resources import default_registry
from controlplane.apiserver.store import ObjectStore, _encode, decode, raw_object, translated
from controlplane.storage import SqliteStorage
from controlplane.storage import errors as storage_errors
from controlplane.storage.interface import KeyValue
from controlplane.storage.revlog import FutureRevision

_text = st.text(alphabet=st.sampled_from('ab"{}:,\\metadat'), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-9, 9) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)


@settings(deadline=None, max_examples=300)
@given(
    meta=st.dictionaries(_text, _json, max_size=3),
    rest=st.dictionaries(_text, _json, max_size=4),
    revision=st.integers(1, 10**12),
)
def test_spliced_bytes_decode_to_the_decoded_object(
    meta: dict[str, Any], rest: dict[str, Any], revision: int
) -> None:
    obj = {**rest, "apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "name": "x"}}
    obj.pop("resourceVersion", None)
    kv = KeyValue("/registry/core/configmaps/ns/x", _encode(obj), revision, 1)
    assert orjson.loads(raw_object(kv)) == decode(kv)
    assert decode(kv)["metadata"]["resourceVersion"] == str(revision)


def test_a_string_that_looks_like_metadata_is_not_mistaken_for_it() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": '"metadata":{'}}
    kv = KeyValue("k", _encode(obj), 7, 1)
    spliced = orjson.loads(raw_object(kv))
    assert spliced["metadata"] == {"resourceVersion": "7", "name": "x"}
    assert spliced["data"] == {"k": '"metadata":{'}


def test_values_stored_before_key_ordering_still_get_their_revision() -> None:
    kv = KeyValue("k", orjson.dumps({"data": {"a": {"metadata": {}}}, "metadata": {"name": "x"}}), 3, 1)
    assert orjson.loads(raw_object(kv)) == decode(kv)


_PODS = default_registry().get("", "v1", "pods")
assert _PODS is not None


@pytest.mark.parametrize(
    ("raised", "reason", "code"),
    [
        (storage_errors.KeyExists("/pods/ns/a"), "AlreadyExists", 409),
        (storage_errors.KeyNotFound("/pods/ns/a"), "NotFound", 404),
        (storage_errors.Compacted(3, 9), "Expired", 410),
        (FutureRevision(99, 9), "Timeout", 504),
        (storage_errors.Unavailable("disk"), "ServiceUnavailable", 503),
    ],
)
async def test_storage_errors_leave_translated_as_status(raised: Exception, reason: str, code: int) -> None:
    with pytest.raises(errors.StatusError) as caught:
        async with translated(_PODS, "a"):
            raise raised
    assert (caught.value.reason, caught.value.code) == (reason, code)
    assert caught.value.__cause__ is raised


async def test_other_errors_and_success_pass_through_translated() -> None:
    with pytest.raises(KeyError):
        async with translated(_PODS, "a"):
            raise KeyError("not a storage error")
    async with translated(_PODS, "a"):
        pass


# Decoded once per change: the latest lists admission reads on every create, and point reads.


def _limit_range(name: str, cpu: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": cpu}}]},
    }


async def test_latest_objects_are_decoded_once_per_change(tmp_path: Path) -> None:
    info = default_registry().get("", "v1", "limitranges")
    assert info is not None
    async with SqliteStorage(str(tmp_path / "state.db"), compaction_interval=0) as storage:
        store = ObjectStore(storage)
        assert list(await store.latest_objects(info, "ns")) == []
        await store.create(info, _limit_range("a", "1"))
        first = await store.latest_objects(info, "ns")
        assert [o["spec"]["limits"][0]["default"]["cpu"] for o in first] == ["1"]
        assert await store.latest_objects(info, "ns") is first  # nothing changed: the same objects
        # a write elsewhere does not move this prefix
        await store.create(info, {**_limit_range("b", "5"), "metadata": {"name": "b", "namespace": "other"}})
        assert await store.latest_objects(info, "ns") is first
        current = await store.get(info, "ns", "a")
        current["spec"]["limits"][0]["default"]["cpu"] = "2"
        await store.update(info, current, expected_revision=int(current["metadata"]["resourceVersion"]))
        second = await store.latest_objects(info, "ns")
        assert [o["spec"]["limits"][0]["default"]["cpu"] for o in second] == ["2"]
        await store.delete(info, "ns", "a", expected_revision=None)
        assert list(await store.latest_objects(info, "ns")) == []


async def test_shared_point_reads_follow_every_write(tmp_path: Path) -> None:
    info = default_registry().get("", "v1", "namespaces")
    assert info is not None
    async with SqliteStorage(str(tmp_path / "state.db"), compaction_interval=0) as storage:
        store = ObjectStore(storage)
        assert await store.get_shared(info, "", "ns") is None
        await store.create(info, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
        first = await store.get_shared(info, "", "ns")
        assert first is not None and first["metadata"]["name"] == "ns"
        assert await store.get_shared(info, "", "ns") is first
        live = await store.get(info, "", "ns")
        live["status"] = {"phase": "Terminating"}
        await store.update(info, live, expected_revision=int(live["metadata"]["resourceVersion"]))
        second = await store.get_shared(info, "", "ns")
        assert second is not None and second["status"] == {"phase": "Terminating"}
        assert second["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
        await store.delete(info, "", "ns", expected_revision=None)
        assert await store.get_shared(info, "", "ns") is None


# One Event, two groups: events.k8s.io/v1 Events are core/v1 Events in storage.

_CORE_EVENTS = default_registry().get("", "v1", "events")
_NEW_EVENTS = default_registry().get("events.k8s.io", "v1", "events")


async def test_events_written_through_one_group_are_read_through_the_other(tmp_path: Path) -> None:
    assert _CORE_EVENTS is not None and _NEW_EVENTS is not None
    async with SqliteStorage(str(tmp_path / "state.db"), compaction_interval=0) as storage:
        store = ObjectStore(storage)
        watch = await store.watch(_NEW_EVENTS, "ns", revision=await store.current_revision())
        core = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "old", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns"},
            "message": "from core",
            "count": 1,
        }
        await store.create(_CORE_EVENTS, core)
        new = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "new", "namespace": "ns"},
            "regarding": {"kind": "Pod", "name": "p", "namespace": "ns"},
            "note": "from events.k8s.io",
            "reportingController": "ctl",
        }
        await store.create(_NEW_EVENTS, new)

        # Stored once, in the core form, under the core keys.
        raw = await storage.get("/registry/core/events/ns/new")
        assert raw is not None and orjson.loads(raw.value)["message"] == "from events.k8s.io"
        assert await storage.get("/registry/events.k8s.io/events/ns/new") is None

        through_new = await store.get(_NEW_EVENTS, "ns", "old")
        assert through_new["apiVersion"] == "events.k8s.io/v1"
        assert (through_new["note"], through_new["deprecatedCount"]) == ("from core", 1)
        through_core = await store.get(_CORE_EVENTS, "ns", "new")
        assert (through_core["message"], through_core["reportingComponent"]) == ("from events.k8s.io", "ctl")
        assert orjson.loads(await store.get_raw(_NEW_EVENTS, "ns", "old"))["regarding"]["name"] == "p"

        page = await store.list(_NEW_EVENTS, "ns")
        assert [(o["metadata"]["name"], o.get("note")) for o in page.items] == [
            ("new", "from events.k8s.io"),
            ("old", "from core"),
        ]
        assert [orjson.loads(b)["apiVersion"] for b in page.raw_items()] == ["events.k8s.io/v1"] * 2
        only_core = await store.list(_NEW_EVENTS, "ns", predicate=lambda o: o.get("note") == "from core")
        assert [o["metadata"]["name"] for o in only_core.items] == ["old"]

        seen = []
        async for event in watch:
            obj = decode(event.kv)
            seen.append((obj["apiVersion"], obj["metadata"]["name"], obj.get("note")))
            if len(seen) == 2:
                break
        await watch.close()
        assert seen == [
            ("events.k8s.io/v1", "old", "from core"),
            ("events.k8s.io/v1", "new", "from events.k8s.io"),
        ]

        current = await store.get(_NEW_EVENTS, "ns", "new")
        current["series"] = {"count": 2, "lastObservedTime": "2026-01-01T00:00:00.000000Z"}
        await store.update(
            _NEW_EVENTS, current, expected_revision=int(current["metadata"]["resourceVersion"])
        )
        assert (await store.get(_CORE_EVENTS, "ns", "new"))["series"]["count"] == 2
        deleted = await store.delete(_NEW_EVENTS, "ns", "old", expected_revision=None)
        assert deleted["note"] == "from core"
        assert await store.get_or_none(_CORE_EVENTS, "ns", "old") is None
