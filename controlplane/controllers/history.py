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

Claiming revisions and pods by selector is controller_ref's ControllerRefManager, as for every
other owner.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controlplane.api import errors
from controlplane.client import Client
from controlplane.controllers.hashutil import fnv32, fnv32a, safe_encode_string
from controlplane.controllers.runtime import resources as R

__all__ = [
    "CONTROLLER_REVISION_HASH_LABEL",
    "REVISION_HASH_LABEL",
    "apply_revision",
    "compute_hash",
    "controller_revision_name",
    "create_controller_revision",
    "equal_revision",
    "find_equal_revisions",
    "go_json",
    "hash_controller_revision",
    "max_revision",
    "new_controller_revision",
    "next_revision",
    "prune_old_history",
    "prune_unlive_history",
    "revision_number",
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
