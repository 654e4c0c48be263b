"""OpenAPI v3 documents and the protobuf OpenAPI v2 document, checked the way kubectl reads them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import yaml

from controlplane.api.resources import Registry, ResourceInfo, Subresource, default_registry
from controlplane.apiserver import openapi, openapi_v2

COMPONENTS = "#/components/schemas/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "description": "CronTab spec.",
            "properties": {
                "cronSpec": {"type": "string", "description": "The schedule."},
                "replicas": {"type": "integer", "minimum": 1},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


@pytest.fixture(scope="module")
def shared() -> Registry:
    """Read-only registry shared by the tests that do not change it (documents are big)."""
    return default_registry()


def _crontab(
    schema: dict[str, Any] | None = None, *, kind: str = "CronTab", plural: str = "crontabs"
) -> ResourceInfo:
    return ResourceInfo(
        group="stable.example.com",
        version="v1",
        kind=kind,
        plural=plural,
        namespaced=True,
        subresources=(
            Subresource("status", ("get", "patch", "update")),
            Subresource("scale", ("get", "patch", "update"), kind="Scale", group="autoscaling", version="v1"),
        ),
        status_subresource=True,
        custom=True,
        extra={"openAPIV3Schema": schema if schema is not None else CRONTAB_SCHEMA},
    )


def _doc(registry: Registry, group: str, version: str) -> dict[str, Any]:
    doc = openapi.v3_group_version(registry, group, version)
    assert doc is not None
    return doc


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in ("get", "put", "post", "delete", "patch"):
            if method in item:
                yield path, method, item[method]


def _supports_field_validation(doc: dict[str, Any], group: str, version: str, kind: str) -> bool:
    """kubectl's QueryParamVerifierV3: some PATCH tagged with the GVK offers fieldValidation in query."""
    for _, method, op in _operations(doc):
        if method != "patch":
            continue
        if op.get("x-kubernetes-group-version-kind") != {"group": group, "version": version, "kind": kind}:
            continue
        if any(
            p.get("name") == "fieldValidation" and p.get("in") == "query" for p in op.get("parameters", [])
        ):
            return True
    return False


def test_root_lists_every_group_version_with_its_hash(shared: Registry) -> None:
    root = openapi.v3_root(shared)
    expected = {
        (f"apis/{g}/{v}" if g else f"api/{v}")
        for g, versions in shared.group_versions().items()
        for v in versions
    }
    assert set(root["paths"]) == expected
    for key, entry in root["paths"].items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{key}?hash=")
        digest = url.rpartition("=")[2]
        assert re.fullmatch(r"[0-9A-F]{128}", digest)
        parts = key.split("/")
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        encoded = openapi.v3_group_version_bytes(shared, group, version)
        assert encoded is not None
        body, body_hash = encoded
        assert body_hash == digest
        assert orjson.loads(body) == openapi.v3_group_version(shared, group, version)


def test_unknown_group_version_is_none(shared: Registry) -> None:
    assert openapi.v3_group_version(shared, "apps", "v1beta1") is None
    assert openapi.v3_group_version_bytes(shared, "nope.example.com", "v1") is None


def test_apps_v1_has_real_schemas(shared: Registry) -> None:
    doc = _doc(shared, "apps", "v1")
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"] == "Kubernetes"
    components = doc["components"]["schemas"]
    strategy = components["io.k8s.api.apps.v1.DeploymentStrategy"]
    assert strategy["type"] == "object"
    assert strategy["properties"]["type"]["type"] == "string"
    assert "Recreate" in strategy["properties"]["type"]["description"]
    # A $ref beside a description is wrapped in allOf, as upstream publishes it.
    rolling = strategy["properties"]["rollingUpdate"]
    assert rolling["allOf"] == [{"$ref": COMPONENTS + "io.k8s.api.apps.v1.RollingUpdateDeployment"}]
    assert rolling["description"]
    deployment = components["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    assert deployment["properties"]["apiVersion"] == {
        "description": deployment["properties"]["apiVersion"]["description"],
        "type": "string",
    }
    assert components["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"][0]["kind"] == (
        "DeploymentList"
    )
    # Transitive closure reaches deep into the pod template.
    assert "io.k8s.api.core.v1.PodSpec" in components
    assert "io.k8s.api.core.v1.Container" in components
    assert components["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    }
    # The scale subresource answers with autoscaling/v1 Scale, which must be documented too.
    assert "io.k8s.api.autoscaling.v1.Scale" in components
    # Every kind served in the group-version is present and tagged.
    tagged = {
        (g["group"], g["version"], g["kind"])
        for schema in components.values()
        for g in schema.get("x-kubernetes-group-version-kind", [])
    }
    for info in shared.in_group_version("apps", "v1"):
        assert (info.group, info.version, info.kind) in tagged


def test_core_v1_keeps_merge_extensions(shared: Registry) -> None:
    components = _doc(shared, "", "v1")["components"]["schemas"]
    containers = components["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    assert containers["items"] == {"$ref": COMPONENTS + "io.k8s.api.core.v1.Container"}
    time = components["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]
    assert time["type"] == "string" and time["format"] == "date-time"


@pytest.mark.parametrize(
    ("group", "version"), [("", "v1"), ("apps", "v1"), ("rbac.authorization.k8s.io", "v1")]
)
def test_documents_are_openapi3_clean(shared: Registry, group: str, version: str) -> None:
    doc = _doc(shared, group, version)
    components = doc["components"]["schemas"]
    for key, value in _walk(doc):
        if key == "$ref":
            assert value.startswith(COMPONENTS), value
            assert value.removeprefix(COMPONENTS) in components, value
        # (a dict under "type" is a property named "type", not a type)
        if key == "type" and not isinstance(value, dict):
            assert isinstance(value, str), value
            assert value != "null"


def test_every_patch_operation_advertises_field_validation(shared: Registry) -> None:
    for group, versions in shared.group_versions().items():
        for version in versions:
            doc = _doc(shared, group, version)
            patches = [(p, op) for p, m, op in _operations(doc) if m == "patch"]
            # Groups of create-only reviews (authentication.k8s.io) have nothing to patch.
            patchable = any("patch" in info.verbs for info in shared.in_group_version(group, version))
            assert bool(patches) == patchable, (group, version)
            for path, op in patches:
                gvk = op["x-kubernetes-group-version-kind"]
                assert set(gvk) == {"group", "version", "kind"}, path
                names = {(p["name"], p["in"]) for p in op["parameters"]}
                assert ("fieldValidation", "query") in names, path
                content = op["requestBody"]["content"]
                for media in (
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                    "application/apply-patch+yaml",
                ):
                    assert media in content, (path, media)
            for info in shared.in_group_version(group, version):
                if "patch" not in info.verbs:
                    continue
                assert _supports_field_validation(doc, info.group, info.version, info.kind), info.kind


def test_paths_and_operation_ids_follow_upstream(shared: Registry) -> None:
    core = _doc(shared, "", "v1")["paths"]
    pods = core["/api/v1/namespaces/{namespace}/pods/{name}"]
    assert pods["patch"]["operationId"] == "patchCoreV1NamespacedPod"
    assert pods["get"]["operationId"] == "readCoreV1NamespacedPod"
    assert pods["put"]["operationId"] == "replaceCoreV1NamespacedPod"
    assert pods["delete"]["operationId"] == "deleteCoreV1NamespacedPod"
    assert {p["name"] for p in pods["parameters"]} == {"name", "namespace", "pretty"}
    collection = core["/api/v1/namespaces/{namespace}/pods"]
    assert collection["get"]["operationId"] == "listCoreV1NamespacedPod"
    assert collection["post"]["operationId"] == "createCoreV1NamespacedPod"
    assert collection["delete"]["operationId"] == "deleteCoreV1CollectionNamespacedPod"
    assert core["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert core["/api/v1/namespaces/{namespace}/pods/{name}/status"]["get"]["operationId"] == (
        "readCoreV1NamespacedPodStatus"
    )
    eviction = core["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    assert eviction["operationId"] == "createCoreV1NamespacedPodEviction"
    assert eviction["x-kubernetes-group-version-kind"] == {
        "group": "policy",
        "version": "v1",
        "kind": "Eviction",
    }
    log = core["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]
    assert "text/plain" in log["responses"]["200"]["content"]
    assert (
        core["/api/v1/namespaces/{name}/finalize"]["put"]["operationId"] == "replaceCoreV1NamespaceFinalize"
    )
    # Cluster-scoped resources have no namespace segment and no ForAllNamespaces list.
    assert core["/api/v1/nodes/{name}"]["patch"]["operationId"] == "patchCoreV1Node"

    apps = _doc(shared, "apps", "v1")["paths"]
    scale = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["operationId"] == "patchAppsV1NamespacedDeploymentScale"
    assert scale["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "version": "v1",
        "kind": "Scale",
    }
    assert scale["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": COMPONENTS + "io.k8s.api.autoscaling.v1.Scale"
    }
    rbac = _doc(shared, "rbac.authorization.k8s.io", "v1")["paths"]
    assert rbac["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["patch"]["operationId"] == (
        "patchRbacAuthorizationV1ClusterRole"
    )


def test_documents_are_cached_until_the_registry_changes() -> None:
    registry = default_registry()
    first = openapi.v3_group_version(registry, "apps", "v1")
    assert openapi.v3_group_version(registry, "apps", "v1") is first
    first_bytes = openapi.v3_group_version_bytes(registry, "apps", "v1")
    registry.add(_crontab())
    rebuilt = openapi.v3_group_version(registry, "apps", "v1")
    assert rebuilt is first  # documents are cached per group-version; this change touched another
    # Unrelated changes rebuild but do not change the content or the hash (kubectl caches by URL).
    assert openapi.v3_group_version_bytes(registry, "apps", "v1") == first_bytes


def test_custom_resource_document() -> None:
    registry = default_registry()
    registry.add(_crontab())
    root = openapi.v3_root(registry)
    assert "apis/stable.example.com/v1" in root["paths"]
    doc = _doc(registry, "stable.example.com", "v1")
    components = doc["components"]["schemas"]
    crontab = components["com.example.stable.v1.CronTab"]
    assert crontab["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}
    ]
    assert crontab["properties"]["spec"]["properties"]["cronSpec"]["description"] == "The schedule."
    assert crontab["properties"]["metadata"]["allOf"] == [{"$ref": COMPONENTS + OBJECT_META}]
    assert crontab["properties"]["apiVersion"]["type"] == "string"
    assert OBJECT_META in components
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry" in components
    assert components["com.example.stable.v1.CronTabList"]["properties"]["items"]["items"] == {
        "$ref": COMPONENTS + "com.example.stable.v1.CronTab"
    }
    assert "io.k8s.api.autoscaling.v1.Scale" in components
    # The CRD's own schema object is not modified by building the document.
    assert "metadata" not in CRONTAB_SCHEMA["properties"]

    item = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
    patch = item["patch"]
    assert patch["operationId"] == "patchStableExampleComV1NamespacedCronTab"
    # No strategic merge patch for custom resources.
    assert set(patch["requestBody"]["content"]) == {
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    }
    assert _supports_field_validation(doc, "stable.example.com", "v1", "CronTab")
    for key, value in _walk(doc):
        if key == "$ref":
            assert value.removeprefix(COMPONENTS) in components


def test_custom_resource_without_schema_preserves_unknown_fields() -> None:
    registry = default_registry()
    registry.add(
        ResourceInfo(
            group="kopf.dev",
            version="v1",
            kind="KopfExample",
            plural="kopfexamples",
            namespaced=True,
            custom=True,
        )
    )
    doc = _doc(registry, "kopf.dev", "v1")
    schema = doc["components"]["schemas"]["dev.kopf.v1.KopfExample"]
    assert schema["x-kubernetes-preserve-unknown-fields"] is True
    assert schema["type"] == "object"


def test_hash_changes_when_group_version_content_changes() -> None:
    registry = default_registry()
    registry.add(_crontab())
    before = openapi.v3_root(registry)["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
    apps_before = openapi.v3_root(registry)["paths"]["apis/apps/v1"]
    # A second custom kind in the same group-version.
    registry.add(_crontab(kind="CronJobX", plural="cronjobxs"))
    added = openapi.v3_root(registry)["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
    assert added != before
    # A CRD schema update (same resource, new schema).
    updated_schema = {**CRONTAB_SCHEMA, "description": "now documented"}
    registry.add(_crontab(updated_schema))
    updated = openapi.v3_root(registry)["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"]
    assert updated not in (before, added)
    assert openapi.v3_root(registry)["paths"]["apis/apps/v1"] == apps_before


def test_operation_prefix() -> None:
    assert openapi.operation_prefix("", "v1") == "CoreV1"
    assert openapi.operation_prefix("apps", "v1") == "AppsV1"
    assert (
        openapi.operation_prefix("flowcontrol.apiserver.k8s.io", "v1beta3") == "FlowcontrolApiserverV1beta3"
    )
    assert openapi.operation_prefix("cert-manager.io", "v1") == "CertManagerIoV1"


# -- OpenAPI v2 protobuf -------------------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> dict[int, list[bytes]]:
    """A minimal protobuf wire-format reader: field number -> length-delimited payloads."""
    out: dict[int, list[bytes]] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, pos = _read_varint(data, pos)
            continue
        assert wire_type == 2, f"unexpected wire type {wire_type}"
        length, pos = _read_varint(data, pos)
        out.setdefault(number, []).append(data[pos : pos + length])
        pos += length
    assert pos == len(data)
    return out


def _one(message: bytes, number: int) -> bytes:
    values = _fields(message).get(number, [])
    assert len(values) == 1, (number, values)
    return values[0]


def _decode_v2(data: bytes) -> dict[str, Any]:
    doc = _fields(data)
    info = _one(data, 2)
    paths: dict[str, dict[str, Any]] = {}
    for named in _fields(_one(data, 8)).get(2, []):
        name = _one(named, 1).decode()
        patch = _one(_one(named, 2), 8)
        params = []
        for item in _fields(patch).get(8, []):
            query = _one(_one(_one(item, 1), 2), 3)
            params.append(
                {
                    "in": _one(query, 2).decode(),
                    "name": _one(query, 4).decode(),
                    "type": _one(query, 6).decode(),
                }
            )
        extensions = {}
        for ext in _fields(patch).get(13, []):
            extensions[_one(ext, 1).decode()] = _one(_one(ext, 2), 2).decode()
        paths[name] = {"operationId": _one(patch, 5).decode(), "parameters": params, "extensions": extensions}
    return {
        "swagger": doc[1][0].decode(),
        "title": _one(info, 1).decode(),
        "version": _one(info, 2).decode(),
        "paths": paths,
    }


def test_v2_content_type() -> None:
    assert openapi_v2.OPENAPI_V2_CONTENT_TYPE == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def test_v2_document_decodes(shared: Registry) -> None:
    decoded = _decode_v2(openapi_v2.document(shared))
    by_path = {}
    for info in shared:
        if "patch" not in info.verbs:
            continue  # create-only reviews: no PATCH to describe
        base = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
        ns = "/namespaces/{namespace}" if info.namespaced else ""
        by_path[f"{base}{ns}/{info.plural}/{{name}}"] = info
    assert set(decoded["paths"]) == set(by_path)
    assert decoded["swagger"] == "2.0"
    assert decoded["title"] == "Kubernetes"

    configmaps = decoded["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]
    assert configmaps["operationId"] == "patchCoreV1NamespacedConfigMap"
    assert configmaps["parameters"] == [{"in": "query", "name": "fieldValidation", "type": "string"}]
    assert configmaps["extensions"] == {
        "x-kubernetes-group-version-kind": 'group: ""\nkind: ConfigMap\nversion: v1\n'
    }
    for path, op in decoded["paths"].items():
        gvk = yaml.safe_load(op["extensions"]["x-kubernetes-group-version-kind"])
        info = by_path[path]
        assert gvk == {"group": info.group, "kind": info.kind, "version": info.version}
    nodes = decoded["paths"]["/api/v1/nodes/{name}"]
    assert nodes["operationId"] == "patchCoreV1Node"
    assert yaml.safe_load(
        decoded["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["extensions"][
            "x-kubernetes-group-version-kind"
        ]
    ) == {"group": "apps", "kind": "Deployment", "version": "v1"}


def test_v2_document_cached_and_follows_registry() -> None:
    registry = default_registry()
    first = openapi_v2.document(registry)
    assert openapi_v2.document(registry) is first
    registry.add(_crontab())
    second = openapi_v2.document(registry)
    assert second != first
    op = _decode_v2(second)["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
    assert op["operationId"] == "patchStableExampleComV1NamespacedCronTab"
    assert yaml.safe_load(op["extensions"]["x-kubernetes-group-version-kind"]) == {
        "group": "stable.example.com",
        "kind": "CronTab",
        "version": "v1",
    }


@pytest.mark.parametrize(
    ("group", "version", "kind", "text"),
    [
        ("", "v1", "Pod", 'group: ""\nkind: Pod\nversion: v1\n'),
        ("apps", "v1", "Deployment", "group: apps\nkind: Deployment\nversion: v1\n"),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "group: rbac.authorization.k8s.io\nkind: Role\nversion: v1\n",
        ),
    ],
)
def test_gvk_yaml(group: str, version: str, kind: str, text: str) -> None:
    assert openapi_v2.gvk_yaml(group, version, kind) == text
    assert yaml.safe_load(text) == {"group": group, "kind": kind, "version": version}


def test_v2_long_payloads_use_multibyte_lengths(shared: Registry) -> None:
    # The paths message is far longer than 127 bytes, so its length is a multi-byte varint;
    # decoding the whole document exactly (no trailing bytes) proves the encoding.
    data = openapi_v2.document(shared)
    paths = _fields(data)[8][0]
    assert len(paths) > 127
    assert len(_fields(paths)[2]) == len([i for i in shared if "patch" in i.verbs])
