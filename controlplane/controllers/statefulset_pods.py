"""A StatefulSet's pods and claims, as pure functions (upstream pkg/controller/statefulset
stateful_set_utils.go).

Pod `<set>-<ordinal>` has hostname = its name, subdomain = the set's serviceName, the labels
`statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index` and `controller-revision-hash`
(the name of the revision it was made from), and one PersistentVolumeClaim
`<template>-<set>-<ordinal>` per volumeClaimTemplate, mounted under the template's name.

persistentVolumeClaimRetentionPolicy is honoured the upstream way, through ownerReferences the
garbage collector acts on: whenDeleted=Delete makes the set a claim's controller, whenScaled=Delete
makes the pod the controller of a claim whose ordinal was scaled away.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from controlplane.controllers.controller_ref import OwnerKind, owner_reference
from controlplane.controllers.history import REVISION_HASH_LABEL
from controlplane.controllers.podutil import is_pod_available, is_pod_ready

__all__ = [
    "POD_INDEX_LABEL",
    "POD_NAME_LABEL",
    "claim_is_stale",
    "claim_name",
    "claim_owner_up_to_date",
    "claims_for_pod",
    "claims_match_retention",
    "end_ordinal",
    "has_unexpected_controller",
    "identity_matches",
    "in_ordinal_range",
    "is_created",
    "is_running_and_available",
    "is_running_and_ready",
    "is_terminating",
    "is_unavailable",
    "new_pod",
    "new_versioned_pod",
    "ordinal_of",
    "parent_and_ordinal",
    "pod_name",
    "pod_revision",
    "pods_sorted_by_ordinal",
    "retention_policy",
    "start_ordinal",
    "storage_matches",
    "update_claim_owner_refs",
    "update_identity",
    "update_storage",
]

Obj = Mapping[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
SET_API_VERSION, SET_KIND = "apps/v1", "StatefulSet"
POD_API_VERSION, POD_KIND = "v1", "Pod"

_POD_NAME = re.compile(r"^(.*)-([0-9]+)$")


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


# --- names and ordinals -----------------------------------------------------------------------


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """getParentNameAndOrdinal: ("", -1) for a name that is not `<parent>-<int32>`."""
    match = _POD_NAME.match(str(_meta(pod).get("name", "")))
    if match is None:
        return "", -1
    ordinal = int(match.group(2))
    return match.group(1), ordinal if ordinal < 2**31 else -1


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def start_ordinal(sts: Obj) -> int:
    ordinals = _spec(sts).get("ordinals")
    return int((ordinals or {}).get("start") or 0) if isinstance(ordinals, Mapping) else 0


def end_ordinal(sts: Obj) -> int:
    return start_ordinal(sts) + int(_spec(sts).get("replicas") or 0) - 1


def in_ordinal_range(pod: Obj, sts: Obj) -> bool:
    return start_ordinal(sts) <= ordinal_of(pod) <= end_ordinal(sts)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{_meta(sts).get('name', '')}-{ordinal}"


def claim_name(sts: Obj, template: Obj, ordinal: int) -> str:
    return f"{_meta(template).get('name', '')}-{_meta(sts).get('name', '')}-{ordinal}"


def pod_revision(pod: Obj) -> str:
    return str((_meta(pod).get("labels") or {}).get(REVISION_HASH_LABEL, ""))


# --- pod state --------------------------------------------------------------------------------


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_created(pod: Obj) -> bool:
    """A pod the API server holds has a phase; one we only built has none."""
    return _phase(pod) != ""


def is_terminating(pod: Obj) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    return _phase(pod) == "Running" and is_pod_ready(pod)


def is_running_and_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    return _phase(pod) == "Running" and is_pod_available(pod, min_ready_seconds, now)


def is_unavailable(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    return not is_running_and_available(pod, min_ready_seconds, now) or is_terminating(pod)


# --- identity and storage ---------------------------------------------------------------------


def identity_matches(sts: Obj, pod: Obj) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    meta = _meta(pod)
    return (
        ordinal >= 0
        and parent == _meta(sts).get("name")
        and meta.get("name") == pod_name(sts, ordinal)
        and meta.get("namespace") == _meta(sts).get("namespace")
        and (meta.get("labels") or {}).get(POD_NAME_LABEL) == meta.get("name")
    )


def update_identity(sts: Obj, pod: dict[str, Any]) -> None:
    """Name, namespace and the pod-name / pod-index labels (hostname and subdomain are immutable
    and set only at creation)."""
    ordinal = ordinal_of(pod)
    meta = pod.setdefault("metadata", {})
    meta["name"] = pod_name(sts, ordinal)
    meta["namespace"] = _meta(sts).get("namespace", "")
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        labels = {}
        meta["labels"] = labels
    labels[POD_NAME_LABEL] = meta["name"]
    labels[POD_INDEX_LABEL] = str(ordinal)


def _claim_templates(sts: Obj) -> list[Obj]:
    return [t for t in _spec(sts).get("volumeClaimTemplates") or [] if isinstance(t, Mapping)]


def storage_matches(sts: Obj, pod: Obj) -> bool:
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in _spec(pod).get("volumes") or [] if isinstance(v, Mapping)}
    for template in _claim_templates(sts):
        volume = volumes.get(_meta(template).get("name"))
        source = (volume or {}).get("persistentVolumeClaim")
        if not isinstance(source, Mapping) or source.get("claimName") != claim_name(sts, template, ordinal):
            return False
    return True


def claims_for_pod(sts: Obj, pod: Obj) -> dict[str, dict[str, Any]]:
    """getPersistentVolumeClaims: template name -> the claim this pod's ordinal uses, labelled
    with the set's matchLabels (in template order, where upstream iterates a map)."""
    ordinal = ordinal_of(pod)
    match_labels = (_spec(sts).get("selector") or {}).get("matchLabels") or {}
    out: dict[str, dict[str, Any]] = {}
    for template in _claim_templates(sts):
        claim: dict[str, Any] = copy.deepcopy(dict(template))
        claim.pop("status", None)
        meta = claim.setdefault("metadata", {})
        meta["name"] = claim_name(sts, template, ordinal)
        meta["namespace"] = _meta(sts).get("namespace", "")
        labels = meta.get("labels")
        meta["labels"] = {**labels, **match_labels} if isinstance(labels, dict) else dict(match_labels)
        claim["apiVersion"] = "v1"
        claim["kind"] = "PersistentVolumeClaim"
        out[str(_meta(template).get("name", ""))] = claim
    return out


def update_storage(sts: Obj, pod: dict[str, Any]) -> None:
    """Mount each claim under its template's name, replacing same-named volumes of the template."""
    claims = claims_for_pod(sts, pod)
    spec = pod.setdefault("spec", {})
    volumes: list[Any] = [
        {"name": name, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
        for name, claim in claims.items()
    ]
    volumes.extend(
        v for v in spec.get("volumes") or [] if not (isinstance(v, Mapping) and v.get("name") in claims)
    )
    spec["volumes"] = volumes


def new_pod(sts: Obj, ordinal: int, owner_ref: Mapping[str, Any]) -> dict[str, Any]:
    """newStatefulSetPod: GetPodFromTemplate (generateName `<set>-` as upstream, which the fixed
    name overrides), then identity, hostname/subdomain and storage."""
    template = _spec(sts).get("template") or {}
    tmpl_meta = _meta(template)
    meta: dict[str, Any] = {
        "generateName": f"{_meta(sts).get('name', '')}-",
        "name": pod_name(sts, ordinal),
        "labels": dict(tmpl_meta.get("labels") or {}),
        "ownerReferences": [dict(owner_ref)],
    }
    if tmpl_meta.get("annotations"):
        meta["annotations"] = dict(tmpl_meta["annotations"])
    if tmpl_meta.get("finalizers"):
        meta["finalizers"] = list(tmpl_meta["finalizers"])
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }
    update_identity(sts, pod)
    pod["spec"]["hostname"] = meta["name"]
    service_name = _spec(sts).get("serviceName")
    if service_name:
        pod["spec"]["subdomain"] = service_name
    update_storage(sts, pod)
    return pod


def new_versioned_pod(
    current_set: Obj,
    update_set: Obj,
    current_revision: str,
    update_revision: str,
    ordinal: int,
    owner_ref: Mapping[str, Any],
) -> dict[str, Any]:
    """newVersionedStatefulSetPod: ordinals below the partition (or, without one, below the
    current replica count) stay at the current revision; the others get the update revision."""
    strategy = _spec(current_set).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    start = start_ordinal(current_set)
    if rolling is None:
        current_replicas = int((current_set.get("status") or {}).get("currentReplicas") or 0)
        stay = strategy.get("type", "RollingUpdate") == "RollingUpdate" and ordinal < start + current_replicas
    else:
        stay = ordinal < start + int(rolling.get("partition") or 0)
    pod = new_pod(current_set if stay else update_set, ordinal, owner_ref)
    pod["metadata"]["labels"][REVISION_HASH_LABEL] = current_revision if stay else update_revision
    return pod


# --- retention policy (ownerReferences on claims) ---------------------------------------------


def retention_policy(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled), Retain by default."""
    policy = _spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or "Retain"), str(policy.get("whenScaled") or "Retain")


def _refs(obj: Obj) -> list[Mapping[str, Any]]:
    return [r for r in _meta(obj).get("ownerReferences") or [] if isinstance(r, Mapping)]


def _matches_ref(ref: Mapping[str, Any], obj: Obj, api_version: str, kind: str) -> bool:
    return (
        ref.get("apiVersion") == api_version
        and ref.get("kind") == kind
        and ref.get("name") == _meta(obj).get("name")
    )


def _has_owner_ref(target: Obj, owner: Obj) -> bool:
    uid = _meta(owner).get("uid") or ""
    return any((r.get("uid") or "") == uid for r in _refs(target))


def _has_stale_owner_ref(target: Obj, obj: Obj, api_version: str, kind: str) -> bool:
    for ref in _refs(target):
        if _matches_ref(ref, obj, api_version, kind):
            return (ref.get("uid") or "") != (_meta(obj).get("uid") or "")
    return False


def has_unexpected_controller(claim: Obj, sts: Obj, pod: Obj) -> bool:
    if retention_policy(sts) == ("Retain", "Retain"):
        return False
    for ref in _refs(claim):
        if _matches_ref(ref, sts, SET_API_VERSION, SET_KIND):
            if ref.get("uid") != _meta(sts).get("uid"):
                return True
            continue
        if _matches_ref(ref, pod, POD_API_VERSION, POD_KIND):
            if ref.get("uid") != _meta(pod).get("uid"):
                return True
            continue
        if ref.get("controller"):
            return True
    return False


def _has_non_controller_owner(claim: Obj, sts: Obj, pod: Obj) -> bool:
    uids = {_meta(sts).get("uid"), _meta(pod).get("uid")}
    return any(ref.get("uid") in uids and not ref.get("controller") for ref in _refs(claim))


def claim_owner_up_to_date(claim: Obj, sts: Obj, pod: Obj) -> bool:
    """isClaimOwnerUpToDate: Retain/Retain -> no refs to set or pod; whenDeleted=Delete -> the set
    controls claims of live ordinals; whenScaled=Delete -> the pod controls claims of ordinals
    scaled away. Stale refs or a foreign controller leave the claim alone."""
    if _has_stale_owner_ref(claim, sts, SET_API_VERSION, SET_KIND) or _has_stale_owner_ref(
        claim, pod, POD_API_VERSION, POD_KIND
    ):
        return True
    if has_unexpected_controller(claim, sts, pod):
        return not (_has_owner_ref(claim, sts) or _has_owner_ref(claim, pod))
    if _has_non_controller_owner(claim, sts, pod):
        return False
    when_deleted, when_scaled = retention_policy(sts)
    set_ref, pod_ref = _has_owner_ref(claim, sts), _has_owner_ref(claim, pod)
    scaled_down = not in_ordinal_range(pod, sts)
    if when_scaled == "Delete" and when_deleted == "Delete":
        return scaled_down != set_ref and scaled_down == pod_ref
    if when_scaled == "Delete" and when_deleted == "Retain":
        return not set_ref and scaled_down == pod_ref
    if when_scaled == "Retain" and when_deleted == "Delete":
        return set_ref and not pod_ref
    return not set_ref and not pod_ref


def claims_match_retention(sts: Obj, pod: Obj, claims: Mapping[str, Obj]) -> bool:
    """ClaimsMatchRetentionPolicy over the claims that exist (missing ones are picked up later)."""
    ordinal = ordinal_of(pod)
    for template in _claim_templates(sts):
        claim = claims.get(claim_name(sts, template, ordinal))
        if claim is not None and not claim_owner_up_to_date(claim, sts, pod):
            return False
    return True


def update_claim_owner_refs(claim: Obj, sts: Obj, pod: Obj) -> list[dict[str, Any]]:
    """updateClaimOwnerRefForSetAndPod: the claim's ownerReferences the policy asks for."""
    unexpected = has_unexpected_controller(claim, sts, pod)
    refs: list[dict[str, Any]] = [
        dict(r)
        for r in _refs(claim)
        if not (
            _matches_ref(r, sts, SET_API_VERSION, SET_KIND) or _matches_ref(r, pod, POD_API_VERSION, POD_KIND)
        )
    ]
    if unexpected:
        return refs
    when_deleted, when_scaled = retention_policy(sts)
    scaled_down = not in_ordinal_range(pod, sts)

    def add(owner: Obj, api_version: str, kind: str) -> None:
        uid = _meta(owner).get("uid") or ""
        if not any((r.get("uid") or "") == uid for r in refs):
            refs.append(owner_reference(owner, OwnerKind(api_version, kind)))

    if when_scaled == "Retain" and when_deleted == "Delete":
        add(sts, SET_API_VERSION, SET_KIND)
    elif when_scaled == "Delete" and when_deleted == "Retain":
        if scaled_down:
            add(pod, POD_API_VERSION, POD_KIND)
    elif when_scaled == "Delete" and when_deleted == "Delete":
        if scaled_down:
            add(pod, POD_API_VERSION, POD_KIND)
        else:
            add(sts, SET_API_VERSION, SET_KIND)
    return refs


def claim_is_stale(sts: Obj, pod: Obj, claims: Mapping[str, Obj]) -> bool:
    """PodClaimIsStale: with whenScaled=Delete, a claim still owned by an earlier pod of this
    name (a different uid, or this pod not created yet) must be collected before the pod is made."""
    if retention_policy(sts)[1] == "Retain":
        return False
    for claim in claims_for_pod(sts, pod).values():
        found = claims.get(claim["metadata"]["name"])
        if found is not None and _has_stale_owner_ref(found, pod, POD_API_VERSION, POD_KIND):
            return True
    return False


def pods_sorted_by_ordinal(pods: Iterable[Obj], descending: bool = False) -> list[Obj]:
    return sorted(pods, key=ordinal_of, reverse=descending)
