"""ControllerRevision helpers: hashing as upstream, ordering, equality, pruning and writes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.controllers import history
from controlplane.controllers.controller_ref import OwnerKind, owner_reference

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


def test_safe_encoding_and_names() -> None:
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
    ref = owner_reference(owner, OwnerKind("apps/v1", "StatefulSet"))
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


# --- writes -----------------------------------------------------------------------------------


class FakeClient:
    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}

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
