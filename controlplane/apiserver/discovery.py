"""Discovery documents, built from the resource registry.

Legacy discovery (`/api`, `/apis`, `/apis/<group>`, `/api/v1`, `/apis/<group>/<version>`) and
aggregated discovery (`apidiscovery.k8s.io` v2 and v2beta1 `APIGroupDiscoveryList`), plus the
Accept-header negotiation client-go relies on to choose between them. Everything here is a pure
function of the registry; the routes that serve these documents live elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from controlplane.api.resources import Registry, ResourceInfo, Subresource

__all__ = [
    "AGGREGATED_VERSIONS",
    "aggregated",
    "aggregated_content_type",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "negotiate_aggregated",
    "storage_version_hash",
]

Document = dict[str, Any]

DISCOVERY_GROUP = "apidiscovery.k8s.io"
AGGREGATED_KIND = "APIGroupDiscoveryList"
# Preferred first: a client offering both gets v2.
AGGREGATED_VERSIONS: tuple[str, ...] = ("v2", "v2beta1")


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """Upstream `discovery.StorageVersionHash`: base64 of the first 8 bytes of sha256("g/v/k").
    Clients only compare it for equality, but matching upstream keeps caches stable across servers."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode("ascii")


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


# -- legacy discovery ---------------------------------------------------------------------------


def api_versions(server_address: str = "") -> Document:
    """`GET /api`: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _api_group_doc(group: str, versions: list[str]) -> Document:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> Document:
    """`GET /apis`: every non-core group with its versions, preferred first."""
    groups = [_api_group_doc(g, vs) for g, vs in registry.group_versions().items() if g and vs]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> Document | None:
    """`GET /apis/<group>`; None when the group is not served (the route answers 404)."""
    if not group:
        return None
    versions = registry.group_versions().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group_doc(group, versions)}


def _sub_kind(info: ResourceInfo, sub: Subresource) -> tuple[str, str, str]:
    """(group, version, kind) a subresource answers with; a subresource without its own kind
    (status, log, finalize, approval) answers with the parent's kind, as upstream lists it."""
    group = info.group if sub.group is None else sub.group
    version = info.version if sub.version is None else sub.version
    return group, version, sub.kind or info.kind


def _legacy_resource(info: ResourceInfo) -> Document:
    doc: Document = {
        "name": info.plural,
        "singularName": info.singular_name,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        doc["shortNames"] = list(info.short_names)
    if info.categories:
        doc["categories"] = list(info.categories)
    # A custom resource hashes its storage version, as upstream: every served version shares it;
    # a kind stored as another group's (events.k8s.io's Events) hashes that group's.
    if info.stored_as:
        stored_group, _, stored_version = info.stored_as.rpartition("/")
        doc["storageVersionHash"] = storage_version_hash(stored_group, stored_version, info.kind)
    else:
        doc["storageVersionHash"] = storage_version_hash(
            info.group, info.storage_version or info.version, info.kind
        )
    return doc


def _legacy_subresource(info: ResourceInfo, sub: Subresource) -> Document:
    group, version, kind = _sub_kind(info, sub)
    doc: Document = {"name": f"{info.plural}/{sub.name}", "singularName": "", "namespaced": info.namespaced}
    # Upstream names group/version only when they differ from the list's own (Scale, Eviction).
    if (group, version) != (info.group, info.version):
        doc["group"] = group
        doc["version"] = version
    doc["kind"] = kind
    doc["verbs"] = list(sub.verbs)
    return doc


def api_resource_list(registry: Registry, group: str, version: str) -> Document | None:
    """`GET /api/v1` or `GET /apis/<group>/<version>`; None when the group-version is not served."""
    infos = registry.in_group_version(group, version)
    if not infos:
        return None
    resources: list[Document] = []
    for info in infos:
        resources.append(_legacy_resource(info))
        resources.extend(_legacy_subresource(info, sub) for sub in sorted(info.subresources, key=_name))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": _group_version(group, version),
        "resources": resources,
    }


def _name(sub: Subresource) -> str:
    return sub.name


# -- aggregated discovery -----------------------------------------------------------------------


def _aggregated_resource(info: ResourceInfo) -> Document:
    doc: Document = {
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular_name,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        doc["shortNames"] = list(info.short_names)
    if info.categories:
        doc["categories"] = list(info.categories)
    if info.subresources:
        subs: list[Document] = []
        for sub in sorted(info.subresources, key=_name):
            group, version, kind = _sub_kind(info, sub)
            subs.append(
                {
                    "subresource": sub.name,
                    "responseKind": {"group": group, "version": version, "kind": kind},
                    "verbs": list(sub.verbs),
                }
            )
        doc["subresources"] = subs
    return doc


def aggregated(registry: Registry, *, core: bool, version: str) -> Document:
    """The aggregated discovery document for `/api` (core=True: only the "" group) or `/apis`
    (every other group). `version` is the negotiated `apidiscovery.k8s.io` version."""
    if version not in AGGREGATED_VERSIONS:
        raise ValueError(f"unsupported aggregated discovery version {version!r}")
    items: list[Document] = []
    for group, versions in registry.group_versions().items():
        if (group == "") != core:
            continue
        version_docs = []
        for v in versions:
            resources = [_aggregated_resource(i) for i in registry.in_group_version(group, v)]
            version_docs.append({"version": v, "resources": resources, "freshness": "Current"})
        # Go marshals the zero creationTimestamp as null; the core group has no name at all.
        metadata: Document = (
            {"name": group, "creationTimestamp": None} if group else {"creationTimestamp": None}
        )
        items.append({"metadata": metadata, "versions": version_docs})
    return {
        "kind": AGGREGATED_KIND,
        "apiVersion": f"{DISCOVERY_GROUP}/{version}",
        "metadata": {},
        "items": items,
    }


def _parse_media_range(text: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in text.split(";")]
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


def negotiate_aggregated(accept_header: str) -> str | None:
    """The aggregated discovery version to answer with ("v2" or "v2beta1"), or None for the legacy
    document. client-go offers the aggregated types first and `application/json` last; it parses
    the body according to the Content-Type that comes back, so any other Accept gets legacy."""
    candidates: list[tuple[float, int, str | None]] = []
    for index, item in enumerate(accept_header.split(",")):
        if not item.strip():
            continue
        media, params = _parse_media_range(item)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 1.0
        if quality <= 0:
            continue
        if (
            media == "application/json"
            and params.get("g") == DISCOVERY_GROUP
            and params.get("as") == AGGREGATED_KIND
            and params.get("v") in AGGREGATED_VERSIONS
        ):
            candidates.append((quality, index, params["v"]))
        elif media in ("application/json", "application/*", "*/*") and not {"g", "v", "as"} & params.keys():
            # A typed request for some other kind (a Table, say) is not a request for the legacy list.
            candidates.append((quality, index, None))
    if not candidates:
        return None
    # Highest quality wins; among equals, the client's own order.
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return candidates[0][2]


def aggregated_content_type(version: str) -> str:
    """The Content-Type client-go's `ContentTypeIsGVK` accepts as an aggregated document."""
    return f"application/json;g={DISCOVERY_GROUP};v={version};as={AGGREGATED_KIND}"
