"""The issue's kubectl scenario, run with real kubectl binaries against a real `pinnace server`.

Every test runs once per binary (kubectl 1.27, kubectl 1.33 and the gcloud `kubectl` dispatcher),
always with client validation on, in namespaces of its own so the runs share the session server
without seeing each other. Each step checks what kubectl printed and, where it changed something,
what the server then holds, read back with the `kubernetes` Python client.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api
from kubernetes.client.rest import ApiException

from tests.integration.conftest import KUBECTL_DIR, ServerProcess, kubectl_binaries, wait_for_root_ca
from tests.integration.kubectl_helpers import (
    KUBECTL_NAMES,
    MANIFESTS,
    Kubectl,
    LineReader,
    binary_label,
    eventually,
    headers,
    parse_table,
    parse_tables,
    row_named,
)

pytestmark = pytest.mark.kubectl

# HumanDuration as kubectl prints it: "7s", "2m5s", "3h4m", "2d3h", "3y45d".
AGE = re.compile(r"^\d+[smhdy](\d+[smhd])?$")


@pytest.fixture(params=KUBECTL_NAMES)
def kubectl(request: pytest.FixtureRequest, kube_env: dict[str, str]) -> Kubectl:
    wanted = request.param
    for path in kubectl_binaries():
        if Path(path).name == wanted:
            return Kubectl(path, kube_env)
    pytest.skip(f"{wanted} is not installed (looked in {KUBECTL_DIR} and on PATH)")


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def core(api: ApiClient) -> CoreV1Api:
    return CoreV1Api(api)


@pytest.fixture
def apps(api: ApiClient) -> AppsV1Api:
    return AppsV1Api(api)


def unique_name(kubectl: Kubectl, purpose: str) -> str:
    return f"{binary_label(kubectl.binary)}-{purpose}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(kubectl: Kubectl, core: CoreV1Api) -> Iterator[str]:
    """A namespace of this test's own, made through the Python client so that only the test about
    `kubectl create namespace` depends on kubectl's typed (protobuf) create path."""
    name = unique_name(kubectl, "t")
    core.create_namespace({"metadata": {"name": name}})
    wait_for_root_ca(core, name)
    yield name
    delete_namespace(core, name)


def delete_namespace(core: CoreV1Api, name: str) -> None:
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def not_found(read: Any, *args: str) -> bool:
    try:
        read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_version_discovery_and_explain(kubectl: Kubectl) -> None:
    text = kubectl.run("version").stdout
    assert "Server Version" in text and "v1.33" in text, text
    server_version = kubectl.json("version")["serverVersion"]
    assert server_version["major"] == "1"
    assert server_version["minor"] == "33"
    assert server_version["gitVersion"].startswith("v1.33.")

    resources = kubectl.run("api-resources").stdout
    rows = parse_table(resources)
    assert headers(resources) == [
        "NAME",
        "SHORTNAMES",
        "APIVERSION",
        "NAMESPACED",
        "KIND",
    ]
    listed = {(row["NAME"], row["APIVERSION"]): row for row in rows}
    expected = [
        ("deployments", "deploy", "apps/v1", "true", "Deployment"),
        ("replicasets", "rs", "apps/v1", "true", "ReplicaSet"),
        ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
        ("configmaps", "cm", "v1", "true", "ConfigMap"),
        ("secrets", "", "v1", "true", "Secret"),
        ("services", "svc", "v1", "true", "Service"),
        ("pods", "po", "v1", "true", "Pod"),
        ("namespaces", "ns", "v1", "false", "Namespace"),
        ("nodes", "no", "v1", "false", "Node"),
        ("jobs", "", "batch/v1", "true", "Job"),
        ("cronjobs", "cj", "batch/v1", "true", "CronJob"),
        ("clusterroles", "", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"),
    ]
    for name, shortnames, api_version, namespaced, kind in expected:
        row = listed.get((name, api_version))
        assert row is not None, f"{name} ({api_version}) missing from api-resources"
        assert (row["SHORTNAMES"], row["NAMESPACED"], row["KIND"]) == (shortnames, namespaced, kind), row

    cluster_scoped = {
        row["NAME"] for row in parse_table(kubectl.run("api-resources", "--namespaced=false").stdout)
    }
    assert {"namespaces", "nodes", "clusterroles"} <= cluster_scoped
    assert not {"configmaps", "deployments", "secrets"} & cluster_scoped

    explained = kubectl.run("explain", "deployment.spec.strategy").stdout
    flat = " ".join(explained.split())
    assert "<DeploymentStrategy>" in flat
    assert "The deployment strategy to use to replace existing pods with new ones." in flat
    assert "rollingUpdate" in explained
    assert re.search(r"^\s+type\s+<string>", explained, re.MULTILINE), explained


def test_auth_whoami(kubectl: Kubectl) -> None:
    """1.27 asks SelfSubjectReview in v1beta1, later releases in v1: every one gets an answer in its version."""
    review = kubectl.json("auth", "whoami")
    assert review["kind"] == "SelfSubjectReview"
    assert review["apiVersion"] in {"authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"}
    info = review["status"]["userInfo"]
    assert info["username"] == "kubernetes-admin"
    assert "system:masters" in info["groups"] and "system:authenticated" in info["groups"]


def test_create_namespace(kubectl: Kubectl, core: CoreV1Api) -> None:
    name = unique_name(kubectl, "created")
    try:
        created = kubectl.run("create", "namespace", name)
        assert created.stdout.strip() == f"namespace/{name} created"
        assert core.read_namespace(name).status.phase == "Active"

        text = kubectl.run("get", "namespace", name).stdout
        assert headers(text) == ["NAME", "STATUS", "AGE"]
        row = row_named(parse_table(text), name)
        assert row["STATUS"] == "Active"
        assert AGE.match(row["AGE"]), row
    finally:
        delete_namespace(core, name)


def test_apply_get_and_modify(
    kubectl: Kubectl, namespace: str, core: CoreV1Api, apps: AppsV1Api, tmp_path: Path
) -> None:
    ns = namespace
    run = kubectl.run

    # apply of a multi-document file creates each object, recording last-applied.
    applied = run("apply", "-n", ns, "-f", str(MANIFESTS / "app.yaml"))
    assert applied.stdout.splitlines() == [
        "deployment.apps/web created",
        "service/web created",
        "configmap/web-config created",
        "secret/web-secret created",
    ]
    deployment = apps.read_namespaced_deployment("web", ns)
    assert deployment.spec.replicas == 2
    assert deployment.spec.template.spec.containers[0].image == "nginx:1.25"
    assert deployment.metadata.generation == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in deployment.metadata.annotations
    assert [p.port for p in core.read_namespaced_service("web", ns).spec.ports] == [80]
    assert core.read_namespaced_config_map("web-config", ns).data == {
        "mode": "blue",
        "extra": "drop-me-later",
    }
    assert core.read_namespaced_secret("web-secret", ns).data == {"password": b64("first")}

    # Validation stays on: kubectl sends fieldValidation=Strict, so an unknown field is refused
    # on create and on patch, and nothing is written either way.
    (deployment_doc,) = [
        d for d in yaml.safe_load_all((MANIFESTS / "app.yaml").read_text()) if d["kind"] == "Deployment"
    ]
    deployment_doc["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    unknown = 'strict decoding error: unknown field "spec.template.spec.containers[0].bogus"'
    for name in ("strict", "web"):
        deployment_doc["metadata"]["name"] = name
        refused = run("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(deployment_doc), check=False)
        assert refused.returncode == 1, refused.stdout
        assert "Error from server (BadRequest)" in refused.stderr and unknown in refused.stderr, (
            refused.stderr
        )
    assert not_found(apps.read_namespaced_deployment, "strict", ns)
    assert apps.read_namespaced_deployment("web", ns).metadata.generation == 1

    # A field set by someone else: the three-way merge of the re-apply must leave it alone.
    apps.patch_namespaced_deployment("web", ns, {"spec": {"minReadySeconds": 7}})
    generation = apps.read_namespaced_deployment("web", ns).metadata.generation

    reapplied = run("apply", "-n", ns, "-f", str(MANIFESTS / "app-changed.yaml"))
    assert reapplied.stdout.splitlines() == [
        "deployment.apps/web configured",
        "service/web configured",
        "configmap/web-config configured",
        "secret/web-secret configured",
    ]
    deployment = apps.read_namespaced_deployment("web", ns)
    assert deployment.spec.replicas == 3
    (container,) = deployment.spec.template.spec.containers
    assert (container.name, container.image) == ("nginx", "nginx:1.26")
    assert [p.container_port for p in container.ports] == [80]
    assert deployment.spec.min_ready_seconds == 7
    assert deployment.metadata.generation == generation + 1
    assert [(p.name, p.port) for p in core.read_namespaced_service("web", ns).spec.ports] == [
        ("http", 80),
        ("https", 443),
    ]
    # `extra` was in last-applied and is gone from the file, so apply deletes it.
    assert core.read_namespaced_config_map("web-config", ns).data == {"mode": "green"}
    assert core.read_namespaced_secret("web-secret", ns).data == {"password": b64("second")}

    # diff: nothing to show for the file just applied; a changed copy shows the change, exits 1
    # and persists nothing (it runs as a server-side dry run).
    same = run("diff", "-n", ns, "-f", str(MANIFESTS / "app-changed.yaml"), check=False)
    assert (same.returncode, same.stdout, same.stderr) == (0, "", "")
    docs = list(yaml.safe_load_all((MANIFESTS / "app-changed.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = 4
        if doc["kind"] == "ConfigMap":
            doc["data"]["mode"] = "diffed"
    changed = tmp_path / "app-diff.yaml"
    changed.write_text(yaml.safe_dump_all(docs))
    before = apps.read_namespaced_deployment("web", ns).metadata.resource_version
    diff = run("diff", "-n", ns, "-f", str(changed), check=False)
    assert diff.returncode == 1, diff.stderr
    assert re.search(r"^-  replicas: 3$", diff.stdout, re.MULTILINE), diff.stdout
    assert re.search(r"^\+  replicas: 4$", diff.stdout, re.MULTILINE), diff.stdout
    assert re.search(r"^\+  mode: diffed$", diff.stdout, re.MULTILINE), diff.stdout
    deployment = apps.read_namespaced_deployment("web", ns)
    assert (deployment.spec.replicas, deployment.metadata.resource_version) == (3, before)
    assert core.read_namespaced_config_map("web-config", ns).data == {"mode": "green"}

    # get, default columns as upstream's printers define them.
    text = run("get", "deployments", "-n", ns).stdout
    assert headers(text) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    row = row_named(parse_table(text), "web")
    assert re.fullmatch(r"\d+/3", row["READY"]), row
    assert row["UP-TO-DATE"].isdigit() and row["AVAILABLE"].isdigit(), row
    assert AGE.match(row["AGE"]), row

    deploy_table, svc_table, cm_table, secret_table = parse_tables(
        run("get", "deploy,svc,cm,secret", "-n", ns).stdout
    )
    assert row_named(deploy_table, "deployment.apps/web")
    service = core.read_namespaced_service("web", ns)
    svc = row_named(svc_table, "service/web")
    assert list(svc) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert (svc["TYPE"], svc["CLUSTER-IP"], svc["EXTERNAL-IP"], svc["PORT(S)"]) == (
        "ClusterIP",
        service.spec.cluster_ip,
        "<none>",
        "80/TCP,443/TCP",
    )
    cm = row_named(cm_table, "configmap/web-config")
    assert list(cm) == ["NAME", "DATA", "AGE"] and cm["DATA"] == "1"
    secret = row_named(secret_table, "secret/web-secret")
    assert list(secret) == ["NAME", "TYPE", "DATA", "AGE"]
    assert (secret["TYPE"], secret["DATA"]) == ("Opaque", "1")

    wide = run("get", "deployment", "web", "-n", ns, "-o", "wide").stdout
    assert headers(wide) == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    row = row_named(parse_table(wide), "web")
    assert (row["CONTAINERS"], row["IMAGES"], row["SELECTOR"]) == ("nginx", "nginx:1.26", "app=web")

    as_yaml = yaml.safe_load(run("get", "deployment", "web", "-n", ns, "-o", "yaml").stdout)
    assert (as_yaml["apiVersion"], as_yaml["kind"]) == ("apps/v1", "Deployment")
    assert (as_yaml["metadata"]["name"], as_yaml["metadata"]["namespace"]) == ("web", ns)
    assert as_yaml["spec"]["replicas"] == 3
    # The server's defaulting, as the apps/v1 and core/v1 defaulters fill it in.
    spec = as_yaml["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    pod_spec = spec["template"]["spec"]
    assert (pod_spec["restartPolicy"], pod_spec["dnsPolicy"], pod_spec["terminationGracePeriodSeconds"]) == (
        "Always",
        "ClusterFirst",
        30,
    )
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert pod_spec["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert "managedFields" not in as_yaml["metadata"]  # kubectl hides them unless asked

    as_json = kubectl.json("get", "configmaps", "-n", ns)
    assert as_json["kind"] == "List"
    items = {item["metadata"]["name"]: item for item in as_json["items"]}
    assert items["web-config"]["data"] == {"mode": "green"}
    assert items["web-config"]["kind"] == "ConfigMap"

    jsonpath = run(
        "get",
        "deployment",
        "web",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}",
    )
    assert jsonpath.stdout == "3 nginx:1.26"
    ports = run("get", "service", "web", "-n", ns, "-o", "jsonpath={.spec.ports[*].port}")
    assert ports.stdout == "80 443"

    labels = run("get", "configmap", "web-config", "-n", ns, "--show-labels").stdout
    assert headers(labels) == ["NAME", "DATA", "AGE", "LABELS"]
    assert row_named(parse_table(labels), "web-config")["LABELS"] == "app=web"

    everywhere = run("get", "configmaps", "-A").stdout
    assert headers(everywhere) == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert any(r["NAMESPACE"] == ns and r["NAME"] == "web-config" for r in parse_table(everywhere))

    # --chunk-size=1: one request per item, following `continue`, and still every item listed.
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"chunk-{i}"}, "data": {"i": str(i)}})
    on_server = {cm.metadata.name for cm in core.list_namespaced_config_map(ns).items}
    chunked = run("get", "configmaps", "-n", ns, "--chunk-size=1", "-v=6")
    assert {r["NAME"] for r in parse_table(chunked.stdout)} == on_server
    pages = [line for line in chunked.stderr.splitlines() if f"/namespaces/{ns}/configmaps?" in line]
    assert len(pages) == len(on_server), chunked.stderr
    assert all("limit=1" in line for line in pages)
    assert sum("continue=" in line for line in pages) == len(on_server) - 1

    # label and annotate touch metadata only, so generation stays put.
    generation = apps.read_namespaced_deployment("web", ns).metadata.generation
    assert (
        run("label", "deployment", "web", "-n", ns, "tier=frontend").stdout.strip()
        == "deployment.apps/web labeled"
    )
    # kubectl 1.27 prints "annotate" (its own wording, fixed in later releases).
    annotated = run("annotate", "deployment", "web", "-n", ns, "team=blue").stdout.strip()
    assert re.fullmatch(r"deployment\.apps/web annotated?", annotated), annotated
    deployment = apps.read_namespaced_deployment("web", ns)
    assert deployment.metadata.labels == {"app": "web", "tier": "frontend"}
    assert deployment.metadata.annotations["team"] == "blue"
    assert deployment.metadata.generation == generation
    run("label", "deployment", "web", "-n", ns, "tier-")
    assert apps.read_namespaced_deployment("web", ns).metadata.labels == {"app": "web"}

    # Strategic merge (the default) merges containers by name; upstream places containers the
    # server did not have before the ones it kept (mergeSortedSlice).
    sidecar = '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}'
    assert (
        run("patch", "deployment", "web", "-n", ns, "-p", sidecar).stdout.strip()
        == "deployment.apps/web patched"
    )
    containers = apps.read_namespaced_deployment("web", ns).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("sidecar", "busybox:1.36"), ("nginx", "nginx:1.26")]

    # A JSON merge patch replaces the whole list.
    only_nginx = '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}'
    run("patch", "deployment", "web", "-n", ns, "--type", "merge", "-p", only_nginx)
    containers = apps.read_namespaced_deployment("web", ns).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("nginx", "nginx:1.27")]

    ops = '[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/labels/patched","value":"json"}]'
    run("patch", "deployment", "web", "-n", ns, "--type", "json", "-p", ops)
    deployment = apps.read_namespaced_deployment("web", ns)
    assert deployment.spec.replicas == 4
    assert deployment.metadata.labels == {"app": "web", "patched": "json"}

    generation = deployment.metadata.generation
    assert (
        run("scale", "deployment", "web", "-n", ns, "--replicas=5").stdout.strip()
        == "deployment.apps/web scaled"
    )
    deployment = apps.read_namespaced_deployment("web", ns)
    assert (deployment.spec.replicas, deployment.metadata.generation) == (5, generation + 1)

    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/image: nginx:1.27/image: nginx:1.28/' \"$1\"\n")
    editor.chmod(0o755)
    edited = run(
        "edit", "deployment", "web", "-n", ns, env={"KUBE_EDITOR": str(editor), "EDITOR": str(editor)}
    )
    assert edited.stdout.strip() == "deployment.apps/web edited"
    deployment = apps.read_namespaced_deployment("web", ns)
    assert deployment.spec.template.spec.containers[0].image == "nginx:1.28"
    assert deployment.metadata.generation == generation + 2

    # wait --for=jsonpath: times out while the value is absent, returns once a change sets it.
    condition = "--for=jsonpath={.metadata.labels.stage}=ready"
    early = run("wait", condition, "deployment/web", "-n", ns, "--timeout=1s", check=False)
    assert early.returncode != 0
    waiter = kubectl.popen("wait", condition, "deployment/web", "-n", ns, "--timeout=30s")
    try:
        apps.patch_namespaced_deployment("web", ns, {"metadata": {"labels": {"stage": "ready"}}})
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert out.strip() == "deployment.apps/web condition met"


CONFIG_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa-config
data:
{data}
"""


def config_manifest(**data: str) -> str:
    return CONFIG_TEMPLATE.format(data="\n".join(f"  {key}: {value}" for key, value in data.items()))


def field_owners(managed_fields: list[Any]) -> dict[str, set[str]]:
    """Which manager owns which `data` key, from managedFields' FieldsV1 sets."""
    owners: dict[str, set[str]] = {}
    for entry in managed_fields or []:
        keys = (entry.fields_v1 or {}).get("f:data", {})
        owners.setdefault(entry.manager, set()).update(key.removeprefix("f:") for key in keys)
    return owners


def test_server_side_apply(kubectl: Kubectl, namespace: str, core: CoreV1Api) -> None:
    ns = namespace
    apply = ("apply", "--server-side", "-n", ns, "-f", "-")

    created = kubectl.run(*apply, stdin=config_manifest(color="red"))
    assert created.stdout.strip() == "configmap/ssa-config serverside-applied"
    live = core.read_namespaced_config_map("ssa-config", ns)
    assert live.data == {"color": "red"}
    assert field_owners(live.metadata.managed_fields) == {"kubectl": {"color"}}
    assert [e.operation for e in live.metadata.managed_fields] == ["Apply"]

    # A second manager adding a field of its own does not conflict.
    kubectl.run(*apply, "--field-manager=rival", stdin=config_manifest(size="L"))
    live = core.read_namespaced_config_map("ssa-config", ns)
    assert live.data == {"color": "red", "size": "L"}
    assert field_owners(live.metadata.managed_fields) == {"kubectl": {"color"}, "rival": {"size"}}

    # ...but changing a field the first one owns does, and nothing is written.
    conflict = kubectl.run(
        *apply, "--field-manager=rival", stdin=config_manifest(color="blue", size="L"), check=False
    )
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower()
    assert 'conflict with "kubectl"' in conflict.stderr and ".data.color" in conflict.stderr, conflict.stderr
    assert core.read_namespaced_config_map("ssa-config", ns).data == {"color": "red", "size": "L"}

    forced = kubectl.run(
        *apply, "--field-manager=rival", "--force-conflicts", stdin=config_manifest(color="blue", size="L")
    )
    assert forced.stdout.strip() == "configmap/ssa-config serverside-applied"
    live = core.read_namespaced_config_map("ssa-config", ns)
    assert live.data == {"color": "blue", "size": "L"}
    owners = field_owners(live.metadata.managed_fields)
    assert owners["rival"] == {"color", "size"}
    assert "color" not in owners.get("kubectl", set())


def test_get_watch_sees_later_changes(kubectl: Kubectl, namespace: str, core: CoreV1Api) -> None:
    ns = namespace
    core.create_namespaced_config_map(ns, {"metadata": {"name": "watched"}, "data": {"a": "1"}})

    one = LineReader(kubectl.popen("get", "configmap", "watched", "-n", ns, "-w"))
    every = LineReader(kubectl.popen("get", "configmaps", "-n", ns, "-w", "--output-watch-events"))
    try:
        assert one.wait_for(lambda line: line.split()[:1] == ["NAME"]).split() == ["NAME", "DATA", "AGE"]
        one.wait_for(lambda line: line.split()[:2] == ["watched", "1"])
        assert every.wait_for(lambda line: line.split()[:1] == ["EVENT"]).split() == [
            "EVENT",
            "NAME",
            "DATA",
            "AGE",
        ]
        every.wait_for(lambda line: line.split()[:3] == ["ADDED", "watched", "1"])

        # Watch events carry Table rows too: DATA goes from 1 to 2. kubectl prints a single object
        # from its GET, then opens a watch from resourceVersion 0 and drops that watch's first event
        # (the synthetic ADDED of the current state). A change made before that watch is open comes
        # as the dropped event, against upstream too; the printed output cannot tell when the watch
        # opened, so keep adding keys until one change shows.
        keys = iter("bcdefghijk")
        core.patch_namespaced_config_map("watched", ns, {"data": {next(keys): "x"}})
        every.wait_for(lambda line: line.split()[:3] == ["MODIFIED", "watched", "2"])
        data = 2
        while True:
            try:
                line = one.wait_for(lambda line: line.split()[:1] == ["watched"], timeout=3)
                break
            except AssertionError:
                data += 1
                core.patch_namespaced_config_map("watched", ns, {"data": {next(keys): "x"}})
        # A late line may show an earlier change than the last one made; never the initial state.
        assert 2 <= int(line.split()[1]) <= data, one.seen

        core.create_namespaced_config_map(ns, {"metadata": {"name": "later"}, "data": {}})
        every.wait_for(lambda line: line.split()[:3] == ["ADDED", "later", "0"])
        core.delete_namespaced_config_map("later", ns)
        every.wait_for(lambda line: line.split()[:2] == ["DELETED", "later"])
        assert one.process.poll() is None and every.process.poll() is None
    finally:
        one.stop()
        every.stop()


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_delete_cascade(kubectl: Kubectl, namespace: str, core: CoreV1Api, cascade: str) -> None:
    """Dependents are ConfigMaps owned by a ConfigMap: no controller has to create them."""
    ns = namespace
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}, "data": {"a": "1"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
        # With foreground deletion, a blocking dependent must be gone before the owner is.
        "blockOwnerDeletion": True,
    }
    core.create_namespaced_config_map(ns, {"metadata": {"name": "dependent", "ownerReferences": [reference]}})

    deleted = kubectl.run(
        "delete",
        "configmap",
        "owner",
        "-n",
        ns,
        f"--cascade={cascade}",
        "--wait",
        "--timeout=20s",
        timeout=60,
    )
    assert deleted.stdout.strip().startswith('configmap "owner" deleted'), deleted.stdout
    assert not_found(core.read_namespaced_config_map, "owner", ns)

    if cascade == "foreground":
        assert not_found(core.read_namespaced_config_map, "dependent", ns)
    elif cascade == "background":
        eventually(
            lambda: not_found(core.read_namespaced_config_map, "dependent", ns),
            timeout=20,
            what="garbage collection of the dependent",
        )
    else:
        orphan = core.read_namespaced_config_map("dependent", ns)
        assert not orphan.metadata.owner_references
        assert not orphan.metadata.finalizers


def test_delete_all(kubectl: Kubectl, namespace: str, core: CoreV1Api) -> None:
    ns = namespace
    names = {f"bulk-{i}" for i in range(3)}
    for name in names:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    core.create_namespaced_secret(ns, {"metadata": {"name": "kept"}, "stringData": {"k": "v"}})

    deleted = kubectl.run("delete", "configmaps", "--all", "-n", ns, "--wait", "--timeout=20s")
    for name in names:
        assert any(line.startswith(f'configmap "{name}" deleted') for line in deleted.stdout.splitlines()), (
            deleted.stdout
        )
    remaining = {cm.metadata.name for cm in core.list_namespaced_config_map(ns).items}
    # Upstream's root-CA publisher may recreate kube-root-ca.crt; nothing of ours may remain.
    assert remaining <= {"kube-root-ca.crt"}, remaining
    assert core.read_namespaced_secret("kept", ns).metadata.name == "kept"

    listed = kubectl.run("get", "configmaps", "-n", ns)
    if not remaining:
        assert listed.stdout == ""
        assert listed.stderr.strip() == f"No resources found in {ns} namespace."
