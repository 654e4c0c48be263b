"""Ownership tags and deterministic names.

Every resource a provider creates carries `kubernetes.io/cluster/<id>=owned` (upstream's cluster
tag, so tools that know cloud-provider-aws recognise it) and the owner's kind, name and UID, so
the garbage sweep can tell, from the cloud alone, what belongs to which Service or Node and
whether that owner still exists. `kubernetes.io/service-name` is upstream's tag for load
balancers and their security groups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from providers.model import Owner

__all__ = [
    "CLUSTER_TAG_PREFIX",
    "OWNED",
    "OWNER_KIND_TAG",
    "OWNER_NAME_TAG",
    "OWNER_UID_TAG",
    "SERVICE_NAME_TAG",
    "SHARED",
    "cluster_tag_key",
    "default_load_balancer_name",
    "is_owned",
    "owner_from_tags",
    "owner_tags",
    "short_hash",
]

CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"
OWNED = "owned"
SHARED = "shared"
SERVICE_NAME_TAG = "kubernetes.io/service-name"
OWNER_KIND_TAG = "pinnace.dev/owner-kind"
OWNER_NAME_TAG = "pinnace.dev/owner-name"
OWNER_UID_TAG = "pinnace.dev/owner-uid"


def cluster_tag_key(cluster_id: str) -> str:
    return CLUSTER_TAG_PREFIX + cluster_id


def owner_tags(cluster_id: str, owner: Owner) -> dict[str, str]:
    """The tags that mark a resource as made by this cluster for `owner`."""
    tags = {
        cluster_tag_key(cluster_id): OWNED,
        OWNER_KIND_TAG: owner.kind,
        OWNER_NAME_TAG: owner.key,
    }
    if owner.uid:
        tags[OWNER_UID_TAG] = owner.uid
    if owner.kind == "Service":
        tags[SERVICE_NAME_TAG] = owner.key
    return tags


def is_owned(tags: Mapping[str, str], cluster_id: str) -> bool:
    """Owned by this cluster (not merely shared with it): only then may we delete it."""
    return tags.get(cluster_tag_key(cluster_id)) == OWNED


def owner_from_tags(tags: Mapping[str, str]) -> Owner | None:
    kind = tags.get(OWNER_KIND_TAG)
    key = tags.get(OWNER_NAME_TAG)
    if not kind or not key:
        return None
    namespace, _, name = key.rpartition("/")
    return Owner(kind=kind, name=name, namespace=namespace, uid=tags.get(OWNER_UID_TAG, ""))


def default_load_balancer_name(service_uid: str) -> str:
    """Upstream's cloudprovider.DefaultLoadBalancerName: "a" + the UID without dashes, 32 characters at most."""
    return ("a" + service_uid.replace("-", ""))[:32]


def short_hash(*parts: str, length: int = 8) -> str:
    """A stable suffix for names that must be unique per cluster yet short (AWS target groups: 32 chars)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return digest[:length]
