"""The operator's bootstrap RBAC: what its reconcilers do is allowed, little else is."""

from __future__ import annotations

from controlplane.api.rbac.bootstrap_policy import (
    cluster_role_binding_objects,
    cluster_role_objects,
    role_binding_objects,
    role_objects,
)
from controlplane.api.rbac.policy import binding_from_dict, role_from_dict
from controlplane.api.rbac.resolver import PolicySnapshot, RuleResolver
from controlplane.api.rbac.rules import Request
from controlplane.apiserver.authn import UserInfo

GROUP = "infra.pinnace.dev"
RBAC = "rbac.authorization.k8s.io"
RESOLVER = RuleResolver(
    PolicySnapshot.of(
        cluster_roles=[role_from_dict(o) for o in cluster_role_objects()],
        roles=[role_from_dict(o) for o in role_objects()],
        bindings=[binding_from_dict(o) for o in role_binding_objects()],
        cluster_bindings=[binding_from_dict(o) for o in cluster_role_binding_objects()],
    )
)
PROVISIONER = UserInfo("system:pinnace-provisioner", groups=("system:authenticated",))


def allowed(
    verb: str, resource: str, group: str = "", *, sub: str = "", ns: str = "", name: str = ""
) -> bool:
    request = Request(verb=verb, api_group=group, resource=resource, subresource=sub, name=name, namespace=ns)
    return RESOLVER.authorize(PROVISIONER, request).allowed


def test_what_the_operator_does_is_allowed() -> None:
    assert allowed("watch", "nodepools", GROUP)
    assert allowed("patch", "nodepools", GROUP, sub="status")
    for verb in ("create", "patch", "delete", "list", "watch"):
        assert allowed(verb, "machines", GROUP)
    assert allowed("patch", "machines", GROUP, sub="status")
    assert allowed("patch", "nodes") and allowed("delete", "nodes") and allowed("watch", "nodes")
    assert allowed("list", "pods") and allowed("create", "pods", sub="eviction", ns="web")
    assert allowed("create", "secrets", ns="kube-system") and allowed("delete", "secrets", ns="kube-system")
    assert allowed("update", "leases", "coordination.k8s.io", ns="kube-system", name="pinnace-provisioner")
    assert allowed("create", "clusterroles", RBAC) and allowed("patch", "clusterrolebindings", RBAC)
    assert allowed("watch", "customresourcedefinitions", "apiextensions.k8s.io")
    assert allowed("create", "events", ns="default")


def test_and_not_much_more() -> None:
    assert not allowed("get", "secrets", ns="default")
    assert not allowed("list", "secrets", ns="kube-system")
    assert not allowed("delete", "pods", ns="web")
    assert not allowed("create", "customresourcedefinitions", "apiextensions.k8s.io")
    assert not allowed("update", "nodepools", GROUP)
    assert not allowed("escalate", "clusterroles", RBAC)
    assert not allowed("bind", "clusterroles", RBAC)
    assert not allowed("create", "leases", "coordination.k8s.io", ns="default")
