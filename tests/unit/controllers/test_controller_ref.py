"""Controller references: making them, resolving them from the cache, and the ControllerRefManager
that every selector-owning controller claims through."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api import errors
from controlplane.api.selectors import label_selector_from_dict
from controlplane.controllers.controller_ref import (
    SMP,
    ControllerRefManager,
    OwnerKind,
    adopt,
    owner_reference,
    owners_to_sync_on_update,
    recheck_deletion,
    release,
    resolve_controller_ref,
    selecting_owners,
)
from controlplane.controllers.runtime import Informer, R

Obj = dict[str, Any]

KIND = OwnerKind("apps/v1", "StatefulSet")
OWNER: Obj = {"metadata": {"name": "web", "namespace": "ns", "uid": "owner-uid"}}
SELECTOR = label_selector_from_dict({"matchLabels": {"app": "web"}})


def _obj(name: str, labels: dict[str, str], ref_uid: str | None = None, **meta: Any) -> Obj:
    m: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels, **meta}
    if ref_uid is not None:
        m["ownerReferences"] = [{"uid": ref_uid, "controller": True, "kind": "StatefulSet", "name": "x"}]
    return {"metadata": m}


class FakeClient:
    def __init__(self, *objs: Obj) -> None:
        self.objects: dict[str, Obj] = {o["metadata"]["name"]: o for o in objs}
        self.patches: list[tuple[str, Any, str]] = []
        self.gets = 0

    async def get(self, rp: Any, name: str, namespace: str | None = None) -> Obj:
        self.gets += 1
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


async def _allow() -> None:
    return None


def _manager(client: FakeClient, owner: Obj = OWNER, can_adopt: Any = _allow) -> ControllerRefManager:
    return ControllerRefManager(client, R.PODS, owner, KIND, SELECTOR, can_adopt)  # type: ignore[arg-type]


def _names(objs: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_owner_reference_is_new_controller_ref() -> None:
    assert owner_reference(OWNER, KIND) == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "web",
        "uid": "owner-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_resolve_controller_ref_checks_kind_and_uid() -> None:
    owners = Informer(FakeClient(), R.STATEFULSETS)  # type: ignore[arg-type]
    owners.apply("ADDED", OWNER)
    ref = owner_reference(OWNER, KIND)
    assert resolve_controller_ref(owners, "ns", ref, "StatefulSet") is OWNER
    assert resolve_controller_ref(owners, "ns", ref, "DaemonSet") is None
    assert resolve_controller_ref(owners, "ns", {**ref, "uid": "replaced"}, "StatefulSet") is None
    assert resolve_controller_ref(owners, "other", ref, "StatefulSet") is None
    assert resolve_controller_ref(owners, "ns", None, "StatefulSet") is None


def test_selecting_owners_skips_empty_and_invalid_selectors() -> None:
    owners = Informer(FakeClient(), R.STATEFULSETS)  # type: ignore[arg-type]
    good = {
        "metadata": {"name": "good", "namespace": "ns", "uid": "1"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}},
    }
    empty = {"metadata": {"name": "empty", "namespace": "ns", "uid": "2"}, "spec": {"selector": {}}}
    broken = {
        "metadata": {"name": "broken", "namespace": "ns", "uid": "3"},
        "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}},
    }
    elsewhere = {**good, "metadata": {"name": "good", "namespace": "other", "uid": "4"}}
    for owner in (good, empty, broken, elsewhere):
        owners.apply("ADDED", owner)

    def selector_of(owner: Obj) -> Any:
        return label_selector_from_dict(owner["spec"]["selector"])

    assert _names(selecting_owners(owners, _obj("p", {"app": "web"}), selector_of)) == ["good"]
    assert selecting_owners(owners, _obj("p", {"app": "db"}), selector_of) == []


async def test_claim_keeps_adopts_releases_and_ignores_others() -> None:
    objs = [
        _obj("mine", {"app": "web"}, "owner-uid"),
        _obj("stray", {"app": "other"}, "owner-uid"),
        _obj("orphan", {"app": "web"}),
        _obj("foreign", {"app": "web"}, "someone-else"),
        _obj("orphan-deleting", {"app": "web"}, deletionTimestamp="2026-01-01T00:00:00Z"),
        _obj("orphan-nomatch", {"app": "nope"}),
        _obj("orphan-elsewhere", {"app": "web"}, namespace="other"),
    ]
    client = FakeClient(*objs)
    claimed = await _manager(client).claim(objs)
    assert _names(claimed) == ["mine", "orphan"]
    by_name = {name: (patch, kind) for name, patch, kind in client.patches}
    assert set(by_name) == {"stray", "orphan"}
    assert by_name["orphan"] == (
        {"metadata": {"ownerReferences": [owner_reference(OWNER, KIND)], "uid": "uid-orphan"}},
        SMP,
    )
    assert by_name["stray"][0] == {
        "metadata": {"ownerReferences": [{"$patch": "delete", "uid": "owner-uid"}], "uid": "uid-stray"}
    }


async def test_an_owner_being_deleted_neither_adopts_nor_releases() -> None:
    objs = [
        _obj("mine", {"app": "web"}, "owner-uid"),
        _obj("stray", {}, "owner-uid"),
        _obj("orphan", {"app": "web"}),
    ]
    client = FakeClient(*objs)
    deleting = {"metadata": {**OWNER["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert _names(await _manager(client, deleting).claim(objs)) == ["mine"]
    assert client.patches == []


async def test_accept_narrows_the_match() -> None:
    objs = [_obj("mine", {"app": "web"}, "owner-uid"), _obj("orphan", {"app": "web"})]
    client = FakeClient(*objs)
    claimed = await _manager(client).claim(objs, accept=lambda o: o["metadata"]["name"] != "mine")
    assert _names(claimed) == ["orphan"]
    assert [name for name, _, _ in client.patches] == ["mine", "orphan"]  # mine is released


async def test_adoption_refused_when_the_owner_is_going() -> None:
    orphan = _obj("orphan", {"app": "web"})
    client = FakeClient(orphan)

    async def refuse() -> None:
        raise errors.Conflict(message="web has just been deleted")

    with pytest.raises(errors.Conflict, match="can't adopt Pod ns/orphan"):
        await _manager(client, can_adopt=refuse).claim([orphan])
    assert client.patches == []


async def test_recheck_deletion_reads_once_and_refuses_replaced_or_deleting_owners() -> None:
    client = FakeClient(dict(OWNER))
    check = recheck_deletion(client, R.STATEFULSETS, OWNER, KIND)  # type: ignore[arg-type]
    await check()
    await check()
    assert client.gets == 1

    client.objects["web"] = {"metadata": {**OWNER["metadata"], "uid": "new"}}
    with pytest.raises(
        errors.Conflict, match="original StatefulSet ns/web is gone: got uid new, wanted owner-uid"
    ):
        await recheck_deletion(client, R.STATEFULSETS, OWNER, KIND)()  # type: ignore[arg-type]

    client.objects["web"] = {"metadata": {**OWNER["metadata"], "deletionTimestamp": "T"}}
    with pytest.raises(errors.Conflict, match="ns/web has just been deleted at T"):
        await recheck_deletion(client, R.STATEFULSETS, OWNER, KIND)()  # type: ignore[arg-type]

    del client.objects["web"]
    with pytest.raises(errors.NotFound):
        await recheck_deletion(client, R.STATEFULSETS, OWNER, KIND)()  # type: ignore[arg-type]


async def test_adopt_and_release_carry_finalizers() -> None:
    pod = _obj("p", {"app": "web"})
    client = FakeClient(pod)
    ref = owner_reference(OWNER, KIND)
    await adopt(client, R.PODS, ref, pod, ["batch.kubernetes.io/job-tracking"])  # type: ignore[arg-type]
    await release(client, R.PODS, "owner-uid", pod, ["batch.kubernetes.io/job-tracking"])  # type: ignore[arg-type]
    assert [patch for _, patch, _ in client.patches] == [
        {
            "metadata": {
                "ownerReferences": [ref],
                "uid": "uid-p",
                "finalizers": ["batch.kubernetes.io/job-tracking"],
            }
        },
        {
            "metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": "owner-uid"}],
                "uid": "uid-p",
                "$deleteFromPrimitiveList/finalizers": ["batch.kubernetes.io/job-tracking"],
            }
        },
    ]
    # Releasing from an object that is gone is not an error.
    await release(client, R.PODS, "owner-uid", _obj("gone", {}))  # type: ignore[arg-type]


def _owned(name: str, labels: dict[str, str], owner_uid: str | None = None, rv: str = "1") -> Obj:
    obj = _obj(name, labels, owner_uid)
    obj["metadata"]["resourceVersion"] = rv
    return obj


class _Owners:
    """resolve / selecting stand-ins that remember what they were asked."""

    def __init__(self) -> None:
        self.by_uid = {
            "a": {"metadata": {"name": "a", "uid": "a"}},
            "b": {"metadata": {"name": "b", "uid": "b"}},
        }
        self.selecting_calls = 0

    def resolve(self, namespace: str, ref: Any) -> Obj | None:
        assert namespace == "ns"
        return self.by_uid.get(ref.get("uid"))

    def selecting(self, obj: Obj) -> list[Obj]:
        self.selecting_calls += 1
        return [self.by_uid["b"]]


def test_update_of_a_controlled_object_syncs_its_controller_only() -> None:
    owners = _Owners()
    targets = owners_to_sync_on_update(
        owners.resolve, owners.selecting, _owned("p", {"x": "1"}, "a"), _owned("p", {"x": "2"}, "a", "2")
    )
    assert targets.owners == [owners.by_uid["a"]] and targets.controller is owners.by_uid["a"]
    assert owners.selecting_calls == 0


def test_a_changed_controller_syncs_both_and_a_vanished_one_nothing() -> None:
    owners = _Owners()
    targets = owners_to_sync_on_update(
        owners.resolve, owners.selecting, _owned("p", {}, "a"), _owned("p", {}, "b")
    )
    assert [o["metadata"]["name"] for o in targets.owners] == ["a", "b"]
    targets = owners_to_sync_on_update(
        owners.resolve, owners.selecting, _owned("p", {}, "a"), _owned("p", {}, "gone")
    )
    assert [o["metadata"]["name"] for o in targets.owners] == ["a"] and targets.controller is None
    assert owners.selecting_calls == 0


def test_an_orphan_syncs_selecting_owners_only_when_labels_or_ref_changed() -> None:
    owners = _Owners()
    same = owners_to_sync_on_update(
        owners.resolve, owners.selecting, _owned("p", {"x": "1"}), _owned("p", {"x": "1"})
    )
    assert same.owners == [] and owners.selecting_calls == 0
    relabelled = owners_to_sync_on_update(
        owners.resolve, owners.selecting, _owned("p", {"x": "1"}), _owned("p", {"x": "2"})
    )
    assert relabelled.owners == [owners.by_uid["b"]] and relabelled.controller is None
    released = owners_to_sync_on_update(
        owners.resolve, owners.selecting, _owned("p", {}, "a"), _owned("p", {})
    )
    assert [o["metadata"]["name"] for o in released.owners] == ["a", "b"]
