"""RBAC end to end with real kubectl: a ServiceAccount with `view` gets 403 on writes,
escalation attempts fail, the in-process components run as their own users under upstream's
roles, and the bootstrap policy is reconciled on every start."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tests.integration.conftest import ServerProcess, start_server, user_kubeconfig
from tests.integration.kubectl_helpers import Kubectl

pytestmark = pytest.mark.kubectl


@pytest.fixture
def admin(kube_env: dict[str, str]) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")
    return Kubectl(binary, kube_env)


@pytest.fixture
def namespace(admin: Kubectl) -> str:
    name = f"rbac-{uuid.uuid4().hex[:6]}"
    admin.run("create", "namespace", name)
    return name


def with_kubeconfig(k: Kubectl, path: Path) -> Kubectl:
    return Kubectl(k.binary, {**k.env, "KUBECONFIG": str(path)})


def test_service_account_with_view_cannot_write(
    admin: Kubectl, server: ServerProcess, namespace: str
) -> None:
    admin.run("create", "serviceaccount", "robot", "-n", namespace)
    admin.run(
        "create",
        "rolebinding",
        "robot-view",
        "--clusterrole=view",
        f"--serviceaccount={namespace}:robot",
        "-n",
        namespace,
    )
    admin.run("create", "configmap", "settings", "--from-literal=a=b", "-n", namespace)
    token = admin.run("create", "token", "robot", "-n", namespace).stdout.strip()
    robot = [
        f"--token={token}",
        "--kubeconfig=/dev/null",
        f"--server={server.url}",
        f"--certificate-authority={server.ca}",
    ]
    assert (
        admin.run(*robot, "get", "configmap", "settings", "-n", namespace, "-o", "name").stdout
        == "configmap/settings\n"
    )
    user = f"system:serviceaccount:{namespace}:robot"
    for args, verb, resource in (
        (("create", "configmap", "other", "-n", namespace), "create", "configmaps"),
        (("delete", "configmap", "settings", "-n", namespace), "delete", "configmaps"),
        (("label", "configmap", "settings", "x=y", "-n", namespace), "patch", "configmaps"),
        (("scale", "deployment", "web", "--replicas=2", "-n", namespace), "get", "deployments"),
    ):
        result = admin.run(*robot, *args, check=False)
        assert result.returncode != 0, args
        if verb != "get":
            assert f'User "{user}" cannot {verb} resource "{resource}"' in result.stderr, result.stderr
    # secrets are not in view
    denied = admin.run(*robot, "get", "secrets", "-n", namespace, check=False)
    assert "Forbidden" in denied.stderr and 'cannot list resource "secrets"' in denied.stderr


def test_escalation_attempts_fail(
    admin: Kubectl, server: ServerProcess, tmp_path: Path, namespace: str
) -> None:
    name = f"lead-{namespace}"
    admin.run("create", "rolebinding", "lead-admin", "--clusterrole=admin", f"--user={name}", "-n", namespace)
    lead = with_kubeconfig(admin, user_kubeconfig(server, tmp_path, name))
    # what admin holds in the namespace may be granted
    lead.run("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    lead.run("create", "rolebinding", "readers", "--role=pod-reader", "--user=someone", "-n", namespace)
    # what it does not hold may not
    result = lead.run(
        "create", "role", "node-admin", "--verb=*", "--resource=nodes", "-n", namespace, check=False
    )
    assert result.returncode == 1
    assert result.stderr == (
        f'Error from server (Forbidden): roles.rbac.authorization.k8s.io "node-admin" is forbidden: user "{name}" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["*"]}\n'
    )
    result = lead.run(
        "create",
        "rolebinding",
        "take-over",
        "--clusterrole=cluster-admin",
        f"--user={name}",
        "-n",
        namespace,
        check=False,
    )
    assert result.returncode == 1
    assert 'rolebindings.rbac.authorization.k8s.io "take-over" is forbidden' in result.stderr
    assert "is attempting to grant RBAC permissions not currently held" in result.stderr
    result = lead.run(
        "create",
        "clusterrolebinding",
        f"take-over-{namespace}",
        "--clusterrole=cluster-admin",
        f"--user={name}",
        check=False,
    )
    assert "Forbidden" in result.stderr or "forbidden" in result.stderr
    # editing an existing role to hold more than the editor has is refused too
    result = lead.run(
        "patch",
        "role",
        "pod-reader",
        "-n",
        namespace,
        "--type=json",
        '-p=[{"op":"add","path":"/rules/0/verbs/-","value":"escalate"}]',
        check=False,
    )
    assert (
        result.returncode == 1
        and "is attempting to grant RBAC permissions not currently held" in result.stderr
    )


def _subject_of(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text())
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
    )
    return cert.subject.rfc4514_string()


def _sar(
    admin: Kubectl,
    user: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    sub: str = "",
    name: str = "",
    ns: str = "",
) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:authenticated"],
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "subresource": sub,
                "name": name,
                "namespace": ns,
            },
        },
    }
    out = admin.run("create", "-f", "-", "-o", "json", stdin=json.dumps(review)).stdout
    return bool(json.loads(out)["status"]["allowed"])


def test_components_run_as_themselves(admin: Kubectl, server: ServerProcess) -> None:
    assert _subject_of(server.data_dir / "scheduler.kubeconfig") == "CN=system:kube-scheduler"
    assert (
        _subject_of(server.data_dir / "controller-manager.kubeconfig") == "CN=system:kube-controller-manager"
    )
    scheduler, cm = "system:kube-scheduler", "system:kube-controller-manager"
    assert _sar(admin, scheduler, "create", "pods", sub="binding", ns="default")
    assert not _sar(admin, scheduler, "create", "pods", ns="default")
    assert not _sar(admin, scheduler, "delete", "nodes")
    assert _sar(
        admin,
        scheduler,
        "update",
        "leases",
        group="coordination.k8s.io",
        name="kube-scheduler",
        ns="kube-system",
    )
    assert not _sar(
        admin,
        scheduler,
        "update",
        "leases",
        group="coordination.k8s.io",
        name="kube-controller-manager",
        ns="default",  # kube-system leases: upstream's leader-locking Role
    )
    assert _sar(admin, cm, "create", "pods", ns="default")
    assert _sar(admin, cm, "update", "deployments", group="apps", sub="status", ns="default")
    assert not _sar(admin, cm, "create", "clusterrolebindings", group="rbac.authorization.k8s.io")
    assert not _sar(admin, cm, "create", "pods", sub="exec", ns="default")


def test_node_credentials_are_governed_by_the_node_authorizer(
    admin: Kubectl, server: ServerProcess, tmp_path: Path
) -> None:
    """The system:node ClusterRole is bound to no one (as upstream): a node's rights come from the
    Node authorizer, which scopes them to its own Node and its own pods' objects."""
    node = with_kubeconfig(admin, user_kubeconfig(server, tmp_path, "system:node:rbac-node", "system:nodes"))
    assert node.run("auth", "can-i", "update", "nodes/rbac-node", "--subresource=status").stdout == "yes\n"
    assert node.run("auth", "can-i", "get", "nodes/rbac-node").stdout == "yes\n"
    assert (
        node.run("auth", "can-i", "get", "nodes/other-node", check=False).stdout
        == "no - node 'rbac-node' cannot read 'other-node', only its own Node object\n"
    )
    # No pod on this node references it, so no secret is readable, by name or by list.
    assert node.run("auth", "can-i", "get", "secrets/s", "-n", "default", check=False).stdout.startswith("no")
    assert node.run("auth", "can-i", "list", "secrets", "-n", "default", check=False).stdout.startswith("no")
    assert node.run("auth", "can-i", "delete", "nodes", check=False).stdout.startswith("no")
    assert node.run("auth", "can-i", "create", "secrets", "-n", "default", check=False).stdout.startswith(
        "no"
    )


def test_bootstrap_policy_reconciled_on_start(tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    data = tmp_path / "data"
    first = start_server(data)
    env = {"KUBECONFIG": str(first.kubeconfig), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    k = Kubectl(shutil.which("kubectl") or "kubectl", env)
    try:
        k.run(
            "patch",
            "clusterrole",
            "system:node-proxier",
            "--type=json",
            '-p=[{"op":"remove","path":"/rules/0"}]',
        )
        k.run(
            "patch", "clusterrole", "system:kube-dns", "--type=json", '-p=[{"op":"remove","path":"/rules/0"}]'
        )
        k.run(
            "annotate",
            "--overwrite",
            "clusterrole",
            "system:kube-dns",
            "rbac.authorization.kubernetes.io/autoupdate=false",
        )
        k.run("delete", "clusterrolebinding", "system:basic-user")
        k.run(
            "patch",
            "clusterrolebinding",
            "system:discovery",
            "--type=merge",
            "-p",
            '{"metadata":{"labels":{"team":"x"}}}',
        )
    finally:
        assert first.stop() == 0
    second = start_server(data, port=None)
    k = Kubectl(k.binary, {**env, "KUBECONFIG": str(second.kubeconfig)})
    try:
        proxier = k.json("get", "clusterrole", "system:node-proxier")
        assert any(
            set(r.get("resources", [])) & {"services", "endpoints"} and "list" in r["verbs"]
            for r in proxier["rules"]
        )
        # autoupdate=false: left alone
        assert not k.json("get", "clusterrole", "system:kube-dns").get("rules")
        restored = k.json("get", "clusterrolebinding", "system:basic-user")
        assert restored["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
        ]
        discovery = k.json("get", "clusterrolebinding", "system:discovery")["metadata"]["labels"]
        assert discovery == {"kubernetes.io/bootstrapping": "rbac-defaults", "team": "x"}
    finally:
        assert second.stop() == 0
