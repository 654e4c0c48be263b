"""ControllerRevisions: the template history DaemonSets and StatefulSets keep (upstream
pkg/controller/history, plus the revision halves of the daemon and statefulset controllers).

A revision's `data` is the strategic merge patch that puts its owner's pod template back
(`{"spec": {"template": {..., "$patch": "replace"}}}`, upstream's getPatch); `revision` is a
number that only grows, so the newest template always has the highest one (a rollback bumps an
old revision's number instead of copying it). Names are `<owner>-<hash>`:

- StatefulSets hash the patch bytes with FNV-32 plus the decimal collision count
  (HashControllerRevision) and label the revision `controller.kubernetes.io/hash`;
- DaemonSets hash the pod template with FNV-32a plus the collision count as 8 little-endian bytes
  (controller.ComputeHash) and label it (and their pods) `controller-revision-hash`.

Both encode the decimal hash with upstream's vowel-free alphabet. The bytes hashed are Go's
`json.Marshal` of the same documents (sorted keys, no spaces, HTML-escaped), so a StatefulSet
revision of the same data gets upstream's very name (checked against upstream's compatibility
fixture). ComputeHash hashes go-spew's dump of the Go struct upstream, which has no JSON
equivalent: DaemonSet hashes are upstream-shaped, not upstream-equal.

Ownership follows upstream's ControllerRefManager: an orphan that matches the owner's selector is
adopted unless the owner (freshly read) is being deleted; an owned object that stopped matching is
released. Both are strategic merge patches on `metadata.ownerReferences` keyed by uid, carrying the
object's own uid as a precondition.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector
from controlplane.client import Client, ResourcePath
from controlplane.controllers.podutil import controller_of
from controlplane.controllers.runtime import resources as R

__all__ = [
    "CONTROLLER_REVISION_HASH_LABEL",
    "REVISION_HASH_LABEL",
    "STRATEGIC_MERGE",
    "Claim",
    "adopt",
    "apply_revision",
    "claim",
    "compute_hash",
    "controller_revision_name",
    "create_controller_revision",
    "equal_revision",
    "find_equal_revisions",
    "fnv32",
    "fnv32a",
    "go_json",
    "hash_controller_revision",
    "max_revision",
    "new_controller_revision",
    "next_revision",
    "owner_reference",
    "plan_claim",
    "prune_old_history",
    "prune_unlive_history",
    "release",
    "revision_number",
    "safe_encode_string",
    "sort_revisions",
    "template_patch",
    "update_revision_number",
]

Obj = dict[str, Any]

# history.ControllerRevisionHashLabel: the hash of a StatefulSet revision's data.
CONTROLLER_REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
# apps.ControllerRevisionHashLabelKey (= DefaultDaemonSetUniqueLabelKey = StatefulSetRevisionLabel):
# on pods, the revision they were made from; on DaemonSet revisions, their template hash.
REVISION_HASH_LABEL = "controller-revision-hash"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"

# k8s.io/apimachinery/pkg/util/rand: no vowels, so no words.
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MAX_COLLISIONS = 64


# --- hashing ----------------------------------------------------------------------------------


def _go_numbers(value: Any) -> Any:
    # encoding/json decodes numbers to float64 and prints integral ones without a fraction.
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    return value


def go_json(value: Any) -> bytes:
    """Go's `json.Marshal` of decoded JSON: sorted keys, no spaces, `<>&` and U+2028/9 escaped."""
    text = json.dumps(_go_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode()


def fnv32(data: bytes) -> int:
    """FNV-1, 32 bits (Go's hash/fnv New32)."""
    h = _FNV_OFFSET
    for byte in data:
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
        h ^= byte
    return h


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bits (Go's hash/fnv New32a)."""
    h = _FNV_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(text: str) -> str:
    return "".join(_ALPHANUMS[ord(ch) % len(_ALPHANUMS)] for ch in text)


def controller_revision_name(prefix: str, hash_: str) -> str:
    """`<prefix>-<hash>`, the prefix cut to 223 bytes so the name stays within 253."""
    return f"{prefix[:223]}-{hash_}"


def hash_controller_revision(data: Any, probe: int | None) -> str:
    """HashControllerRevision: FNV-32 of the data bytes, then of the decimal collision count."""
    payload = go_json(data) if data is not None else b""
    if probe is not None:
        payload += str(probe).encode()
    return safe_encode_string(str(fnv32(payload)))


def compute_hash(template: Any, collision_count: int | None) -> str:
    """controller.ComputeHash: FNV-32a of the pod template, then of the collision count as a
    little-endian uint32 in an 8-byte buffer."""
    payload = go_json(template if template is not None else {})
    if collision_count is not None:
        payload += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\x00" * 4
    return safe_encode_string(str(fnv32a(payload)))


# --- revision documents -----------------------------------------------------------------------


def owner_reference(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    """metav1.NewControllerRef."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def template_patch(owner: Mapping[str, Any]) -> Obj:
    """getPatch: the patch that replaces the owner's spec.template with the current one.
    Go marshals the template's ObjectMeta with a null creationTimestamp; so do we, so that the
    same template hashes to the same revision name as upstream's."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    meta = template.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        template["metadata"] = meta
    meta.setdefault("creationTimestamp", None)
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def apply_revision(owner: Mapping[str, Any], revision: Mapping[str, Any]) -> Obj:
    """ApplyRevision: the owner with the revision's template restored (the `$patch: replace`
    directive makes the strategic merge a wholesale replacement of spec.template)."""
    clone = copy.deepcopy(dict(owner))
    template = (((revision.get("data") or {}).get("spec") or {}).get("template")) or None
    if isinstance(template, dict):
        restored = copy.deepcopy(template)
        restored.pop("$patch", None)
        clone.setdefault("spec", {})["template"] = restored
    return clone


def new_controller_revision(
    owner: Mapping[str, Any],
    owner_ref: Obj,
    template_labels: Mapping[str, str] | None,
    data: Obj,
    revision: int,
    collision_count: int | None,
) -> Obj:
    """NewControllerRevision: labelled with the template's labels and the data's hash."""
    meta = owner.get("metadata") or {}
    labels = dict(template_labels or {})
    hash_ = hash_controller_revision(data, collision_count)
    labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": controller_revision_name(str(meta.get("name", "")), hash_),
            "namespace": meta.get("namespace", ""),
            "labels": labels,
            "ownerReferences": [owner_ref],
        },
        "data": data,
        "revision": revision,
    }


def revision_number(rev: Mapping[str, Any]) -> int:
    return int(rev.get("revision") or 0)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """By revision, then age (older first), then name: upstream's byRevision, stable."""
    return sorted(
        revisions,
        key=lambda r: (
            revision_number(r),
            str((r.get("metadata") or {}).get("creationTimestamp") or ""),
            _name(r),
        ),
    )


def _hash_label(rev: Mapping[str, Any]) -> int | None:
    # Upstream parses the label as a base-10 int32; safe-encoded hashes rarely are all digits.
    text = ((rev.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL)
    if text is None:
        return None
    try:
        value = int(str(text), 10)
    except ValueError:
        return None
    return value if -(2**31) <= value < 2**31 else None


def equal_revision(lhs: Mapping[str, Any] | None, rhs: Mapping[str, Any] | None) -> bool:
    if lhs is None or rhs is None:
        return lhs is rhs
    left, right = _hash_label(lhs), _hash_label(rhs)
    if left is not None and right is not None and left != right:
        return False
    return lhs.get("data") == rhs.get("data")


def find_equal_revisions(revisions: Sequence[Obj], needle: Mapping[str, Any]) -> list[Obj]:
    return [r for r in revisions if equal_revision(r, needle)]


def next_revision(sorted_revisions: Sequence[Mapping[str, Any]]) -> int:
    """1 more than the newest revision's number (1 for an empty history)."""
    return revision_number(sorted_revisions[-1]) + 1 if sorted_revisions else 1


def max_revision(revisions: Iterable[Mapping[str, Any]]) -> int:
    return max((revision_number(r) for r in revisions), default=0)


def prune_unlive_history(sorted_revisions: Sequence[Obj], live_names: set[str], limit: int) -> list[Obj]:
    """StatefulSet truncateHistory: the oldest revisions no pod, nor the current or update
    revision, refers to, beyond `limit` of them (a negative limit keeps everything)."""
    history = [r for r in sorted_revisions if _name(r) not in live_names]
    if limit < 0 or len(history) <= limit:
        return []
    return history[: len(history) - limit]


def prune_old_history(old: Sequence[Obj], live_hashes: set[str], limit: int) -> list[Obj]:
    """DaemonSet cleanupHistory: of the non-current revisions, delete the oldest until `limit`
    remain, never one whose hash a pod still carries."""
    to_kill = len(old) - limit
    doomed: list[Obj] = []
    for rev in sorted(old, key=revision_number):
        if to_kill <= 0:
            break
        if ((rev.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL) in live_hashes:
            continue
        doomed.append(rev)
        to_kill -= 1
    return doomed


# --- writes -----------------------------------------------------------------------------------


async def create_controller_revision(
    client: Client, owner_name: str, revision: Obj, collision_count: int
) -> tuple[Obj, int]:
    """CreateControllerRevision: create under the name the hash gives; a name taken by other
    data bumps the collision count and tries the next name. Returns the revision (ours, or an
    identical one that already existed) and the collision count used."""
    namespace = str(revision["metadata"].get("namespace", ""))
    clone = copy.deepcopy(revision)
    for _ in range(_MAX_COLLISIONS):
        hash_ = hash_controller_revision(revision.get("data"), collision_count)
        clone["metadata"]["name"] = controller_revision_name(owner_name, hash_)
        try:
            created = await client.create(R.CONTROLLERREVISIONS, clone, namespace)
            return created, collision_count
        except errors.AlreadyExists:
            existing = await client.get(R.CONTROLLERREVISIONS, clone["metadata"]["name"], namespace)
            if existing.get("data") == clone.get("data"):
                return existing, collision_count
            collision_count += 1
    raise errors.AlreadyExists(
        message=f"no free ControllerRevision name for {owner_name} after {_MAX_COLLISIONS} collisions",
        name=owner_name,
        group="apps",
        kind="controllerrevisions",
    )


async def update_revision_number(client: Client, revision: Obj, new_revision: int) -> Obj:
    """UpdateControllerRevision: renumber (a rollback to an older template), retrying conflicts."""
    clone = copy.deepcopy(revision)
    meta = clone["metadata"]
    for attempt in range(5):
        if revision_number(clone) == new_revision:
            return clone
        clone["revision"] = new_revision
        try:
            updated: Obj = await client.request(
                "PUT", R.CONTROLLERREVISIONS.url(meta.get("namespace"), meta["name"]), body=clone
            )
            return updated
        except errors.Conflict:
            if attempt == 4:
                raise
            clone = await client.get(R.CONTROLLERREVISIONS, meta["name"], meta.get("namespace"))
            meta = clone["metadata"]
    return clone


# --- ownership (ControllerRefManager) ---------------------------------------------------------


@dataclass
class Claim:
    owned: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def plan_claim(
    owner: Mapping[str, Any],
    selector: LabelSelector,
    objects: Iterable[Obj],
    accept: Callable[[Obj], bool] | None = None,
) -> Claim:
    """ClaimObject for each object: ours and matching -> owned; ours and no longer matching ->
    release (unless the owner is being deleted); an orphan that matches, is not being deleted and
    lives in the owner's namespace -> adopt (unless the owner is being deleted); others' -> ignored."""
    meta = owner.get("metadata") or {}
    uid = meta.get("uid")
    namespace = meta.get("namespace") or ""
    owner_deleting = bool(meta.get("deletionTimestamp"))
    result = Claim()
    for obj in objects:
        obj_meta = obj.get("metadata") or {}
        matches = selector.matches(obj_meta.get("labels") or {}) and (accept is None or accept(obj))
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                result.owned.append(obj)
            elif not owner_deleting:
                result.release.append(obj)
            continue
        if owner_deleting or not matches or obj_meta.get("deletionTimestamp"):
            continue
        if namespace and obj_meta.get("namespace", "") != namespace:
            continue
        result.adopt.append(obj)
    return result


async def adopt(client: Client, rp: ResourcePath, owner_ref: Obj, obj: Mapping[str, Any]) -> Obj:
    meta = obj.get("metadata") or {}
    patch = {"metadata": {"ownerReferences": [owner_ref], "uid": meta.get("uid", "")}}
    return await client.patch(
        rp, str(meta.get("name")), patch, meta.get("namespace"), patch_type=STRATEGIC_MERGE
    )


async def release(client: Client, rp: ResourcePath, owner_uid: str, obj: Mapping[str, Any]) -> Obj | None:
    """Drop the owner's reference; an object already gone or no longer ours is not an error."""
    meta = obj.get("metadata") or {}
    patch = {
        "metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": meta.get("uid", "")}
    }
    try:
        return await client.patch(
            rp, str(meta.get("name")), patch, meta.get("namespace"), patch_type=STRATEGIC_MERGE
        )
    except (errors.NotFound, errors.Invalid):
        return None


async def claim(
    client: Client,
    rp: ResourcePath,
    owner: Mapping[str, Any],
    owner_ref: Obj,
    selector: LabelSelector,
    objects: Iterable[Obj],
    can_adopt: Callable[[], Awaitable[None]],
    accept: Callable[[Obj], bool] | None = None,
) -> list[Obj]:
    """Claim `objects` for `owner`: returns those it owns afterwards. `can_adopt` raises when
    the owner must not adopt (upstream's RecheckDeletionTimestamp: a live read finds it gone or
    being deleted); it is called once, and only when there is something to adopt."""
    plan = plan_claim(owner, selector, objects, accept)
    claimed = list(plan.owned)
    failures: list[errors.StatusError] = []
    owner_uid = str((owner.get("metadata") or {}).get("uid", ""))
    for obj in plan.release:
        try:
            await release(client, rp, owner_uid, obj)
        except errors.StatusError as exc:
            failures.append(exc)
    if plan.adopt:
        await can_adopt()
        for obj in plan.adopt:
            try:
                claimed.append(await adopt(client, rp, owner_ref, obj))
            except errors.NotFound:
                continue
            except errors.StatusError as exc:
                failures.append(exc)
    if failures:
        raise failures[0]
    return claimed
