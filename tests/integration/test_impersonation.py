"""`kubectl --as` against a real server: impersonation authorized with the `impersonate` verb,
as upstream's impersonation filter."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import ServerProcess
from tests.integration.kubectl_helpers import Kubectl
from tests.integration.test_auth_can_i import user_kubeconfig

pytestmark = pytest.mark.kubectl


@pytest.fixture
def admin(bare_server: ServerProcess, tmp_path: Path) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")
    env = dict(os.environ)
    env["KUBECONFIG"] = str(bare_server.kubeconfig)
    env["KUBECACHEDIR"] = str(tmp_path / "cache")
    env["HOME"] = str(tmp_path)
    return Kubectl(binary, env)


@pytest.fixture
def namespace(admin: Kubectl) -> str:
    name = f"imp-{uuid.uuid4().hex[:6]}"
    admin.run("create", "namespace", name)
    return name


def test_admin_acts_as_the_impersonated_user(admin: Kubectl, namespace: str) -> None:
    user = f"jane-{namespace}"
    denied = admin.run("--as", user, "get", "pods", "-n", namespace, check=False)
    assert denied.returncode == 1
    assert (
        f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" '
        f'in the namespace "{namespace}"' in denied.stderr
    )
    admin.run("create", "rolebinding", "jane-view", "--clusterrole=view", f"--user={user}", "-n", namespace)
    assert admin.run("--as", user, "get", "pods", "-n", namespace).returncode == 0
    # Groups are passed along and decide too.
    group = f"team-{namespace}"
    admin.run("create", "rolebinding", "team-edit", "--clusterrole=edit", f"--group={group}", "-n", namespace)
    assert (
        admin.run(
            "--as", "someone", "auth", "can-i", "create", "configmaps", "-n", namespace, check=False
        ).stdout
        == "no\n"
    )
    allowed = admin.run(
        "--as", "someone", "--as-group", group, "auth", "can-i", "create", "configmaps", "-n", namespace
    )
    assert allowed.stdout == "yes\n"
    who = json.loads(admin.run("--as", user, "--as-group", group, "auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == user
    assert who["status"]["userInfo"]["groups"] == [group, "system:authenticated"]


def test_impersonating_a_service_account(admin: Kubectl, namespace: str) -> None:
    who = json.loads(
        admin.run("--as", f"system:serviceaccount:{namespace}:default", "auth", "whoami", "-o", "json").stdout
    )
    assert who["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]


def test_user_without_impersonate_is_refused(
    admin: Kubectl, bare_server: ServerProcess, tmp_path: Path, namespace: str
) -> None:
    name = f"x-{namespace}"
    x = Kubectl(admin.binary, {**admin.env, "KUBECONFIG": str(user_kubeconfig(bare_server, tmp_path, name))})
    # kubectl's discovery client prints an impersonation 403 as "Forbidden: unknown" (it does
    # against upstream too); a plain request shows the Status message.
    assert "Error from server (Forbidden)" in x.run("--as", "jane", "get", "pods", check=False).stderr
    refused = x.run("--as", "jane", "get", "--raw", f"/api/v1/namespaces/{namespace}/pods", check=False)
    assert refused.returncode == 1
    assert (
        f'users "jane" is forbidden: User "{name}" cannot impersonate resource "users" in API group "" '
        "at the cluster scope" in refused.stderr
    )
    role = f"impersonate-users-{namespace}"
    admin.run("create", "clusterrole", role, "--verb=impersonate", "--resource=users")
    admin.run("create", "clusterrolebinding", role, f"--clusterrole={role}", f"--user={name}")
    admin.run("create", "rolebinding", "jane-view", "--clusterrole=view", "--user=jane", "-n", namespace)
    assert x.run("--as", "jane", "get", "pods", "-n", namespace).returncode == 0
    # Users only: asking for a group as well is refused on the group.
    group = x.run(
        "--as",
        "jane",
        "--as-group",
        "admins",
        "get",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods",
        check=False,
    )
    assert group.returncode == 1
    assert f'groups "admins" is forbidden: User "{name}" cannot impersonate resource "groups"' in group.stderr


def test_extra_and_uid_headers(bare_server: ServerProcess) -> None:
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
    request = urllib.request.Request(
        f"{bare_server.url}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Impersonate-User": "jane",
            "Impersonate-Uid": "uid-1",
            "Impersonate-Extra-Scopes": "view",
            "Impersonate-Extra-Example.com%2fteam": "blue",
        },
    )
    with urllib.request.urlopen(request, context=bare_server.ssl_context(), timeout=10) as response:
        info = json.loads(response.read())["status"]["userInfo"]
    assert info["username"] == "jane" and info["uid"] == "uid-1"
    assert info["extra"] == {"scopes": ["view"], "example.com/team": ["blue"]}
    bad = urllib.request.Request(f"{bare_server.url}/api/v1/namespaces", headers={"Impersonate-Group": "g"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(bad, context=bare_server.ssl_context(), timeout=10)
    assert caught.value.code == 500
    assert "without impersonating a user" in json.loads(caught.value.read())["message"]
