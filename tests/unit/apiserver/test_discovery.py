"""Discovery documents: legacy shapes, aggregated shapes, and Accept negotiation as kubectl sends it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.api.resources import Registry, ResourceInfo, Subresource, default_registry
from controlplane.apiserver import discovery
from controlplane.apiserver.discovery import api_resource_list

# Accept headers copied from kubectl requests (client-compat.md 1.1).
ACCEPT_KUBECTL_127 = (
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
ACCEPT_KUBECTL_133 = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


@pytest.fixture
def registry() -> Registry:
    return default_registry()


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in doc["resources"]}


def _crontab(**extra: Any) -> ResourceInfo:
    return ResourceInfo(
        group="stable.example.com",
        version="v1",
        kind="CronTab",
        plural="crontabs",
        namespaced=True,
        short_names=("ct",),
        subresources=(Subresource("status", ("get", "patch", "update")),),
        custom=True,
        extra=dict(extra),
    )


def test_api_versions() -> None:
    doc = discovery.api_versions("10.0.0.1:6443")
    assert doc == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}],
    }


def test_api_group_list_has_every_non_core_group(registry: Registry) -> None:
    doc = discovery.api_group_list(registry)
    assert doc["kind"] == "APIGroupList"
    assert doc["apiVersion"] == "v1"
    names = [g["name"] for g in doc["groups"]]
    assert set(names) == {g for g in registry.group_versions() if g}
    apps = next(g for g in doc["groups"] if g["name"] == "apps")
    assert apps["versions"] == [{"groupVersion": "apps/v1", "version": "v1"}]
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}


def test_api_group(registry: Registry) -> None:
    doc = discovery.api_group(registry, "batch")
    assert doc is not None
    assert doc["kind"] == "APIGroup"
    assert doc["name"] == "batch"
    assert doc["preferredVersion"]["groupVersion"] == "batch/v1"
    assert discovery.api_group(registry, "nonexistent.example.com") is None
    assert discovery.api_group(registry, "") is None


def test_core_resource_list(registry: Registry) -> None:
    doc = discovery.api_resource_list(registry, "", "v1")
    assert doc is not None
    assert doc["kind"] == "APIResourceList"
    assert doc["groupVersion"] == "v1"
    res = _by_name(doc)
    pods = res["pods"]
    assert pods["singularName"] == "pod"
    assert pods["namespaced"] is True
    assert pods["kind"] == "Pod"
    assert pods["shortNames"] == ["po"]
    assert pods["categories"] == ["all"]
    assert set(pods["verbs"]) == {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }
    # The value a real 1.x apiserver publishes for pods.
    assert pods["storageVersionHash"] == "xPOwRZ+Yhw8="

    status = res["pods/status"]
    assert status["kind"] == "Pod"
    assert status["verbs"] == ["get", "patch", "update"]
    assert "group" not in status and "version" not in status
    assert status["namespaced"] is True

    eviction = res["pods/eviction"]
    assert (eviction["group"], eviction["version"], eviction["kind"]) == ("policy", "v1", "Eviction")
    assert eviction["verbs"] == ["create"]
    assert res["pods/binding"]["kind"] == "Binding"
    assert res["pods/log"]["kind"] == "Pod"
    assert res["pods/log"]["verbs"] == ["get"]

    assert res["namespaces"]["namespaced"] is False
    assert res["namespaces/finalize"]["kind"] == "Namespace"
    assert res["configmaps"]["storageVersionHash"] == "qFsyl6wFWjQ="
    assert "shortNames" not in res["secrets"]


def test_apps_resource_list_scale(registry: Registry) -> None:
    doc = discovery.api_resource_list(registry, "apps", "v1")
    assert doc is not None
    assert doc["groupVersion"] == "apps/v1"
    res = _by_name(doc)
    scale = res["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert scale["verbs"] == ["get", "patch", "update"]
    assert res["deployments"]["storageVersionHash"] == "8aSe+NMegvE="
    assert res["deployments/status"]["kind"] == "Deployment"


def test_unknown_group_version(registry: Registry) -> None:
    assert discovery.api_resource_list(registry, "apps", "v1beta1") is None
    assert discovery.api_resource_list(registry, "nope", "v1") is None


def test_storage_version_hash_matches_upstream_algorithm() -> None:
    assert discovery.storage_version_hash("", "v1", "Pod") == "xPOwRZ+Yhw8="
    assert discovery.storage_version_hash("apps", "v1", "Deployment") == "8aSe+NMegvE="
    # Distinct kinds, distinct hashes; the value is 8 bytes in standard base64.
    assert discovery.storage_version_hash("", "v1", "Node") != discovery.storage_version_hash("", "v1", "Pod")
    assert len(discovery.storage_version_hash("x", "v1", "Y")) == 12


def test_events_k8s_io_hashes_the_core_storage_it_shares(registry: Registry) -> None:
    # events.k8s.io/v1 Events are stored as core/v1 Events, so both groups report one hash.
    core = api_resource_list(registry, "", "v1")
    new = api_resource_list(registry, "events.k8s.io", "v1")
    assert core is not None and new is not None
    core_hash = _by_name(core)["events"]["storageVersionHash"]
    assert core_hash == discovery.storage_version_hash("", "v1", "Event")
    assert _by_name(new)["events"]["storageVersionHash"] == core_hash


def _split_like_client_go(doc: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """client-go's SplitGroupsAndResources: aggregated -> per-group-version APIResource tuples.
    Errors on exactly what client-go rejects (a missing responseKind)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for group in doc["items"]:
        name = group["metadata"].get("name", "")
        for version in group["versions"]:
            assert version["freshness"] != "Stale"
            gv = f"{name}/{version['version']}" if name else version["version"]
            rows = out.setdefault(gv, [])
            for r in version["resources"]:
                kind = r["responseKind"]
                assert kind and kind["kind"], f"{r['resource']} missing GVK"
                namespaced = r["scope"] == "Namespaced"
                rows.append(
                    (
                        r["resource"],
                        namespaced,
                        kind["group"],
                        kind["version"],
                        kind["kind"],
                        tuple(r["verbs"]),
                    )
                )
                for sub in r.get("subresources", []):
                    sk = sub["responseKind"]
                    assert sk and sk["kind"]
                    rows.append(
                        (
                            f"{r['resource']}/{sub['subresource']}",
                            namespaced,
                            sk["group"],
                            sk["version"],
                            sk["kind"],
                            tuple(sub["verbs"]),
                        )
                    )
    return out


def _legacy_rows(registry: Registry, group: str, version: str) -> list[tuple[Any, ...]]:
    doc = discovery.api_resource_list(registry, group, version)
    assert doc is not None
    return [
        (
            r["name"],
            r["namespaced"],
            r.get("group", group),
            r.get("version", version),
            r["kind"],
            tuple(r["verbs"]),
        )
        for r in doc["resources"]
    ]


@pytest.mark.parametrize("version", ["v2", "v2beta1"])
def test_aggregated_matches_legacy(registry: Registry, version: str) -> None:
    core = discovery.aggregated(registry, core=True, version=version)
    apis = discovery.aggregated(registry, core=False, version=version)
    for doc in (core, apis):
        assert doc["kind"] == "APIGroupDiscoveryList"
        assert doc["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    assert len(core["items"]) == 1
    assert "name" not in core["items"][0]["metadata"]
    assert {item["metadata"]["name"] for item in apis["items"]} == {g for g in registry.group_versions() if g}

    split = _split_like_client_go(core) | _split_like_client_go(apis)
    expected_gvs = {f"{g}/{v}" if g else v for g, vs in registry.group_versions().items() for v in vs}
    assert set(split) == expected_gvs
    for gv in expected_gvs:
        group, _, version_name = gv.rpartition("/")
        assert split[gv] == _legacy_rows(registry, group, version_name)


def test_aggregated_resource_fields(registry: Registry) -> None:
    doc = discovery.aggregated(registry, core=False, version="v2")
    apps = next(item for item in doc["items"] if item["metadata"]["name"] == "apps")
    deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deployments["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deployments["scope"] == "Namespaced"
    assert deployments["singularResource"] == "deployment"
    assert deployments["shortNames"] == ["deploy"]
    assert deployments["categories"] == ["all"]
    subs = {s["subresource"]: s for s in deployments["subresources"]}
    assert subs["scale"]["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert subs["status"]["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    rbac = next(item for item in doc["items"] if item["metadata"]["name"] == "rbac.authorization.k8s.io")
    cluster_roles = next(r for r in rbac["versions"][0]["resources"] if r["resource"] == "clusterroles")
    assert cluster_roles["scope"] == "Cluster"


def test_aggregated_rejects_unknown_version(registry: Registry) -> None:
    with pytest.raises(ValueError, match="v3"):
        discovery.aggregated(registry, core=True, version="v3")


def test_custom_resource_appears_everywhere(registry: Registry) -> None:
    registry.add(_crontab())
    groups = [g["name"] for g in discovery.api_group_list(registry)["groups"]]
    assert "stable.example.com" in groups
    doc = discovery.api_resource_list(registry, "stable.example.com", "v1")
    assert doc is not None
    res = _by_name(doc)
    assert res["crontabs"]["kind"] == "CronTab"
    assert res["crontabs"]["shortNames"] == ["ct"]
    # kopf patches /status only when discovery lists it.
    assert res["crontabs/status"]["kind"] == "CronTab"
    agg = discovery.aggregated(registry, core=False, version="v2")
    assert "stable.example.com" in {item["metadata"]["name"] for item in agg["items"]}


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (ACCEPT_KUBECTL_127, "v2beta1"),
        (ACCEPT_KUBECTL_133, "v2"),
        ("application/json", None),
        ("application/json, */*", None),
        ("*/*", None),
        ("", None),
        ("application/vnd.kubernetes.protobuf,application/json", None),
        # Parameter order does not matter, whitespace is tolerated.
        ("application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io", "v2"),
        # Quality values are honoured.
        ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,application/json", None),
        (
            "application/json;q=0.1,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            "v2beta1",
        ),
        # Unknown discovery versions and other kinds are not aggregated discovery.
        ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", None),
        ("application/json;g=apidiscovery.k8s.io;v=v2;as=Table", None),
    ],
)
def test_negotiate_aggregated(accept: str, expected: str | None) -> None:
    assert discovery.negotiate_aggregated(accept) == expected


def test_aggregated_content_type() -> None:
    assert (
        discovery.aggregated_content_type("v2")
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    assert discovery.aggregated_content_type("v2beta1").endswith(";v=v2beta1;as=APIGroupDiscoveryList")


_AGG = {
    v: f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList" for v in ("v2", "v2beta1")
}


@settings(deadline=None, max_examples=60)
@given(st.lists(st.sampled_from(["v2", "v2beta1", "json", "any", "table"]), min_size=1, max_size=5))
def test_negotiation_follows_client_order(offers: list[str]) -> None:
    media = {
        "json": "application/json",
        "any": "*/*",
        "table": "application/json;as=Table;v=v1;g=meta.k8s.io",
    }
    header = ",".join(_AGG.get(o) or media[o] for o in offers)
    # The first offer the server can satisfy decides; a Table-only request has no acceptable form here.
    first = next((o for o in offers if o != "table"), None)
    expected = first if first in _AGG else None
    assert discovery.negotiate_aggregated(header) == expected
