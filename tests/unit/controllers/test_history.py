"""ControllerRevision helpers: hashing as upstream, ordering, equality, pruning and claiming."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.api.selectors import label_selector_from_dict
from controlplane.controllers import history
from controlplane.controllers.runtime import R

Obj = dict[str, Any]

# pkg/controller/statefulset/testdata/compatibility_revision_1.33.0.json: a revision a real
# kube-controller-manager wrote for StatefulSet "test" (collisionCount 0).
UPSTREAM_DATA = json.loads(
    '{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},'
    '"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test",'
    '"imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":'
    '"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst",'
    '"restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},'
    '"terminationGracePeriodSeconds":30}}}}'
)


def _rev(
    name: str, revision: int, data: Any = None, created: str = "", labels: dict[str, str] | None = None
) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "labels": labels or {}}
    if created:
        meta["creationTimestamp"] = created
    return {"metadata": meta, "revision": revision, "data": data if data is not None else {"v": name}}


def test_fnv_matches_go_vectors() -> None:
    # hash/fnv's golden32 and golden32a tables.
    assert history.fnv32(b"") == 0x811C9DC5
    assert history.fnv32(b"a") == 0x050C5D7E
    assert history.fnv32(b"abc") == 0x439C2F4B
    assert history.fnv32a(b"a") == 0xE40C292C
    assert history.fnv32a(b"abc") == 0x1A47E90B


def test_safe_encoding_and_names() -> None:
    assert history.safe_encode_string("123") == "567"
    assert history.controller_revision_name("web", "abc") == "web-abc"
    long = "x" * 300
    assert history.controller_revision_name(long, "h") == "x" * 223 + "-h"


def test_go_json_sorts_compacts_and_escapes_like_encoding_json() -> None:
    assert history.go_json({"b": 1, "a": "<&>", "c": 1.0, "d": [True, None]}) == (
        b'{"a":"\\u003c\\u0026\\u003e","b":1,"c":1,"d":[true,null]}'
    )
    assert history.go_json({"k": "é"}) == '{"k":"é"}'.encode()


def test_statefulset_revision_hash_is_upstreams() -> None:
    assert history.hash_controller_revision(UPSTREAM_DATA, 0) == "c77f6d978"
    assert history.hash_controller_revision(UPSTREAM_DATA, 1) != "c77f6d978"
    owner = {"metadata": {"name": "test", "namespace": "default", "uid": "u1"}}
    ref = history.owner_reference(owner, "apps/v1", "StatefulSet")
    rev = history.new_controller_revision(owner, ref, {"app": "foo"}, UPSTREAM_DATA, 1, 0)
    assert rev["metadata"]["name"] == "test-c77f6d978"
    assert rev["metadata"]["labels"] == {"app": "foo", "controller.kubernetes.io/hash": "c77f6d978"}
    assert rev["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": "test",
            "uid": "u1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rev["revision"] == 1


def test_template_patch_matches_upstream_fixture_shape() -> None:
    template = json.loads(json.dumps(UPSTREAM_DATA["spec"]["template"]))
    del template["$patch"]
    del template["metadata"]["creationTimestamp"]
    owner = {"spec": {"template": template, "replicas": 3}}
    patch = history.template_patch(owner)
    assert patch == UPSTREAM_DATA
    assert "$patch" not in owner["spec"]["template"]  # the owner is not modified


def test_apply_revision_restores_the_template() -> None:
    owner = {
        "metadata": {"name": "s"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "new"}]}}},
    }
    rev = {"data": {"spec": {"template": {"$patch": "replace", "spec": {"containers": [{"image": "old"}]}}}}}
    restored = history.apply_revision(owner, rev)
    assert restored["spec"] == {"replicas": 2, "template": {"spec": {"containers": [{"image": "old"}]}}}
    assert owner["spec"]["template"]["spec"]["containers"][0]["image"] == "new"


@given(
    st.dictionaries(
        st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.booleans()), max_size=6
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2**31 - 1)),
)
def test_hashes_ignore_key_order(doc: dict[str, Any], collisions: int | None) -> None:
    reordered = dict(reversed(list(doc.items())))
    assert history.compute_hash(doc, collisions) == history.compute_hash(reordered, collisions)
    assert history.hash_controller_revision(doc, collisions) == history.hash_controller_revision(
        reordered, collisions
    )
    assert set(history.compute_hash(doc, collisions)) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_compute_hash_moves_with_collision_count() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    hashes = {history.compute_hash(template, c) for c in (None, 0, 1, 2)}
    assert len(hashes) == 4


def test_sorting_numbers_and_equality() -> None:
    a = _rev("a", 2, created="2026-01-01T00:00:02Z")
    b = _rev("b", 1)
    c = _rev("c", 2, created="2026-01-01T00:00:01Z")
    d = _rev("d", 2, created="2026-01-01T00:00:01Z")
    ordered = history.sort_revisions([a, d, b, c])
    assert [history._name(r) for r in ordered] == ["b", "c", "d", "a"]
    assert history.next_revision(ordered) == 3
    assert history.next_revision([]) == 1
    assert history.max_revision([]) == 0
    assert history.max_revision(ordered) == 2

    same = _rev("x", 1, data={"v": 1})
    twin = _rev("y", 9, data={"v": 1})
    other = _rev("z", 1, data={"v": 2})
    assert history.equal_revision(same, twin)
    assert not history.equal_revision(same, other)
    assert history.equal_revision(None, None) and not history.equal_revision(same, None)
    # Hash labels that parse as integers must agree too, as upstream compares them first.
    left = _rev("l", 1, data={"v": 1}, labels={"controller.kubernetes.io/hash": "245"})
    right = _rev("r", 1, data={"v": 1}, labels={"controller.kubernetes.io/hash": "246"})
    assert not history.equal_revision(left, right)
    assert history.find_equal_revisions([same, other, twin], twin) == [same, twin]


def test_statefulset_pruning_keeps_live_and_the_limit() -> None:
    revs = [_rev(f"r{i}", i) for i in range(1, 7)]
    live = {"r2", "r6"}
    doomed = history.prune_unlive_history(revs, live, 2)
    assert [history._name(r) for r in doomed] == ["r1", "r3"]
    assert history.prune_unlive_history(revs, live, 4) == []
    assert history.prune_unlive_history(revs, live, -1) == []
    assert len(history.prune_unlive_history(revs, set(), 0)) == 6


def test_daemonset_pruning_skips_revisions_pods_still_use() -> None:
    old = [_rev(f"r{i}", i, labels={"controller-revision-hash": f"h{i}"}) for i in (3, 1, 2, 4)]
    doomed = history.prune_old_history(old, {"h1"}, 2)
    assert [history._name(r) for r in doomed] == ["r2", "r3"]
    assert history.prune_old_history(old, set(), 10) == []


# --- claiming ---------------------------------------------------------------------------------

OWNER = {"metadata": {"name": "web", "namespace": "ns", "uid": "owner-uid"}}
SELECTOR = label_selector_from_dict({"matchLabels": {"app": "web"}})


def _obj(name: str, labels: dict[str, str], ref_uid: str | None = None, **meta: Any) -> Obj:
    m: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels, **meta}
    if ref_uid is not None:
        m["ownerReferences"] = [{"uid": ref_uid, "controller": True, "kind": "StatefulSet", "name": "x"}]
    return {"metadata": m}


def test_plan_claim_sorts_objects_like_the_ref_manager() -> None:
    objs = [
        _obj("mine", {"app": "web"}, "owner-uid"),
        _obj("stray", {"app": "other"}, "owner-uid"),
        _obj("orphan", {"app": "web"}),
        _obj("foreign", {"app": "web"}, "someone-else"),
        _obj("orphan-deleting", {"app": "web"}, deletionTimestamp="2026-01-01T00:00:00Z"),
        _obj("orphan-nomatch", {"app": "nope"}),
        _obj("orphan-elsewhere", {"app": "web"}, namespace="other"),
    ]
    plan = history.plan_claim(OWNER, SELECTOR, objs)
    names = lambda items: [o["metadata"]["name"] for o in items]  # noqa: E731
    assert names(plan.owned) == ["mine"]
    assert names(plan.release) == ["stray"]
    assert names(plan.adopt) == ["orphan"]

    deleting_owner = {"metadata": {**OWNER["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    plan = history.plan_claim(deleting_owner, SELECTOR, objs)
    assert names(plan.owned) == ["mine"] and not plan.release and not plan.adopt

    filtered = history.plan_claim(OWNER, SELECTOR, objs, accept=lambda o: o["metadata"]["name"] != "mine")
    assert names(filtered.release) == ["mine", "stray"]


class FakeClient:
    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.patches: list[tuple[str, Any, str]] = []

    async def create(self, rp: Any, obj: Obj, namespace: str | None = None) -> Obj:
        name = obj["metadata"]["name"]
        if name in self.objects:
            raise errors.AlreadyExists(message=f"{name} exists")
        self.objects[name] = obj
        return obj

    async def get(self, rp: Any, name: str, namespace: str | None = None) -> Obj:
        if name not in self.objects:
            raise errors.NotFound(message=name)
        return self.objects[name]

    async def patch(
        self, rp: Any, name: str, patch: Any, namespace: str | None = None, *, patch_type: str = "", **_: Any
    ) -> Obj:
        if name not in self.objects:
            raise errors.NotFound(message=name)
        self.patches.append((name, patch, patch_type))
        return self.objects[name]


async def test_create_controller_revision_walks_past_collisions() -> None:
    client = FakeClient()
    data = {"spec": {"template": {"$patch": "replace"}}}
    taken = history.controller_revision_name("web", history.hash_controller_revision(data, 0))
    client.objects[taken] = {"metadata": {"name": taken}, "data": {"different": True}}
    rev = {"metadata": {"name": "", "namespace": "ns"}, "data": data, "revision": 1}
    created, collisions = await history.create_controller_revision(client, "web", rev, 0)  # type: ignore[arg-type]
    assert collisions == 1
    assert created["metadata"]["name"] == history.controller_revision_name(
        "web", history.hash_controller_revision(data, 1)
    )
    # The same data again: the existing revision is returned, no further collision.
    again, collisions = await history.create_controller_revision(client, "web", rev, 1)  # type: ignore[arg-type]
    assert again is created and collisions == 1


async def test_claim_adopts_after_recheck_and_releases() -> None:
    client = FakeClient()
    for o in (_obj("orphan", {"app": "web"}), _obj("stray", {"app": "other"}, "owner-uid")):
        client.objects[o["metadata"]["name"]] = o
    rechecks: list[bool] = []

    async def can_adopt() -> None:
        rechecks.append(True)

    ref = history.owner_reference(OWNER, "apps/v1", "StatefulSet")
    claimed = await history.claim(
        client,  # type: ignore[arg-type]
        R.PODS,
        OWNER,
        ref,
        SELECTOR,
        list(client.objects.values()),
        can_adopt,
    )
    assert [o["metadata"]["name"] for o in claimed] == ["orphan"]
    assert rechecks == [True]
    by_name = {name: (patch, kind) for name, patch, kind in client.patches}
    assert by_name["orphan"] == (
        {"metadata": {"ownerReferences": [ref], "uid": "uid-orphan"}},
        history.STRATEGIC_MERGE,
    )
    assert by_name["stray"][0] == {
        "metadata": {"ownerReferences": [{"$patch": "delete", "uid": "owner-uid"}], "uid": "uid-stray"}
    }


async def test_claim_does_not_adopt_when_the_owner_is_going() -> None:
    client = FakeClient()
    orphan = _obj("orphan", {"app": "web"})
    client.objects["orphan"] = orphan

    async def refuse() -> None:
        raise errors.Conflict(message="web has just been deleted")

    with pytest.raises(errors.Conflict):
        await history.claim(
            client,  # type: ignore[arg-type]
            R.PODS,
            OWNER,
            history.owner_reference(OWNER, "apps/v1", "StatefulSet"),
            SELECTOR,
            [orphan],
            refuse,
        )
    assert client.patches == []
