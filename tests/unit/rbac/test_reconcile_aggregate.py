"""Start-up reconciliation (add what is missing, never remove, respect autoupdate=false) and
ClusterRole aggregation (selected roles' rules in name order, fixed point across layers)."""

from __future__ import annotations

from typing import Any

from controlplane.api.rbac.aggregation import aggregate, aggregate_all
from controlplane.api.rbac.policy import Role
from controlplane.api.rbac.reconcile import reconcile_binding, reconcile_role
from controlplane.api.rbac.rules import rule


def obj(rules: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "r", **meta},
        "rules": rules,
    }


GET_PODS = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
LIST_PODS = {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}


def test_reconcile_role_adds_missing_rules_and_metadata() -> None:
    expected = obj(
        [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}],
        labels={"a": "1"},
        annotations={"x": "y"},
    )
    existing = obj(
        [GET_PODS, {"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}],
        labels={"a": "2", "b": "3"},
    )
    operation, result = reconcile_role(existing, expected)
    assert operation == "update" and result is not None
    assert result["rules"] == [
        GET_PODS,
        {"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]},
        LIST_PODS,
    ]
    assert result["metadata"]["labels"] == {"a": "2", "b": "3"}  # existing values win, nothing removed
    assert result["metadata"]["annotations"] == {"x": "y"}
    assert reconcile_role(result, expected) == ("none", None)


def test_reconcile_role_respects_autoupdate_false() -> None:
    existing = obj([], annotations={"rbac.authorization.kubernetes.io/autoupdate": "false"})
    assert reconcile_role(existing, obj([GET_PODS])) == ("none", None)


def test_reconcile_aggregation_selectors() -> None:
    selector = {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}
    expected = {**obj([]), "aggregationRule": {"clusterRoleSelectors": [selector]}}
    existing = {
        **obj([GET_PODS]),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"mine": "x"}}]},
    }
    operation, result = reconcile_role(existing, expected)
    assert operation == "update" and result is not None
    assert result["aggregationRule"]["clusterRoleSelectors"] == [{"matchLabels": {"mine": "x"}}, selector]
    assert result["rules"] == [GET_PODS]  # aggregated rules are the aggregator's, not removed


def test_reconcile_binding() -> None:
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    group = {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"}
    user = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u"}
    expected: dict[str, Any] = {"metadata": {"name": "b"}, "roleRef": ref, "subjects": [group]}
    existing: dict[str, Any] = {"metadata": {"name": "b"}, "roleRef": ref, "subjects": [user]}
    operation, result = reconcile_binding(existing, expected)
    assert operation == "update" and result is not None and result["subjects"] == [user, group]
    assert reconcile_binding(result, expected) == ("none", None)
    moved = {**existing, "roleRef": dict(ref, name="edit")}
    operation, result = reconcile_binding(moved, expected)
    assert operation == "recreate" and result is not None and result["roleRef"] == ref


def test_aggregation_in_name_order_without_duplicates() -> None:
    label = {"agg": "yes"}
    a = Role("b-role", "", (rule(["get"], groups=[""], resources=["pods"]),), label)
    b = Role(
        "a-role",
        "",
        (rule(["list"], groups=[""], resources=["pods"]), rule(["get"], groups=[""], resources=["pods"])),
        label,
    )
    target = Role("target", "", (), {}, ({"matchLabels": {"agg": "yes"}},))
    assert aggregate(target, [a, b, target]) == (
        rule(["list"], groups=[""], resources=["pods"]),
        rule(["get"], groups=[""], resources=["pods"]),
    )
    # an invalid selector selects nothing; an empty selector list selects nothing
    assert (
        aggregate(Role("t", "", (), {}, ({"matchExpressions": [{"key": "k", "operator": "Bad"}]},)), [a])
        == ()
    )
    assert aggregate(Role("t", "", (), {}, ()), [a]) == ()


def test_aggregation_fixed_point_across_layers() -> None:
    leaf = Role("leaf", "", (rule(["get"], groups=[""], resources=["pods"]),), {"to-mid": "true"})
    mid = Role("mid", "", (), {"to-top": "true"}, ({"matchLabels": {"to-mid": "true"}},))
    top = Role("top", "", (), {}, ({"matchLabels": {"to-top": "true"}},))
    changed = aggregate_all({r.name: r for r in (top, mid, leaf)})
    assert changed["mid"] == leaf.rules and changed["top"] == leaf.rules
    # a role selecting itself does not gather its own rules
    selfish = Role("self", "", (), {"x": "y"}, ({"matchLabels": {"x": "y"}},))
    assert aggregate_all({"self": selfish}) == {}
