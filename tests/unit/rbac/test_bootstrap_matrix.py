"""Done-when 1: each built-in role against a set of requests, allowed or denied as upstream's
default roles decide (the user-facing roles bound in a namespace by a RoleBinding, the system
roles cluster-wide by their bootstrap ClusterRoleBinding), with aggregation applied."""

from __future__ import annotations

import pytest

from controlplane.api.rbac.aggregation import aggregate_all
from controlplane.api.rbac.bootstrap_policy import (
    AUTOUPDATE_ANNOTATION,
    BOOTSTRAPPING_LABEL,
    cluster_role_binding_objects,
    cluster_role_objects,
    role_binding_objects,
    role_objects,
)
from controlplane.api.rbac.policy import Binding, Role, RoleRef, Subject, binding_from_dict, role_from_dict
from controlplane.api.rbac.resolver import PolicySnapshot, RuleResolver
from controlplane.api.rbac.rules import Request
from controlplane.apiserver.authn import UserInfo

NS = "team"


def _cluster_roles() -> dict[str, Role]:
    roles = {o["metadata"]["name"]: role_from_dict(o) for o in cluster_role_objects()}
    for name, rules in aggregate_all(roles).items():
        r = roles[name]
        roles[name] = Role(r.name, r.namespace, rules, r.labels, r.aggregation_selectors)
    return roles


CLUSTER_ROLES = _cluster_roles()
BOOTSTRAP_BINDINGS = [binding_from_dict(o) for o in cluster_role_binding_objects()]
NAMESPACE_ROLES = [role_from_dict(o) for o in role_objects()]
NAMESPACE_BINDINGS = [binding_from_dict(o) for o in role_binding_objects()]


def resolver_with(role: str, *, namespaced: bool) -> tuple[RuleResolver, UserInfo]:
    """A resolver over the whole bootstrap policy plus one binding of `role` to user `u`."""
    # in no group: only the one binding applies (the bootstrap bindings are for groups)
    user = UserInfo("u")
    extra = Binding(
        f"{role}-u",
        NS if namespaced else "",
        RoleRef("rbac.authorization.k8s.io", "ClusterRole", role),
        (Subject("User", "u"),),
    )
    snapshot = PolicySnapshot.of(
        cluster_roles=CLUSTER_ROLES.values(),
        bindings=[extra] if namespaced else [],
        cluster_bindings=[*BOOTSTRAP_BINDINGS, *([] if namespaced else [extra])],
    )
    return RuleResolver(snapshot), user


def r(verb: str, resource: str, group: str = "", *, sub: str = "", name: str = "", ns: str = NS) -> Request:
    return Request(verb=verb, api_group=group, resource=resource, subresource=sub, name=name, namespace=ns)


def u(verb: str, path: str) -> Request:
    return Request(verb=verb, resource_request=False, path=path)


RBAC = "rbac.authorization.k8s.io"
# (description, request, {role: allowed}) for the namespaced user-facing roles, as the upstream
# documentation of the default user-facing roles describes them.
USER_FACING: list[tuple[Request, dict[str, bool]]] = [
    (r("get", "pods"), {"view": True, "edit": True, "admin": True}),
    (r("create", "pods"), {"view": False, "edit": True, "admin": True}),
    (r("delete", "deployments", "apps"), {"view": False, "edit": True, "admin": True}),
    (r("get", "secrets"), {"view": False, "edit": True, "admin": True}),
    (r("list", "secrets"), {"view": False, "edit": True, "admin": True}),
    (r("create", "roles", RBAC), {"view": False, "edit": False, "admin": True}),
    (r("create", "rolebindings", RBAC), {"view": False, "edit": False, "admin": True}),
    (r("get", "roles", RBAC), {"view": False, "edit": False, "admin": True}),
    (r("update", "resourcequotas"), {"view": False, "edit": False, "admin": False}),
    (r("get", "resourcequotas"), {"view": True, "edit": True, "admin": True}),
    (r("create", "pods", sub="exec"), {"view": False, "edit": True, "admin": True}),
    (r("get", "pods", sub="log"), {"view": True, "edit": True, "admin": True}),
    (r("patch", "deployments", "apps", sub="scale"), {"view": False, "edit": True, "admin": True}),
    (r("get", "deployments", "apps", sub="scale"), {"view": True, "edit": True, "admin": True}),
    (r("create", "serviceaccounts", sub="token"), {"view": False, "edit": True, "admin": True}),
    (
        r("create", "localsubjectaccessreviews", "authorization.k8s.io"),
        {"view": False, "edit": False, "admin": True},
    ),
    (r("impersonate", "serviceaccounts"), {"view": False, "edit": True, "admin": True}),
    (r("update", "pods", sub="status"), {"view": False, "edit": False, "admin": False}),
    (r("create", "leases", "coordination.k8s.io"), {"view": False, "edit": True, "admin": True}),
    (r("get", "leases", "coordination.k8s.io"), {"view": False, "edit": True, "admin": True}),
    (r("watch", "endpointslices", "discovery.k8s.io"), {"view": True, "edit": True, "admin": True}),
    (r("delete", "namespaces", name=NS), {"view": False, "edit": False, "admin": False}),
    (r("get", "namespaces", name=NS), {"view": True, "edit": True, "admin": True}),
    (r("create", "networkpolicies", "networking.k8s.io"), {"view": False, "edit": True, "admin": True}),
    (r("escalate", "roles", RBAC), {"view": False, "edit": False, "admin": False}),
    (r("bind", "roles", RBAC), {"view": False, "edit": False, "admin": False}),
    # bound in one namespace: nothing in another, nothing cluster-scoped
    (r("get", "pods", ns="other"), {"view": False, "edit": False, "admin": False}),
    (r("list", "nodes", ns=""), {"view": False, "edit": False, "admin": False}),
    (r("get", "clusterroles", RBAC, ns=""), {"view": False, "edit": False, "admin": False}),
]


@pytest.mark.parametrize("role", ["view", "edit", "admin"])
@pytest.mark.parametrize(("request_", "expected"), USER_FACING)
def test_user_facing_roles(role: str, request_: Request, expected: dict[str, bool]) -> None:
    resolver, user = resolver_with(role, namespaced=True)
    assert resolver.authorize(user, request_).allowed is expected[role]


def test_cluster_admin_everything() -> None:
    resolver, user = resolver_with("cluster-admin", namespaced=False)
    for req in (
        r("delete", "nodes", ns=""),
        r("escalate", "clusterroles", RBAC, ns=""),
        u("get", "/metrics"),
        u("post", "/x"),
    ):
        decision = resolver.authorize(user, req)
        assert decision.allowed
        assert (
            decision.reason
            == 'RBAC: allowed by ClusterRoleBinding "cluster-admin-u" of ClusterRole "cluster-admin" to User "u"'
        )


SYSTEM: list[tuple[str, Request, bool]] = [
    ("system:basic-user", r("create", "selfsubjectaccessreviews", "authorization.k8s.io", ns=""), True),
    ("system:basic-user", r("create", "selfsubjectrulesreviews", "authorization.k8s.io", ns=""), True),
    ("system:basic-user", r("create", "subjectaccessreviews", "authorization.k8s.io", ns=""), False),
    ("system:discovery", u("get", "/apis/apps/v1"), True),
    ("system:discovery", u("get", "/openapi/v3"), True),
    ("system:discovery", u("get", "/metrics"), False),
    ("system:discovery", u("post", "/api"), False),
    ("system:public-info-viewer", u("get", "/version"), True),
    ("system:public-info-viewer", u("get", "/healthz"), True),
    ("system:public-info-viewer", u("get", "/api"), False),
    ("system:monitoring", u("get", "/metrics"), True),
    ("system:monitoring", u("get", "/livez/ping"), True),
    ("system:monitoring", u("get", "/api"), False),
    ("system:kube-scheduler", r("create", "pods", sub="binding"), True),
    ("system:kube-scheduler", r("patch", "pods", sub="status"), True),
    ("system:kube-scheduler", r("delete", "pods"), True),
    ("system:kube-scheduler", r("create", "pods"), False),
    ("system:kube-scheduler", r("list", "nodes", ns=""), True),
    ("system:kube-scheduler", r("update", "nodes", ns="", name="n1"), False),
    (
        "system:kube-scheduler",
        r("update", "leases", "coordination.k8s.io", name="kube-scheduler", ns="kube-system"),
        True,
    ),
    (
        "system:kube-scheduler",
        r("update", "leases", "coordination.k8s.io", name="kube-controller-manager", ns="kube-system"),
        False,
    ),
    ("system:kube-controller-manager", r("list", "customthings", "example.com"), True),
    ("system:kube-controller-manager", r("create", "secrets"), True),
    (
        "system:kube-controller-manager",
        r("get", "leases", "coordination.k8s.io", name="kube-controller-manager"),
        True,
    ),
    (
        "system:kube-controller-manager",
        r("update", "leases", "coordination.k8s.io", name="kube-scheduler"),
        False,
    ),
    ("system:node", r("get", "secrets", name="s"), True),
    ("system:node", r("update", "nodes", sub="status", ns="", name="n1"), True),
    ("system:node", r("create", "pods", sub="eviction"), True),
    ("system:node", r("delete", "nodes", ns="", name="n1"), False),
    ("system:node", r("create", "certificatesigningrequests", "certificates.k8s.io", ns=""), True),
    ("system:node", r("create", "secrets"), False),
    ("system:node-proxier", r("list", "endpointslices", "discovery.k8s.io"), True),
    ("system:node-proxier", r("watch", "services"), True),
    ("system:node-proxier", r("create", "services"), False),
    (
        "system:node-bootstrapper",
        r("create", "certificatesigningrequests", "certificates.k8s.io", ns=""),
        True,
    ),
    (
        "system:node-bootstrapper",
        r("delete", "certificatesigningrequests", "certificates.k8s.io", ns=""),
        False,
    ),
    (
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        r("create", "certificatesigningrequests", "certificates.k8s.io", sub="nodeclient", ns=""),
        True,
    ),
    (
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        r("create", "certificatesigningrequests", "certificates.k8s.io", sub="nodeclient", ns=""),
        False,
    ),
    ("system:auth-delegator", r("create", "tokenreviews", "authentication.k8s.io", ns=""), True),
    ("system:auth-delegator", r("create", "subjectaccessreviews", "authorization.k8s.io", ns=""), True),
    ("system:auth-delegator", r("create", "selfsubjectaccessreviews", "authorization.k8s.io", ns=""), False),
    ("system:kube-dns", r("list", "endpoints"), True),
    ("system:kube-dns", r("get", "endpoints", name="e"), False),
    ("system:volume-scheduler", r("update", "persistentvolumes", ns=""), True),
    ("system:volume-scheduler", r("delete", "persistentvolumes", ns=""), False),
    ("system:cloud-controller-manager", r("delete", "nodes", ns=""), True),
    ("system:cloud-controller-manager", r("patch", "services", sub="status"), True),
    ("system:cloud-controller-manager", r("delete", "pods"), False),
]


@pytest.mark.parametrize(("role", "request_", "expected"), SYSTEM)
def test_system_roles(role: str, request_: Request, expected: bool) -> None:
    resolver, user = resolver_with(role, namespaced=False)
    decision = resolver.authorize(user, request_)
    assert decision.allowed is expected


def test_bootstrap_bindings_alone() -> None:
    """What the bootstrap bindings themselves give: authenticated users discovery and the self
    reviews; the component users their roles; nobody anything else."""
    resolver = RuleResolver(
        PolicySnapshot.of(NAMESPACE_ROLES, CLUSTER_ROLES.values(), NAMESPACE_BINDINGS, BOOTSTRAP_BINDINGS)
    )
    anyone = UserInfo("someone", groups=("system:authenticated",))
    anonymous = UserInfo("system:anonymous", groups=("system:unauthenticated",))
    assert resolver.authorize(anyone, u("get", "/apis")).allowed
    assert resolver.authorize(
        anyone, r("create", "selfsubjectaccessreviews", "authorization.k8s.io", ns="")
    ).allowed
    assert not resolver.authorize(anyone, r("get", "pods")).allowed
    assert resolver.authorize(anonymous, u("get", "/version")).allowed
    assert not resolver.authorize(anonymous, u("get", "/api")).allowed
    masters = UserInfo("root", groups=("system:masters",))
    assert resolver.authorize(masters, r("delete", "nodes", ns="")).allowed
    # system:node is bound to no one, as upstream: nodes get their rights from the Node
    # authorizer; RBAC alone gives a node only what every authenticated user has, plus the
    # kubeadm binding that lets it renew its own client certificate.
    node = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
    assert not resolver.authorize(node, r("update", "nodes", sub="status", ns="", name="n1")).allowed
    assert resolver.authorize(
        node, r("create", "certificatesigningrequests", "certificates.k8s.io", sub="selfnodeclient", ns="")
    ).allowed
    scheduler = UserInfo("system:kube-scheduler", groups=("system:authenticated",))
    assert resolver.authorize(scheduler, r("create", "pods", sub="binding")).allowed
    assert resolver.authorize(
        scheduler, r("update", "persistentvolumes", ns="", name="pv")
    ).allowed  # volume-scheduler
    assert not resolver.authorize(scheduler, r("update", "deployments", "apps")).allowed
    cm = UserInfo("system:kube-controller-manager", groups=("system:authenticated",))
    # the controllers' roles bound to the controller manager's single identity
    assert resolver.authorize(cm, r("create", "pods")).allowed
    assert resolver.authorize(cm, r("update", "deployments", "apps", sub="status")).allowed
    assert resolver.authorize(cm, r("delete", "configmaps", name="x")).allowed  # garbage collector
    assert not resolver.authorize(cm, r("create", "clusterrolebindings", RBAC, ns="")).allowed
    assert not resolver.authorize(cm, r("create", "pods", sub="exec")).allowed
    # namespaced bootstrap roles: leader locking in kube-system, the token cleaner's secrets
    leases = r("list", "leases", "coordination.k8s.io", ns="kube-system")
    assert resolver.authorize(cm, leases).allowed and resolver.authorize(scheduler, leases).allowed
    assert not resolver.authorize(scheduler, r("list", "leases", "coordination.k8s.io", ns="default")).allowed
    assert resolver.authorize(cm, r("update", "configmaps", name="cluster-info", ns="kube-public")).allowed
    assert not resolver.authorize(
        scheduler, r("update", "configmaps", name="cluster-info", ns="kube-public")
    ).allowed
    sa = UserInfo(
        "system:serviceaccount:kube-system:kube-dns",
        groups=("system:serviceaccounts", "system:serviceaccounts:kube-system"),
    )
    assert resolver.authorize(sa, r("list", "services")).allowed
    assert resolver.authorize(sa, u("get", "/openid/v1/jwks")).allowed  # service-account-issuer-discovery


def test_bootstrap_objects_carry_upstream_markers() -> None:
    for obj in cluster_role_objects() + cluster_role_binding_objects():
        meta = obj["metadata"]
        assert meta["labels"].items() >= BOOTSTRAPPING_LABEL.items()
        assert meta["annotations"][AUTOUPDATE_ANNOTATION] == "true"
    names = {o["metadata"]["name"] for o in cluster_role_objects()}
    assert {
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:node-bootstrapper",
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:node",
        "system:node-proxier",
        "system:kube-dns",
        "system:monitoring",
        "system:volume-scheduler",
        "system:auth-delegator",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "system:cloud-controller-manager",
    } <= names


def test_aggregation_layers() -> None:
    """view ⊂ edit ⊂ admin through the aggregate-to labels, as upstream's roles nest."""
    view, edit, admin = (set(CLUSTER_ROLES[n].rules) for n in ("view", "edit", "admin"))
    assert view and view < edit < admin
    assert set(CLUSTER_ROLES["system:aggregate-to-view"].rules) == view
