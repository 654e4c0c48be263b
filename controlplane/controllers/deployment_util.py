"""Pure helpers of the Deployment controller, after upstream
k8s.io/kubernetes/pkg/controller/deployment/util/deployment_util.go and the ComputeHash /
ReplicaSet sorting helpers of pkg/controller/controller_utils.go. Objects are the API's JSON
dicts; nothing here does IO.

The pod-template-hash is FNV-32a, with the collision count appended as eight little-endian
bytes and the sum rendered through SafeEncodeString, as upstream. Upstream feeds FNV with go-spew's
`%#v` dump of the typed Go struct, which depends on every field of the compiled API types and
cannot be reproduced from JSON; we feed it the canonical JSON of the template instead (keys
sorted, nulls and empty objects/lists dropped), so values are stable here but differ from a real
cluster's for the same template.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cmp_to_key
from typing import Any

from controlplane.controllers.hashutil import fnv32a, safe_encode_string
from controlplane.controllers.podutil import controller_of, parse_time, status_condition
from controlplane.controllers.runtime import rfc3339

__all__ = [
    "DEFAULT_UNIQUE_LABEL_KEY",
    "DESIRED_REPLICAS_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "compute_hash",
    "equal_ignore_hash",
    "resolve_fenceposts",
    "scaled_value",
]

Obj = dict[str, Any]
RS = Mapping[str, Any]

DEFAULT_UNIQUE_LABEL_KEY = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED_CONFIG_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

# Reasons of the Progressing and Available conditions and of rollback events.
REPLICA_SET_UPDATED_REASON = "ReplicaSetUpdated"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
NEW_REPLICA_SET_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_DEPLOY_REASON = "DeploymentPaused"
RESUMED_DEPLOY_REASON = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
ROLLBACK_REVISION_NOT_FOUND = "DeploymentRollbackRevisionNotFound"
ROLLBACK_TEMPLATE_UNCHANGED = "DeploymentRollbackTemplateUnchanged"
ROLLBACK_DONE = "DeploymentRollback"

PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"

MAX_INT32 = 2**31 - 1
MAX_REV_HISTORY_LENGTH_IN_CHARS = 2000

ANNOTATIONS_TO_SKIP = frozenset(
    {
        LAST_APPLIED_CONFIG_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        DEPRECATED_ROLLBACK_TO,
    }
)

_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_ZERO_TIME = datetime.min.replace(tzinfo=UTC)


# --- small accessors ----------------------------------------------------------------------------


def replicas(obj: Mapping[str, Any] | None) -> int:
    """*spec.replicas (defaulted to 1 by the API)."""
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _status_int(obj: Mapping[str, Any] | None, field: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("annotations") or {}


def _mutable_annotations(obj: Obj) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    if meta.get("annotations") is None:
        meta["annotations"] = {}
    annotations: dict[str, str] = meta["annotations"]
    return annotations


def uid_of(obj: Mapping[str, Any] | None) -> str:
    return "" if obj is None else str(_meta(obj).get("uid") or "")


def name_of(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name") or "")


def go_atoi(text: str | None) -> int | None:
    if text is None or not _GO_INT.match(text):
        return None
    return int(text)


# --- maxSurge / maxUnavailable ------------------------------------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: ints as they are, "N%" of total rounded up or down."""
    if value is None:
        raise ValueError("nil value for IntOrString")
    if isinstance(value, bool):
        raise TypeError("invalid value for IntOrString: invalid type: neither int nor percentage")
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise ValueError("invalid value for IntOrString: invalid type: string is not a percentage")
    number = go_atoi(value[:-1])
    if number is None:
        raise ValueError(f"invalid value for IntOrString: invalid value {value!r}")
    product = number * total
    return -(-product // 100) if round_up else product // 100


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """Surge rounds up, unavailability down; both zero becomes unavailability 1 (so a quota that
    forbids surging cannot wedge a rollout)."""
    surge = scaled_value(0 if max_surge is None else max_surge, desired, True)
    unavailable = scaled_value(0 if max_unavailable is None else max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling_update(d: Mapping[str, Any]) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") == "RollingUpdate"


def _rolling_params(d: Mapping[str, Any]) -> tuple[int | str | None, int | str | None]:
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge"), rolling.get("maxUnavailable")


def max_unavailable(d: Mapping[str, Any]) -> int:
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    _, unavailable = resolve_fenceposts(*_rolling_params(d), replicas(d))
    return min(unavailable, replicas(d))


def min_available(d: Mapping[str, Any]) -> int:
    if not is_rolling_update(d):
        return 0
    return replicas(d) - max_unavailable(d)


def max_surge(d: Mapping[str, Any]) -> int:
    if not is_rolling_update(d):
        return 0
    surge, _ = resolve_fenceposts(*_rolling_params(d), replicas(d))
    return surge


# --- the pod-template-hash -------------------------------------------------------------------------


def semantic(value: Any) -> Any:
    """The template as Go's semantic equality sees it: absent, null and empty maps/lists alike."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            norm = semantic(v)
            if norm is None or (isinstance(norm, dict | list) and not norm):
                continue
            out[k] = norm
        return out
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def compute_hash(template: Mapping[str, Any], collision_count: int | None) -> str:
    canonical = json.dumps(semantic(template), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h = fnv32a(canonical.encode())
    if collision_count is not None:
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4), h)
    return safe_encode_string(str(h))


def _without_hash(template: Mapping[str, Any] | None) -> Any:
    # `semantic` builds new containers, so copying only the path to the label is enough.
    t = dict(template or {})
    meta = t.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("labels"), Mapping):
        labels = {k: v for k, v in meta["labels"].items() if k != DEFAULT_UNIQUE_LABEL_KEY}
        t["metadata"] = {**meta, "labels": labels}
    return semantic(t)


def equal_ignore_hash(t1: Mapping[str, Any] | None, t2: Mapping[str, Any] | None) -> bool:
    """EqualIgnoreHash: templates equal once the pod-template-hash label is set aside."""
    return bool(_without_hash(t1) == _without_hash(t2))


def template_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("spec") or {}).get("template") or {}


# --- ReplicaSet orderings -----------------------------------------------------------------------


def _created(rs: RS) -> datetime:
    return parse_time(_meta(rs).get("creationTimestamp")) or _ZERO_TIME


def _by_creation_less(a: RS, b: RS) -> bool:
    ca, cb = _created(a), _created(b)
    if ca == cb:
        return name_of(a) < name_of(b)
    return ca < cb


def _cmp(less: Any) -> Any:
    def compare(a: RS, b: RS) -> int:
        if less(a, b):
            return -1
        if less(b, a):
            return 1
        return 0

    return cmp_to_key(compare)


def sort_by_creation(rss: Iterable[Obj]) -> list[Obj]:
    return sorted(rss, key=_cmp(_by_creation_less))


def sort_by_size_older(rss: Iterable[Obj]) -> list[Obj]:
    """Larger first; among equals, older first (ReplicaSetsBySizeOlder)."""

    def less(a: RS, b: RS) -> bool:
        if replicas(a) == replicas(b):
            return _by_creation_less(a, b)
        return replicas(a) > replicas(b)

    return sorted(rss, key=_cmp(less))


def sort_by_size_newer(rss: Iterable[Obj]) -> list[Obj]:
    """Larger first; among equals, newer first (ReplicaSetsBySizeNewer)."""

    def less(a: RS, b: RS) -> bool:
        if replicas(a) == replicas(b):
            return _by_creation_less(b, a)
        return replicas(a) > replicas(b)

    return sorted(rss, key=_cmp(less))


def revision(obj: Mapping[str, Any]) -> int:
    """The revision annotation; 0 when absent, ValueError when it is not an integer."""
    value = annotations_of(obj).get(REVISION_ANNOTATION)
    if value is None:
        return 0
    parsed = go_atoi(str(value))
    if parsed is None:
        raise ValueError(f"invalid revision {value!r}")
    return parsed


def _revision_or_none(obj: Mapping[str, Any]) -> int | None:
    try:
        return revision(obj)
    except ValueError:
        return None


def sort_by_revision(rss: Iterable[Obj]) -> list[Obj]:
    def less(a: RS, b: RS) -> bool:
        ra, rb = _revision_or_none(a), _revision_or_none(b)
        if ra is None or rb is None or ra == rb:
            return _by_creation_less(a, b)
        return ra < rb

    return sorted(rss, key=_cmp(less))


def max_revision(rss: Iterable[RS | None]) -> int:
    best = 0
    for rs in rss:
        if rs is None:
            continue
        value = _revision_or_none(rs)
        if value is not None and value > best:
            best = value
    return best


def last_revision(rss: Iterable[RS | None]) -> int:
    """The second highest revision: what `rollout undo` without --to-revision returns to."""
    top, second = 0, 0
    for rs in rss:
        if rs is None:
            continue
        value = _revision_or_none(rs)
        if value is None:
            continue
        if value >= top:
            second, top = top, value
        elif value > second:
            second = value
    return second


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


# --- finding the new and old ReplicaSets ----------------------------------------------------------


def find_new_replica_set(d: Mapping[str, Any], rs_list: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (ignoring the hash label)."""
    for rs in sort_by_creation(rs_list):
        if equal_ignore_hash(template_of(rs), template_of(d)):
            return rs
    return None


def find_old_replica_sets(d: Mapping[str, Any], rs_list: Sequence[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(old ReplicaSets with replicas, all old ReplicaSets)."""
    new_rs = find_new_replica_set(d, rs_list)
    required: list[Obj] = []
    every: list[Obj] = []
    for rs in rs_list:
        if new_rs is not None and uid_of(rs) == uid_of(new_rs):
            continue
        every.append(rs)
        if replicas(rs) != 0:
            required.append(rs)
    return required, every


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """The only active ReplicaSet, or the newest when none is active; None when several are."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(sort_by_creation(old_rss)))
    active = filter_active([*newest_first, new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


# --- annotations ---------------------------------------------------------------------------------


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    annotations = _mutable_annotations(rs)
    updated = False
    for key, value in (
        (DESIRED_REPLICAS_ANNOTATION, str(desired)),
        (MAX_REPLICAS_ANNOTATION, str(max_replicas)),
    ):
        if annotations.get(key) != value:
            annotations[key] = value
            updated = True
    return updated


def replicas_annotations_need_update(rs: Mapping[str, Any], desired: int, max_replicas: int) -> bool:
    annotations = annotations_of(rs)
    return annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired) or annotations.get(
        MAX_REPLICAS_ANNOTATION
    ) != str(max_replicas)


def desired_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return go_atoi(annotations_of(rs).get(DESIRED_REPLICAS_ANNOTATION))


def _max_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return go_atoi(annotations_of(rs).get(MAX_REPLICAS_ANNOTATION))


def copy_deployment_annotations_to_replica_set(d: Mapping[str, Any], rs: Obj) -> bool:
    annotations = _mutable_annotations(rs)
    changed = False
    for key, value in annotations_of(d).items():
        # The revision is the ReplicaSet's own; copying the Deployment's could make it stale.
        if key in ANNOTATIONS_TO_SKIP or annotations.get(key) == value:
            continue
        annotations[key] = value
        changed = True
    return changed


def set_new_replica_set_annotations(
    d: Mapping[str, Any],
    rs: Obj,
    new_revision: str,
    exists: bool,
    limit: int = MAX_REV_HISTORY_LENGTH_IN_CHARS,
) -> bool:
    """Copy the Deployment's annotations, raise the revision (recording the superseded one in
    revision-history when an old ReplicaSet becomes new again), and on creation set the replica
    annotations. True when anything changed."""
    changed = copy_deployment_annotations_to_replica_set(d, rs)
    annotations = _mutable_annotations(rs)
    old_revision = annotations.get(REVISION_ANNOTATION)
    had_revision = old_revision is not None
    old_int = go_atoi(old_revision) if old_revision else 0
    if old_int is None:
        return False
    new_int = go_atoi(new_revision)
    if new_int is None:
        return False
    if old_int < new_int:
        annotations[REVISION_ANNOTATION] = new_revision
        changed = True
        if had_revision and old_revision is not None:
            history = annotations.get(REVISION_HISTORY_ANNOTATION, "")
            previous = history.split(",")
            if not previous[0]:
                annotations[REVISION_HISTORY_ANNOTATION] = old_revision
            else:
                total = len(history) + len(old_revision) + 1
                start = 0
                while total > limit and start < len(previous):
                    total -= len(previous[start]) + 1
                    start += 1
                if total <= limit:
                    annotations[REVISION_HISTORY_ANNOTATION] = ",".join([*previous[start:], old_revision])
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def set_deployment_revision(d: Obj, new_revision: str) -> bool:
    annotations = _mutable_annotations(d)
    if annotations.get(REVISION_ANNOTATION) != new_revision:
        annotations[REVISION_ANNOTATION] = new_revision
        return True
    return False


def set_deployment_annotations_to(d: Obj, rs: Mapping[str, Any]) -> None:
    """On rollback the Deployment takes the ReplicaSet's annotations (except the skipped ones)."""
    kept = {k: v for k, v in annotations_of(d).items() if k in ANNOTATIONS_TO_SKIP}
    kept.update({k: v for k, v in annotations_of(rs).items() if k not in ANNOTATIONS_TO_SKIP})
    d.setdefault("metadata", {})["annotations"] = kept


def set_from_replica_set_template(d: Obj, template: Mapping[str, Any]) -> None:
    new_template = copy.deepcopy(dict(template))
    labels = (new_template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(DEFAULT_UNIQUE_LABEL_KEY, None)
    d.setdefault("spec", {})["template"] = new_template


# --- replica arithmetic ---------------------------------------------------------------------------


def total_replicas(rss: Iterable[RS | None]) -> int:
    """GetReplicaCountForReplicaSets: the sum of spec.replicas."""
    return sum(replicas(rs) for rs in rss if rs is not None)


def actual_replicas(rss: Iterable[RS | None]) -> int:
    return sum(_status_int(rs, "replicas") for rs in rss if rs is not None)


def ready_replicas(rss: Iterable[RS | None]) -> int:
    return sum(_status_int(rs, "readyReplicas") for rs in rss if rs is not None)


def available_replicas(rss: Iterable[RS | None]) -> int:
    return sum(_status_int(rs, "availableReplicas") for rs in rss if rs is not None)


def new_rs_new_replicas(d: Mapping[str, Any], all_rss: Sequence[RS | None], new_rs: RS) -> int:
    """How big the new ReplicaSet may be now: up to replicas+maxSurge pods in all (RollingUpdate),
    everything at once (Recreate)."""
    strategy = ((d.get("spec") or {}).get("strategy") or {}).get("type")
    if strategy == "RollingUpdate":
        surge_value, _ = _rolling_params(d)
        surge = scaled_value(surge_value, replicas(d), True)
        current = total_replicas(all_rss)
        max_total = replicas(d) + surge
        if current >= max_total:
            return replicas(new_rs)
        scale_up = min(max_total - current, replicas(d) - replicas(new_rs))
        return replicas(new_rs) + scale_up
    if strategy == "Recreate":
        return replicas(d)
    raise ValueError(f"deployment type {strategy} isn't supported")


def is_saturated(d: Mapping[str, Any], rs: Mapping[str, Any] | None) -> bool:
    if rs is None:
        return False
    desired = desired_replicas_annotation(rs)
    if desired is None:
        return False
    return (
        replicas(rs) == replicas(d)
        and desired == replicas(d)
        and _status_int(rs, "availableReplicas") == replicas(d)
    )


def _round_half_away(value: float) -> int:
    return int(value - 0.5) if value < 0 else int(value + 0.5)


def replica_set_fraction(rs: Mapping[str, Any], d: Mapping[str, Any]) -> int:
    """The replicas this ReplicaSet gains (or loses) when the Deployment is resized mid-rollout,
    in proportion to its share of the size recorded in its max-replicas annotation."""
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_max = replicas(d) + max_surge(d)
    annotated = _max_replicas_annotation(rs)
    if annotated is None:
        # Scaled by hand, or predates the annotation: the Deployment's current size stands in.
        annotated = _status_int(d, "replicas")
    if annotated == 0:
        return 0
    new_size = replicas(rs) * deployment_max / annotated
    return _round_half_away(new_size) - replicas(rs)


def get_proportion(rs: Mapping[str, Any] | None, d: Mapping[str, Any], to_add: int, added: int) -> int:
    if rs is None or replicas(rs) == 0 or to_add in (0, added):
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    if to_add > 0:
        return min(fraction, allowed)
    return max(fraction, allowed)


# --- conditions and status ------------------------------------------------------------------------


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    stamp = rfc3339(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, cond: Obj) -> None:
    """SetDeploymentCondition: same status and reason is no change; same status keeps the
    transition time; the condition moves to the end of the list."""
    current = status_condition(status, cond["type"])
    if (
        current is not None
        and current.get("status") == cond["status"]
        and current.get("reason") == cond["reason"]
    ):
        return
    cond = dict(cond)
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime")
    status["conditions"] = [
        *(c for c in status.get("conditions") or [] if c.get("type") != cond["type"]),
        cond,
    ]


def remove_condition(status: Obj, type_: str) -> None:
    remaining = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if remaining:
        status["conditions"] = remaining
    else:
        status.pop("conditions", None)


def replica_set_to_deployment_condition(cond: Mapping[str, Any]) -> Obj:
    return {
        "type": cond.get("type"),
        "status": cond.get("status"),
        "lastUpdateTime": cond.get("lastTransitionTime"),
        "lastTransitionTime": cond.get("lastTransitionTime"),
        "reason": cond.get("reason", ""),
        "message": cond.get("message", ""),
    }


def has_progress_deadline(d: Mapping[str, Any]) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def has_revision_history_limit(d: Mapping[str, Any]) -> bool:
    value = (d.get("spec") or {}).get("revisionHistoryLimit")
    return value is not None and int(value) != MAX_INT32


_STATUS_COUNTS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
)


def _generation(d: Mapping[str, Any]) -> int:
    return int(_meta(d).get("generation") or 0)


def calculate_status(
    all_rss: Sequence[RS | None], new_rs: RS | None, d: Mapping[str, Any], now: datetime
) -> Obj:
    """The Deployment's status from its ReplicaSets, with the Available condition set."""
    available = available_replicas(all_rss)
    unavailable = max(total_replicas(all_rss) - available, 0)
    previous = d.get("status") or {}
    values = {
        "observedGeneration": _generation(d),
        "replicas": actual_replicas(all_rss),
        "updatedReplicas": actual_replicas([new_rs]),
        "readyReplicas": ready_replicas(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    status: Obj = {k: v for k, v in values.items() if v}
    if previous.get("conditions"):
        status["conditions"] = copy.deepcopy(list(previous["conditions"]))
    if previous.get("collisionCount") is not None:
        status["collisionCount"] = previous["collisionCount"]
    if available >= replicas(d) - max_unavailable(d):
        cond = new_condition(
            AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability.", now
        )
    else:
        cond = new_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


def status_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    a, b = a or {}, b or {}
    if any(int(a.get(f) or 0) != int(b.get(f) or 0) for f in _STATUS_COUNTS):
        return False
    if a.get("collisionCount") != b.get("collisionCount"):
        return False
    return list(a.get("conditions") or []) == list(b.get("conditions") or [])


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    want = replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= _generation(d)
    )


def deployment_progressing(d: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    old = d.get("status") or {}

    def get(s: Mapping[str, Any], f: str) -> int:
        return int(s.get(f) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new, "replicas") - get(new, "updatedReplicas")
    return (
        get(new, "updatedReplicas") > get(old, "updatedReplicas")
        or new_old < old_old
        or get(new, "readyReplicas") > get(old, "readyReplicas")
        or get(new, "availableReplicas") > get(old, "availableReplicas")
    )


def deployment_timed_out(d: Mapping[str, Any], new: Mapping[str, Any], now: datetime) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = status_condition(new, PROGRESSING)
    if cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = parse_time(cond.get("lastUpdateTime")) or _ZERO_TIME
    deadline = int((d.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    return (now - since).total_seconds() > deadline


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    ref = controller_of(obj)
    return None if ref is None else str(ref.get("uid") or "")
