"""`kubectl auth can-i` (SelfSubjectAccessReview) and `kubectl auth can-i --list`
(SelfSubjectRulesReview) against a real server: the output kubectl prints for users bound to
upstream's `view` and `edit` roles in a namespace."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import ServerProcess, user_kubeconfig
from tests.integration.kubectl_helpers import Kubectl, headers, parse_table

pytestmark = pytest.mark.kubectl


@pytest.fixture
def admin(kube_env: dict[str, str]) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")
    return Kubectl(binary, kube_env)


@pytest.fixture
def namespace(admin: Kubectl) -> str:
    name = f"can-i-{uuid.uuid4().hex[:6]}"
    admin.run("create", "namespace", name)
    return name


def as_user(admin: Kubectl, server: ServerProcess, tmp_path: Path, user: str) -> Kubectl:
    return Kubectl(admin.binary, {**admin.env, "KUBECONFIG": str(user_kubeconfig(server, tmp_path, user))})


def rows_by_resource(text: str) -> dict[str, str]:
    return {row["Resources"]: row["Verbs"] for row in parse_table(text) if row["Resources"]}


def test_can_i_for_view(admin: Kubectl, server: ServerProcess, tmp_path: Path, namespace: str) -> None:
    user = f"viewer-{namespace}"
    admin.run("create", "rolebinding", "viewers", "--clusterrole=view", f"--user={user}", "-n", namespace)
    viewer = as_user(admin, server, tmp_path, user)
    assert viewer.run("auth", "can-i", "get", "pods", "-n", namespace).stdout == "yes\n"
    denied = viewer.run("auth", "can-i", "create", "pods", "-n", namespace, check=False)
    assert (denied.returncode, denied.stdout) == (1, "no\n")
    assert viewer.run("auth", "can-i", "get", "secrets", "-n", namespace, check=False).stdout == "no\n"
    assert viewer.run("auth", "can-i", "get", "pods", "-n", "default", check=False).stdout == "no\n"

    listed = viewer.run("auth", "can-i", "--list", "-n", namespace).stdout
    assert headers(listed) == ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
    lines = listed.splitlines()
    # kubectl's own ordering: the self reviews, then by API group
    assert lines[1].split() == ["selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]"]
    assert lines[2].split() == ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"]
    assert lines[3].split() == ["selfsubjectrulesreviews.authorization.k8s.io", "[]", "[]", "[create]"]
    rules = rows_by_resource(listed)
    for resource in (
        "pods",
        "pods/log",
        "configmaps",
        "services",
        "namespaces",
        "events",
        "deployments.apps",
        "deployments.apps/scale",
        "statefulsets.apps",
        "jobs.batch",
        "cronjobs.batch",
        "endpointslices.discovery.k8s.io",
        "poddisruptionbudgets.policy",
        "ingresses.networking.k8s.io",
    ):
        assert rules[resource] == "[get list watch]", resource
    assert "secrets" not in rules and "roles.rbac.authorization.k8s.io" not in rules
    non_resource = [line.split() for line in lines if line.startswith(" ")]
    assert ["[/api]", "[]", "[get]"] in non_resource and ["[/version]", "[]", "[get]"] in non_resource


def test_can_i_for_edit(admin: Kubectl, server: ServerProcess, tmp_path: Path, namespace: str) -> None:
    user = f"editor-{namespace}"
    admin.run("create", "rolebinding", "editors", "--clusterrole=edit", f"--user={user}", "-n", namespace)
    editor = as_user(admin, server, tmp_path, user)
    assert editor.run("auth", "can-i", "create", "deployments.apps", "-n", namespace).stdout == "yes\n"
    assert editor.run("auth", "can-i", "get", "secrets", "-n", namespace).stdout == "yes\n"
    assert editor.run("auth", "can-i", "create", "roles", "-n", namespace, check=False).stdout == "no\n"
    assert editor.run("auth", "can-i", "list", "nodes", check=False).stdout == "no\n"

    listed = editor.run("auth", "can-i", "--list", "-n", namespace).stdout
    lines = listed.splitlines()
    # upstream's edit, as kubectl prints it: leases first (its rule holds every verb), then the
    # aggregated read-write rules with their verbs in the order the rules merged them
    assert lines[1].split() == [
        "leases.coordination.k8s.io",
        "[]",
        "[]",
        "[create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch]",
    ]
    rules = rows_by_resource(listed)
    read_write = "[create delete deletecollection patch update get list watch]"
    for resource in ("configmaps", "pods", "services", "deployments.apps", "jobs.batch"):
        assert rules[resource] == read_write, resource
    # secrets are read by aggregate-to-edit's first rule (not by view): reads come first
    assert rules["secrets"] == "[get list watch create delete deletecollection patch update]"
    assert rules["pods/exec"] == "[get list watch create delete deletecollection patch update]"
    assert rules["pods/eviction"] == "[create]"
    assert rules["serviceaccounts/token"] == "[create]"
    assert (
        rules["serviceaccounts"] == "[impersonate create delete deletecollection patch update get list watch]"
    )
    assert "roles.rbac.authorization.k8s.io" not in rules


def test_can_i_as_admin_and_unbound(admin: Kubectl, server: ServerProcess, tmp_path: Path) -> None:
    assert admin.run("auth", "can-i", "*", "*").stdout == "yes\n"
    listed = admin.run("auth", "can-i", "--list").stdout.splitlines()
    assert listed[1].split() == ["*.*", "[]", "[]", "[*]"]
    assert listed[2].split() == ["[*]", "[]", "[*]"]
    nobody = as_user(admin, server, tmp_path, f"nobody-{uuid.uuid4().hex[:6]}")
    assert nobody.run("auth", "can-i", "get", "pods", check=False).stdout == "no\n"
    assert nobody.run("auth", "can-i", "get", "/apis").stdout == "yes\n"  # system:discovery
    assert nobody.run("auth", "can-i", "get", "/metrics", check=False).stdout == "no\n"
