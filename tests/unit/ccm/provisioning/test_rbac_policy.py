"""The operator's bootstrap RBAC: what its reconcilers do is allowed, little else is."""

from __future__ import annotations

from tests.unit.rbac.bootstrap_resolver import bootstrap_policy_allows

GROUP = "infra.pinnace.dev"
RBAC = "rbac.authorization.k8s.io"


def allowed(
    verb: str, resource: str, group: str = "", *, sub: str = "", ns: str = "", name: str = ""
) -> bool:
    return bootstrap_policy_allows(
        "system:pinnace-provisioner", verb, resource, group, sub=sub, ns=ns, name=name
    )


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
