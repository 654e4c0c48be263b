"""StatefulSet pods and claims: names, ordinals, identity, storage and the retention policy's
ownerReferences (upstream stateful_set_utils.go)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.controllers.statefulset_pods import (
    claim_is_stale,
    claim_owner_up_to_date,
    claims_for_pod,
    claims_match_retention,
    end_ordinal,
    identity_matches,
    in_ordinal_range,
    new_pod,
    new_versioned_pod,
    parent_and_ordinal,
    start_ordinal,
    storage_matches,
    update_claim_owner_refs,
    update_identity,
    update_storage,
)

Obj = dict[str, Any]
REF = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "name": "web",
    "uid": "set-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}


def sts(
    replicas: int = 3,
    start: int | None = None,
    partition: int | None = 0,
    when_deleted: str = "Retain",
    when_scaled: str = "Retain",
    image: str = "v1",
) -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "serviceName": "web-svc",
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"a": "1"}},
            "spec": {
                "containers": [{"name": "c", "image": image}],
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "x"}}],
            },
        },
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data", "labels": {"tier": "db"}},
                "spec": {"resources": {"requests": {"storage": "1Gi"}}},
            }
        ],
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": when_deleted, "whenScaled": when_scaled},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
        if partition is not None
        else {"type": "OnDelete"},
    }
    if start is not None:
        spec["ordinals"] = {"start": start}
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"}, "spec": spec, "status": {}}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web-0", ("web", 0)),
        ("my-web-12", ("my-web", 12)),
        ("web", ("", -1)),
        ("web-x", ("", -1)),
        ("web-99999999999", ("web", -1)),
    ],
)
def test_parent_and_ordinal(name: str, expected: tuple[str, int]) -> None:
    assert parent_and_ordinal({"metadata": {"name": name}}) == expected


def test_ordinal_range_with_a_start() -> None:
    s = sts(replicas=2, start=5)
    assert (start_ordinal(s), end_ordinal(s)) == (5, 6)
    assert in_ordinal_range({"metadata": {"name": "web-6"}}, s)
    assert not in_ordinal_range({"metadata": {"name": "web-0"}}, s)


def test_new_pod_has_identity_and_storage() -> None:
    pod = new_pod(sts(), 1, REF)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "web-1" and meta["generateName"] == "web-" and meta["namespace"] == "ns"
    assert meta["labels"] == {
        "app": "web",
        "statefulset.kubernetes.io/pod-name": "web-1",
        "apps.kubernetes.io/pod-index": "1",
    }
    assert meta["annotations"] == {"a": "1"} and meta["ownerReferences"] == [REF]
    assert spec["hostname"] == "web-1" and spec["subdomain"] == "web-svc"
    # The template's own `data` volume is replaced by the claim; other volumes stay.
    assert spec["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
        {"name": "cfg", "configMap": {"name": "x"}},
    ]
    assert identity_matches(sts(), pod) and storage_matches(sts(), pod)


def test_claims_for_pod_are_named_and_labelled() -> None:
    claims = claims_for_pod(sts(), {"metadata": {"name": "web-2"}})
    claim = claims["data"]
    assert claim["metadata"] == {
        "name": "data-web-2",
        "namespace": "ns",
        "labels": {"tier": "db", "app": "web"},
    }
    assert claim["spec"] == {"resources": {"requests": {"storage": "1Gi"}}}
    assert claim["kind"] == "PersistentVolumeClaim"


def test_identity_and_storage_repairs() -> None:
    s = sts()
    pod = new_pod(s, 0, REF)
    del pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
    pod["spec"]["volumes"] = []
    assert not identity_matches(s, pod) and not storage_matches(s, pod)
    update_identity(s, pod)
    update_storage(s, pod)
    assert identity_matches(s, pod) and storage_matches(s, pod)
    other = new_pod(s, 0, REF)
    other["metadata"]["namespace"] = "elsewhere"
    assert not identity_matches(s, other)


def test_versioned_pods_follow_the_partition() -> None:
    current, update = sts(partition=2, image="v1"), sts(partition=2, image="v2")
    below = new_versioned_pod(current, update, "rev-1", "rev-2", 1, REF)
    at = new_versioned_pod(current, update, "rev-1", "rev-2", 2, REF)
    assert below["metadata"]["labels"]["controller-revision-hash"] == "rev-1"
    assert below["spec"]["containers"][0]["image"] == "v1"
    assert at["metadata"]["labels"]["controller-revision-hash"] == "rev-2"
    assert at["spec"]["containers"][0]["image"] == "v2"
    # With a start ordinal the partition counts from it.
    current, update = sts(start=10, partition=1), sts(start=10, partition=1, image="v2")
    assert (
        new_versioned_pod(current, update, "r1", "r2", 10, REF)["metadata"]["labels"][
            "controller-revision-hash"
        ]
        == "r1"
    )
    assert (
        new_versioned_pod(current, update, "r1", "r2", 11, REF)["metadata"]["labels"][
            "controller-revision-hash"
        ]
        == "r2"
    )
    # OnDelete: new pods are always made at the update revision.
    on_delete = sts(partition=None)
    assert (
        new_versioned_pod(on_delete, on_delete, "r1", "r2", 0, REF)["metadata"]["labels"][
            "controller-revision-hash"
        ]
        == "r2"
    )


def _claim(*refs: Obj) -> Obj:
    meta: Obj = {"name": "data-web-1", "namespace": "ns"}
    if refs:
        meta["ownerReferences"] = list(refs)
    return {"metadata": meta}


POD = {"metadata": {"name": "web-1", "namespace": "ns", "uid": "pod-uid"}}
POD_REF = {
    "apiVersion": "v1",
    "kind": "Pod",
    "name": "web-1",
    "uid": "pod-uid",
    "controller": True,
    "blockOwnerDeletion": True,
}


@pytest.mark.parametrize(
    ("when_deleted", "when_scaled", "replicas", "expected_kinds"),
    [
        ("Retain", "Retain", 3, []),
        ("Delete", "Retain", 3, ["StatefulSet"]),
        ("Retain", "Delete", 3, []),
        ("Retain", "Delete", 1, ["Pod"]),  # web-1 scaled away: the pod owns its claim
        ("Delete", "Delete", 3, ["StatefulSet"]),
        ("Delete", "Delete", 1, ["Pod"]),
    ],
)
def test_retention_policy_owner_refs(
    when_deleted: str, when_scaled: str, replicas: int, expected_kinds: list[str]
) -> None:
    s = sts(replicas=replicas, when_deleted=when_deleted, when_scaled=when_scaled)
    bare = _claim()
    refs = update_claim_owner_refs(bare, s, POD)
    assert [r["kind"] for r in refs] == expected_kinds
    assert all(r["controller"] for r in refs)
    fixed = _claim(*refs)
    assert claim_owner_up_to_date(fixed, s, POD)
    assert claims_match_retention(s, POD, {"data-web-1": fixed})
    assert claim_owner_up_to_date(bare, s, POD) is (expected_kinds == [])


def test_retention_leaves_foreign_and_stale_owners_alone() -> None:
    s = sts(when_deleted="Delete")
    foreign = _claim(
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other", "controller": True}
    )
    assert claim_owner_up_to_date(foreign, s, POD)  # another controller manages it: hands off
    assert update_claim_owner_refs(foreign, s, POD) == foreign["metadata"]["ownerReferences"]
    stale = _claim({**REF, "uid": "previous-set"})
    assert claim_owner_up_to_date(stale, s, POD)
    not_controller = _claim({**REF, "controller": False})
    assert not claim_owner_up_to_date(not_controller, s, POD)
    assert update_claim_owner_refs(not_controller, s, POD) == [REF]


def test_stale_claims_block_recreation_only_when_scaled_claims_are_deleted() -> None:
    old_pod_ref = {**POD_REF, "uid": "dead-pod"}
    claims = {"data-web-1": _claim(old_pod_ref)}
    fresh = {"metadata": {"name": "web-1", "namespace": "ns"}}  # not created yet: no uid
    assert claim_is_stale(sts(when_scaled="Delete"), fresh, claims)
    assert not claim_is_stale(sts(when_scaled="Retain"), fresh, claims)
    assert not claim_is_stale(sts(when_scaled="Delete"), fresh, {})
