"""RBAC inside the API server, in process (memory storage, no TLS, users from test headers):
the bootstrap policy at start, the cache following writes, 403s with upstream's messages,
escalation prevention, aggregation, and the authorization reviews."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api.resources import default_registry
from controlplane.apiserver import app as app_module
from controlplane.apiserver import authorization_reviews, authz
from controlplane.apiserver.admission import default_admission
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.authn import ALL_AUTHENTICATED, UserInfo
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.rbac import RBAC, RBACEscalation
from controlplane.apiserver.server import _bootstrap
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.store import ObjectStore
from controlplane.storage import open_storage

Client = TestClient[Any, Any]
RBAC_V1 = "/apis/rbac.authorization.k8s.io/v1"
AUTHZ_V1 = "/apis/authorization.k8s.io/v1"


class HeaderAuthenticator:
    """X-User / X-Groups (comma-separated), as an authenticating proxy would pass them."""

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        name = request.headers.get("X-User")
        if not name:
            return None
        groups = [g for g in request.headers.get("X-Groups", "").split(",") if g]
        return UserInfo(name=name, groups=(*groups, ALL_AUTHENTICATED))


def as_user(name: str, *groups: str) -> dict[str, str]:
    return {"X-User": name, "X-Groups": ",".join(groups)}


ADMIN = as_user("root", "system:masters")


@pytest.fixture
async def rbac_ctx() -> AsyncIterator[tuple[ServerContext, RBAC]]:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    ips = ServiceIPAllocator(storage, "10.96.0.0/24")
    ctx = ServerContext(
        registry=default_registry(),
        storage=storage,
        store=ObjectStore(storage),
        services=ServiceAllocation(ips, NodePortAllocator(storage)),
        admission=default_admission(disabled=("ServiceAccount",)),
    )
    await _bootstrap(ctx, ips.kubernetes_service_ip, 6443)
    rbac = RBAC(ctx)
    await rbac.start()
    yield ctx, rbac
    await storage.close()


@pytest.fixture
async def client(rbac_ctx: tuple[ServerContext, RBAC]) -> AsyncIterator[Client]:
    import asyncio

    ctx, rbac = rbac_ctx
    authorizer = authz.standard_authorizer(rbac.authorizer)
    ctx.admission.validating = [RBACEscalation(rbac.authorizer, authorizer), *ctx.admission.validating]
    settings = app_module.AppSettings(authenticator=HeaderAuthenticator(), authorizer=authorizer)
    application = app_module.create_app(ctx, settings)
    application.middlewares.append(authorization_reviews.middleware(authorizer, rbac.authorizer))
    test_client: Client = TestClient(TestServer(application))
    await test_client.start_server()
    follower = asyncio.create_task(rbac.run())
    yield test_client
    follower.cancel()
    await test_client.close()


async def post(
    client: Client, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, json=body, headers=headers)
    return response.status, await response.json()


def binding(
    name: str, role: str, *, user: str = "", group: str = "", kind: str = "ClusterRole", ns: str = ""
) -> dict[str, Any]:
    subject = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}
    if group:
        subject = {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": group}
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding" if ns else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [subject],
    }


def role(name: str, rules: list[dict[str, Any]], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": ns},
        "rules": rules,
    }


async def test_bootstrap_policy_and_aggregation(client: Client, rbac_ctx: tuple[ServerContext, RBAC]) -> None:
    response = await client.get(f"{RBAC_V1}/clusterroles/view", headers=ADMIN)
    view = await response.json()
    assert view["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert view["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
    assert any("pods" in r.get("resources", []) for r in view["rules"])  # aggregated at start
    # a new role labelled aggregate-to-view flows into view, edit and admin
    extra = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": "widgets-view",
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
        },
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}],
    }
    assert (await post(client, f"{RBAC_V1}/clusterroles", extra, ADMIN))[0] == 201
    # a request that is not system:masters applies the event itself (catch-up); aggregation
    # must still hear of it
    assert (await client.get("/apis", headers=as_user("someone"))).status == 200
    import asyncio

    for _ in range(100):
        admin = await (await client.get(f"{RBAC_V1}/clusterroles/admin", headers=ADMIN)).json()
        if any("widgets" in r.get("resources", []) for r in admin.get("rules") or []):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("widgets never aggregated into admin")
    # a second start reconciles without changing anything
    ctx, _ = rbac_ctx
    again = RBAC(ctx)
    from controlplane.apiserver.rbac.bootstrap import reconcile_bootstrap_policy

    counts = await reconcile_bootstrap_policy(ctx)
    assert set(counts) == {"none"}
    del again


async def test_denied_then_granted_at_once(client: Client) -> None:
    pods = "/api/v1/namespaces/default/pods"
    response = await client.get(pods, headers=as_user("alice"))
    assert response.status == 403
    status = await response.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"'
    )
    granted = binding("alice-view", "view", user="alice", ns="default")
    assert (await post(client, f"{RBAC_V1}/namespaces/default/rolebindings", granted, ADMIN))[0] == 201
    # effective for the very next request: no waiting for the watch
    assert (await client.get(pods, headers=as_user("alice"))).status == 200
    assert (await client.get("/api/v1/namespaces/kube-system/pods", headers=as_user("alice"))).status == 403
    # view gets 403 on writes
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    code, body = await post(client, pods, pod, as_user("alice"))
    assert code == 403 and 'cannot create resource "pods"' in body["message"]
    # a ServiceAccount with view, by its username and groups
    sa = as_user(
        "system:serviceaccount:default:robot", "system:serviceaccounts", "system:serviceaccounts:default"
    )
    assert (await client.get(pods, headers=sa)).status == 403
    sa_binding = binding("robot-view", "view", ns="default")
    sa_binding["subjects"] = [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]
    assert (await post(client, f"{RBAC_V1}/namespaces/default/rolebindings", sa_binding, ADMIN))[0] == 201
    assert (await client.get(pods, headers=sa)).status == 200
    assert (await post(client, pods, pod, sa))[0] == 403
    # revoking is as immediate as granting
    revoked = await client.delete(f"{RBAC_V1}/namespaces/default/rolebindings/alice-view", headers=ADMIN)
    assert revoked.status == 200
    assert (await client.get(pods, headers=as_user("alice"))).status == 403
    # a missing role is a resolution error, reported as the denial's reason
    broken = binding("bob-missing", "nonexistent", user="bob")
    assert (await post(client, f"{RBAC_V1}/clusterrolebindings", broken, ADMIN))[0] == 201
    response = await client.get("/api/v1/nodes", headers=as_user("bob"))
    assert (await response.json())["message"].endswith(
        ': RBAC: clusterrole.rbac.authorization.k8s.io "nonexistent" not found'
    )


async def test_denial_is_logged_at_debug_level(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """The debug line names the object without clobbering LogRecord's own `name` (which raised
    KeyError and turned every denial into a 500 under --log-level debug)."""
    with caplog.at_level(logging.DEBUG, logger="pinnace.rbac"):
        response = await client.get("/api/v1/namespaces/default/secrets/s1", headers=as_user("mallory"))
    assert response.status == 403
    record = next(r for r in caplog.records if r.name == "pinnace.rbac")
    assert "no rules authorize user 'mallory'" in record.getMessage()
    assert record.__dict__["object_name"] == "s1" and record.__dict__["namespace"] == "default"


async def test_escalation_prevented(client: Client) -> None:
    # dana administers namespace default (admin there: roles and rolebindings included)
    grant = binding("dana-admin", "admin", user="dana", ns="default")
    assert (await post(client, f"{RBAC_V1}/namespaces/default/rolebindings", grant, ADMIN))[0] == 201
    dana = as_user("dana")
    roles = f"{RBAC_V1}/namespaces/default/roles"
    ok = role("pod-reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}])
    assert (await post(client, roles, ok, dana))[0] == 201
    # nodes are cluster-scoped: admin in a namespace does not hold them
    too_much = role("node-admin", [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["*"]}])
    code, body = await post(client, roles, too_much, dana)
    assert code == 403
    assert body["message"] == (
        'roles.rbac.authorization.k8s.io "node-admin" is forbidden: user "dana" (groups=["system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["nodes"], Verbs:["*"]}'
    )
    assert body["details"] == {"name": "node-admin", "group": "rbac.authorization.k8s.io", "kind": "roles"}
    # binding cluster-admin without `bind` on it
    code, body = await post(
        client,
        f"{RBAC_V1}/namespaces/default/rolebindings",
        binding("dana-root", "cluster-admin", user="dana", ns="default"),
        dana,
    )
    assert code == 403 and "is attempting to grant RBAC permissions not currently held" in body["message"]
    # binding a role dana holds is fine
    reader = binding("eve-reader", "pod-reader", user="eve", kind="Role", ns="default")
    assert (await post(client, f"{RBAC_V1}/namespaces/default/rolebindings", reader, dana))[0] == 201
    # with `bind` on cluster-admin (by name) the binding is allowed; `escalate` allows the role
    binder = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "bind-cluster-admin"},
        "rules": [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["clusterroles"],
                "verbs": ["bind"],
                "resourceNames": ["cluster-admin"],
            },
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]},
        ],
    }
    assert (await post(client, f"{RBAC_V1}/clusterroles", binder, ADMIN))[0] == 201
    assert (
        await post(
            client,
            f"{RBAC_V1}/clusterrolebindings",
            binding("dana-binder", "bind-cluster-admin", user="dana"),
            ADMIN,
        )
    )[0] == 201
    assert (
        await post(
            client,
            f"{RBAC_V1}/namespaces/default/rolebindings",
            binding("dana-root", "cluster-admin", user="dana", ns="default"),
            dana,
        )
    )[0] == 201
    assert (await post(client, roles, too_much, dana))[0] == 201
    # an aggregationRule needs full authority, whatever the rules
    agg = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "gatherer"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]},
    }
    grant_cr = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "clusterrole-writer"},
        "rules": [
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["create"]}
        ],
    }
    assert (await post(client, f"{RBAC_V1}/clusterroles", grant_cr, ADMIN))[0] == 201
    assert (
        await post(
            client,
            f"{RBAC_V1}/clusterrolebindings",
            binding("frank-cr", "clusterrole-writer", user="frank"),
            ADMIN,
        )
    )[0] == 201
    code, body = await post(client, f"{RBAC_V1}/clusterroles", agg, as_user("frank"))
    assert code == 403
    assert body["message"].endswith("must have cluster-admin privileges to use the aggregationRule")


async def test_access_reviews(client: Client) -> None:
    grant = binding("gina-edit", "edit", user="gina", ns="default")
    assert (await post(client, f"{RBAC_V1}/namespaces/default/rolebindings", grant, ADMIN))[0] == 201
    gina = as_user("gina")
    ssar: dict[str, Any] = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": "default",
                "verb": "create",
                "resource": "deployments",
                "group": "apps",
            }
        },
    }
    code, body = await post(client, f"{AUTHZ_V1}/selfsubjectaccessreviews", ssar, gina)
    assert code == 201
    assert body["status"]["allowed"] is True
    assert (
        body["status"]["reason"]
        == 'RBAC: allowed by RoleBinding "gina-edit/default" of ClusterRole "edit" to User "gina"'
    )
    assert body["metadata"] == {"creationTimestamp": None}
    ssar["spec"]["resourceAttributes"]["namespace"] = "kube-system"
    code, body = await post(client, f"{AUTHZ_V1}/selfsubjectaccessreviews", ssar, gina)
    assert body["status"] == {"allowed": False}
    # SubjectAccessReview: about someone else; needs its own grant
    sar: dict[str, Any] = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": "gina", "nonResourceAttributes": {"path": "/apis", "verb": "get"}},
    }
    assert (await post(client, f"{AUTHZ_V1}/subjectaccessreviews", sar, gina))[0] == 403
    code, body = await post(client, f"{AUTHZ_V1}/subjectaccessreviews", sar, ADMIN)
    assert code == 201 and body["status"]["allowed"] is False  # a bare user, no system:authenticated
    sar["spec"]["groups"] = ["system:authenticated"]
    code, body = await post(client, f"{AUTHZ_V1}/subjectaccessreviews", sar, ADMIN)
    assert body["status"]["allowed"] is True
    bad = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {}}
    code, body = await post(client, f"{AUTHZ_V1}/subjectaccessreviews", bad, ADMIN)
    assert code == 422 and body["reason"] == "Invalid"
    # LocalSubjectAccessReview: admin holds it in the namespace, edit does not
    lsar = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "LocalSubjectAccessReview",
        "metadata": {"namespace": "default"},
        "spec": {
            "user": "gina",
            "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "secrets"},
        },
    }
    assert (await post(client, f"{AUTHZ_V1}/namespaces/default/localsubjectaccessreviews", lsar, gina))[
        0
    ] == 403
    code, body = await post(client, f"{AUTHZ_V1}/namespaces/default/localsubjectaccessreviews", lsar, ADMIN)
    assert code == 201 and body["status"]["allowed"] is True
    # SelfSubjectRulesReview: the rules gina has in default, cluster-wide ones included
    ssrr = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": "default"},
    }
    code, body = await post(client, f"{AUTHZ_V1}/selfsubjectrulesreviews", ssrr, gina)
    assert code == 201
    status = body["status"]
    assert status["incomplete"] is False
    assert {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    } in status["resourceRules"]
    assert any("deployments" in r["resources"] and "create" in r["verbs"] for r in status["resourceRules"])
    assert {
        "verbs": ["get"],
        "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
    } in status["nonResourceRules"]
    # not stored, not gettable
    assert (await client.get(f"{AUTHZ_V1}/selfsubjectaccessreviews", headers=ADMIN)).status == 405
