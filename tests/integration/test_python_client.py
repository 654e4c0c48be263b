"""The official `kubernetes` Python client against a real `pinnace server`.

Everything goes through the client's generated API classes and `watch.Watch`, so the requests are
exactly what the client sends (dict bodies without kind/apiVersion, strategic merge patch for
dict patches, DELETE with no body, `?watch=true&timeoutSeconds=`), and the responses must
deserialize into the client's models.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes import watch
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import ServerProcess, start_server

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)


def new_client(kubeconfig: Path) -> ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="module")
def api(bare_server: ServerProcess) -> Iterator[ApiClient]:
    # The API server alone: these tests pin resourceVersions that controllers would move.
    client = new_client(bare_server.kubeconfig)
    yield client
    client.close()


@pytest.fixture
def core(api: ApiClient) -> CoreV1Api:
    return CoreV1Api(api)


@pytest.fixture
def apps(api: ApiClient) -> AppsV1Api:
    return AppsV1Api(api)


@pytest.fixture
def ns(core: CoreV1Api) -> str:
    """A fresh namespace per test, so tests never see each other's objects."""
    name = f"py-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    # Like the client's own e2e tests: a plain dict, and deliberately without kind/apiVersion.
    return {"metadata": {"name": name, "labels": labels or {}}, "data": dict(data)}


def status_body(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert isinstance(body, dict)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def collect(
    w: watch.Watch, func: Any, *args: Any, count: int | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Events of one watch request: `count` of them and then stop, or until the server ends the
    request after `timeout_seconds` (which must then be given, so nothing hangs)."""
    events: list[dict[str, Any]] = []
    for event in w.stream(func, *args, **kwargs):
        if event["type"] == "BOOKMARK":
            continue
        events.append(event)
        if count is not None and len(events) == count:
            w.stop()
    return events


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"].metadata.name) for e in events]


# ---------------------------------------------------------------------------------------------
# CRUD on several types


def test_configmap_crud_without_kind_and_api_version(core: CoreV1Api, ns: str) -> None:
    created = core.create_namespaced_config_map(ns, configmap("conf", a="1"))
    assert created.kind == "ConfigMap" and created.api_version == "v1"
    assert created.metadata.namespace == ns and created.metadata.uid
    assert created.metadata.resource_version.isdigit()
    assert created.data == {"a": "1"}

    got = core.read_namespaced_config_map("conf", ns)
    assert got.metadata.uid == created.metadata.uid
    assert got.metadata.resource_version == created.metadata.resource_version

    got.data["b"] = "2"
    replaced = core.replace_namespaced_config_map("conf", ns, got)
    assert replaced.data == {"a": "1", "b": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    patched = core.patch_namespaced_config_map("conf", ns, {"data": {"a": "10"}})
    assert patched.data == {"a": "10", "b": "2"}

    # The client sends DELETE with no body and no Content-Type.
    core.delete_namespaced_config_map("conf", ns)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("conf", ns)
    assert err.value.status == 404
    body = status_body(err.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'configmaps "conf" not found'


def test_create_existing_name_is_already_exists(core: CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(ns, configmap("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, configmap("dup"))
    assert err.value.status == 409
    body = status_body(err.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "dup" already exists'
    assert body["details"] == {"name": "dup", "kind": "configmaps"}


def test_secret_crud_round_trips_base64_data(core: CoreV1Api, ns: str) -> None:
    secret = {
        "metadata": {"name": "creds"},
        "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"user": "admin"},
    }
    created = core.create_namespaced_secret(ns, secret)
    # stringData is write-only: merged into data (base64) and never stored itself.
    assert created.data == {"password": "aHVudGVyMg==", "user": "YWRtaW4="}
    assert created.string_data is None
    got = core.read_namespaced_secret("creds", ns)
    assert got.data == created.data and got.type == "Opaque"

    listed = core.list_namespaced_secret(ns, field_selector="type=Opaque")
    assert [s.metadata.name for s in listed.items] == ["creds"]

    core.delete_namespaced_secret("creds", ns)
    assert core.list_namespaced_secret(ns).items == []


def service(name: str, node_port: int | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "targetPort": 8080}
    if node_port is not None:
        port["nodePort"] = node_port
    return {
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [port]},
    }


def test_services_get_unique_cluster_ips_and_node_ports(core: CoreV1Api, ns: str) -> None:
    names = [f"svc-{i}" for i in range(30)]
    # Concurrent creates: allocation must not hand the same IP or port to two services.
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(lambda n: core.create_namespaced_service(ns, service(n)), names))

    ips = [s.spec.cluster_ip for s in created]
    ports = [s.spec.ports[0].node_port for s in created]
    assert all(ipaddress.ip_address(ip) in SERVICE_CIDR for ip in ips)
    assert all(p in NODE_PORTS for p in ports)
    assert len(set(ips)) == len(ips)
    assert len(set(ports)) == len(ports)
    for svc in created:
        assert svc.spec.cluster_ips == [svc.spec.cluster_ip]
        assert svc.spec.ports[0].protocol == "TCP"

    # What was stored is what was returned, and nothing collides with other namespaces' services.
    everything = core.list_service_for_all_namespaces().items
    stored = {(s.metadata.namespace, s.metadata.name): s for s in everything}
    for svc in created:
        assert stored[(ns, svc.metadata.name)].spec.cluster_ip == svc.spec.cluster_ip
    all_ips = [s.spec.cluster_ip for s in everything if s.spec.cluster_ip not in (None, "None")]
    assert len(set(all_ips)) == len(all_ips)
    all_ports = [p.node_port for s in everything for p in (s.spec.ports or []) if p.node_port]
    assert len(set(all_ports)) == len(all_ports)

    # A port that is taken cannot be requested explicitly.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_service(ns, service("taken", node_port=ports[0]))
    assert err.value.status == 422
    body = status_body(err.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    assert "provided port is already allocated" in body["message"]
    assert "taken" not in {s.metadata.name for s in core.list_namespaced_service(ns).items}


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.25"},
                        {"name": "sidecar", "image": "busybox:1.36"},
                    ]
                },
            },
        },
    }


def test_deployment_strategic_patch_and_stale_replace(apps: AppsV1Api, ns: str) -> None:
    created = apps.create_namespaced_deployment(ns, deployment("web"))
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.revision_history_limit == 10

    # A dict body goes out as application/strategic-merge-patch+json: containers merge by name.
    patched = apps.patch_namespaced_deployment(
        "web",
        ns,
        {
            "metadata": {"labels": {"tier": "front"}},
            "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.37"}]}}},
        },
    )
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"web": "nginx:1.25", "sidecar": "busybox:1.37"}
    assert patched.metadata.labels == {"app": "web", "tier": "front"}
    assert patched.metadata.generation == 2

    # A list body goes out as JSON patch.
    scaled = apps.patch_namespaced_deployment(
        "web", ns, [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    )
    assert scaled.spec.replicas == 3 and scaled.metadata.generation == 3

    stale = created
    stale.spec.replicas = 5
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("web", ns, stale)
    assert err.value.status == 409
    body = status_body(err.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    current = apps.read_namespaced_deployment("web", ns)
    assert current.spec.replicas == 3
    assert current.metadata.resource_version == scaled.metadata.resource_version

    # The same replace built from the current object succeeds.
    current.spec.replicas = 5
    replaced = apps.replace_namespaced_deployment("web", ns, current)
    assert replaced.spec.replicas == 5

    apps.delete_namespaced_deployment("web", ns)
    assert apps.list_namespaced_deployment(ns).items == []


def test_dry_run_all_persists_nothing(core: CoreV1Api, ns: str) -> None:
    before = core.list_namespaced_config_map(ns).metadata.resource_version

    preview = core.create_namespaced_config_map(ns, configmap("dry", a="1"), dry_run="All")
    assert preview.metadata.name == "dry" and preview.data == {"a": "1"}
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("dry", ns)
    assert err.value.status == 404

    real = core.create_namespaced_config_map(ns, configmap("real", a="1"))
    rv = real.metadata.resource_version
    out = core.patch_namespaced_config_map("real", ns, {"data": {"a": "2"}}, dry_run="All")
    assert out.data == {"a": "2"}
    real.data = {"a": "3"}
    out = core.replace_namespaced_config_map("real", ns, real, dry_run="All")
    assert out.data == {"a": "3"}
    core.delete_namespaced_config_map("real", ns, dry_run="All")
    stored = core.read_namespaced_config_map("real", ns)
    assert stored.data == {"a": "1"} and stored.metadata.resource_version == rv

    # Nothing but the one real create happened in this namespace since `before`.
    w = watch.Watch()
    events = collect(w, core.list_namespaced_config_map, ns, resource_version=before, timeout_seconds=1)
    assert summary(events) == [("ADDED", "real")]


# ---------------------------------------------------------------------------------------------
# Watch


def test_watch_resumes_from_last_resource_version(core: CoreV1Api, ns: str) -> None:
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("one", a="1"))
    core.patch_namespaced_config_map("one", ns, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("one", ns)

    w = watch.Watch()
    first = collect(w, core.list_namespaced_config_map, ns, resource_version=rv, count=3, timeout_seconds=10)
    assert summary(first) == [("ADDED", "one"), ("MODIFIED", "one"), ("DELETED", "one")]
    assert first[1]["object"].data == {"a": "2"}
    rvs = [int(e["object"].metadata.resource_version) for e in first]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    last = first[-1]["object"].metadata.resource_version
    assert w.resource_version == last

    # Changes made while nobody watches...
    core.create_namespaced_config_map(ns, configmap("two", a="1"))
    core.patch_namespaced_config_map("two", ns, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("two", ns)

    # ...are replayed exactly, from where the first stream stopped.
    w = watch.Watch()
    later = collect(w, core.list_namespaced_config_map, ns, resource_version=last, timeout_seconds=1)
    assert summary(later) == [("ADDED", "two"), ("MODIFIED", "two"), ("DELETED", "two")]
    later_rvs = [int(e["object"].metadata.resource_version) for e in later]
    assert later_rvs == sorted(later_rvs) and later_rvs[0] > int(last)


def test_watch_from_list_rv_sees_create_patch_delete_collection(core: CoreV1Api, ns: str) -> None:
    """The client's own e2e `test_watch_configmaps`, in a namespace of its own."""
    core.create_namespaced_config_map(ns, configmap("cm-a", key="a", config="dummy"))
    rv = core.list_namespaced_config_map(ns).metadata.resource_version

    body_b = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm-b"},
        "data": {"key": "b", "config": "dummy"},
    }
    core.create_namespaced_config_map(ns, body_b)
    body_b["data"]["config"] = "{}"
    core.patch_namespaced_config_map("cm-b", ns, body_b)
    core.delete_collection_namespaced_config_map(ns)

    w = watch.Watch()
    events = collect(w, core.list_namespaced_config_map, namespace=ns, resource_version=rv, timeout_seconds=2)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED", "DELETED"]
    assert [e["object"].metadata.name for e in events[:2]] == ["cm-b", "cm-b"]
    assert {e["object"].metadata.name for e in events[2:]} == {"cm-a", "cm-b"}
    assert core.list_namespaced_config_map(ns).items == []


def test_watch_and_list_filter_by_label_and_field_selectors(core: CoreV1Api, ns: str) -> None:
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, configmap("front", {"app": "shop", "tier": "front"}))
    core.create_namespaced_config_map(ns, configmap("db", {"app": "shop", "tier": "db"}))
    core.create_namespaced_config_map(ns, configmap("other", {"app": "blog"}))

    def names(**selectors: str) -> list[str]:
        return sorted(cm.metadata.name for cm in core.list_namespaced_config_map(ns, **selectors).items)

    assert names(label_selector="app=shop") == ["db", "front"]
    assert names(label_selector="app=shop,tier!=db") == ["front"]
    assert names(label_selector="tier in (db, cache)") == ["db"]
    assert names(label_selector="!tier") == ["other"]
    assert names(label_selector="tier") == ["db", "front"]
    assert names(field_selector="metadata.name=db") == ["db"]
    assert names(field_selector="metadata.name!=db") == ["front", "other"]
    assert names(label_selector="app=shop", field_selector="metadata.name!=front") == ["db"]

    w = watch.Watch()
    shop = collect(
        w,
        core.list_namespaced_config_map,
        ns,
        resource_version=rv,
        label_selector="app=shop,tier!=db",
        timeout_seconds=1,
    )
    assert summary(shop) == [("ADDED", "front")]
    w = watch.Watch()
    by_name = collect(
        w,
        core.list_namespaced_config_map,
        ns,
        resource_version=rv,
        field_selector="metadata.name=other",
        timeout_seconds=1,
    )
    assert summary(by_name) == [("ADDED", "other")]

    # An object that stops matching leaves the filtered watch with DELETED (upstream watch cache).
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("front", ns, {"metadata": {"labels": {"app": "gone"}}})
    core.patch_namespaced_config_map("other", ns, {"metadata": {"labels": {"app": "shop"}}})
    w = watch.Watch()
    moved = collect(
        w,
        core.list_namespaced_config_map,
        ns,
        resource_version=rv,
        label_selector="app=shop",
        timeout_seconds=1,
    )
    assert summary(moved) == [("DELETED", "front"), ("ADDED", "other")]


# ---------------------------------------------------------------------------------------------
# Pagination


def test_pagination_lists_every_object_once(core: CoreV1Api, ns: str) -> None:
    expected = {f"page-{i:02d}" for i in range(25)}
    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(lambda n: core.create_namespaced_config_map(ns, configmap(n)), sorted(expected)))

    seen: list[str] = []
    remaining: list[int | None] = []
    page = core.list_namespaced_config_map(ns, limit=10)
    snapshot_rv = page.metadata.resource_version
    pages = 1
    seen += [cm.metadata.name for cm in page.items]
    remaining.append(page.metadata.remaining_item_count)
    assert len(page.items) == 10 and page.metadata.var_continue

    # Created after the first page: a continued list is a consistent snapshot, so it is not seen.
    core.create_namespaced_config_map(ns, configmap("page-99"))
    while page.metadata.var_continue:
        page = core.list_namespaced_config_map(ns, limit=10, _continue=page.metadata.var_continue)
        pages += 1
        assert page.metadata.resource_version == snapshot_rv
        seen += [cm.metadata.name for cm in page.items]
        remaining.append(page.metadata.remaining_item_count)

    assert pages == 3
    assert remaining == [15, 5, None]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == expected
    assert seen == sorted(seen)  # upstream lists in key order

    everything = core.list_namespaced_config_map(ns)
    assert everything.metadata.var_continue is None
    assert len(everything.items) == 26


# ---------------------------------------------------------------------------------------------
# Compaction: 410 Gone


def test_compacted_revision_is_410_expired(tmp_path: Path) -> None:
    srv = start_server(
        tmp_path / "data",
        "--compaction-interval",
        "0.2",
        "--retain-revisions",
        "1",
        "--retain-seconds",
        "0",
    )
    client = new_client(srv.kubeconfig)
    try:
        core = CoreV1Api(client)
        ns = "default"
        for i in range(12):
            core.create_namespaced_config_map(ns, configmap(f"old-{i}"))
        first = core.list_namespaced_config_map(ns, limit=5)
        old_rv = core.read_namespaced_config_map("old-0", ns).metadata.resource_version
        for i in range(5):
            core.patch_namespaced_config_map(f"old-{i}", ns, {"data": {"v": "2"}})

        # Compaction runs in the background, and may already have passed old-0 during the writes
        # above; wait until it has passed the paginated list's snapshot (newer than old_rv).
        deadline = time.monotonic() + 10
        while True:
            try:
                collect(
                    watch.Watch(),
                    core.list_namespaced_config_map,
                    ns,
                    resource_version=first.metadata.resource_version,
                    timeout_seconds=1,
                )
            except ApiException as exc:
                assert exc.status == 410
                assert exc.reason.startswith("Expired: too old resource version: ")
                break
            assert time.monotonic() < deadline, "no 410 for a revision that should have been compacted"
            time.sleep(0.2)

        # On the wire: HTTP 200 and a single ERROR event carrying the 410 Status, as upstream.
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.ssl_context(), timeout=10)
        conn.request("GET", f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={old_rv}")
        resp = conn.getresponse()
        lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
        conn.close()
        assert resp.status == 200
        assert [e["type"] for e in lines] == ["ERROR"]
        expired = lines[0]["object"]
        assert expired["kind"] == "Status" and expired["apiVersion"] == "v1"
        assert (expired["status"], expired["reason"], expired["code"]) == ("Failure", "Expired", 410)
        assert expired["message"].startswith(f"too old resource version: {old_rv} (")

        # An exact read of a compacted revision is gone as well.
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map(ns, resource_version=old_rv, resource_version_match="Exact")
        assert err.value.status == 410
        assert status_body(err.value)["reason"] == "Expired"

        # A continue token pointing at a compacted snapshot is expired too.
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map(ns, limit=5, _continue=first.metadata.var_continue)
        assert err.value.status == 410
        body = status_body(err.value)
        assert body["reason"] == "Expired"

        # A watch from the current revision still works. This server keeps a single revision and
        # compacts every 0.2 s, so the controllers' own writes (Lease renewals) can compact the
        # listed revision before the watch arrives: then the client relists and tries again, as
        # any client does on a 410.
        for attempt in range(5):
            rv = core.list_namespaced_config_map(ns).metadata.resource_version
            core.create_namespaced_config_map(ns, configmap(f"fresh-{attempt}"))
            try:
                events = collect(
                    watch.Watch(), core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=1
                )
            except ApiException as exc:
                assert exc.status == 410, exc
                continue
            assert summary(events) == [("ADDED", f"fresh-{attempt}")]
            break
        else:
            pytest.fail("every watch from a just-listed revision was already compacted")
    finally:
        client.close()
        assert srv.stop() == 0, srv.log()[-4000:]
