"""The audit policy checker, with upstream's matching semantics (policy/checker.go)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.apiserver.audit_policy import (
    Policy,
    PolicyError,
    load_policy_file,
    parse_policy,
)
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import Attributes

ALICE = UserInfo(name="alice", groups=("devs", "system:authenticated"))


def attrs(
    verb: str = "get",
    *,
    user: UserInfo = ALICE,
    group: str = "",
    resource: str = "pods",
    subresource: str = "",
    namespace: str = "default",
    name: str = "",
    path: str = "",
) -> Attributes:
    if path:
        return Attributes(user=user, verb=verb, path=path, resource_request=False)
    return Attributes(
        user=user,
        verb=verb,
        api_group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
        resource_request=True,
    )


def policy(*rules: dict[str, Any], **top: Any) -> Policy:
    return parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **top})


def test_first_matching_rule_wins_and_no_rule_is_none() -> None:
    p = policy({"level": "Metadata", "verbs": ["get"]}, {"level": "RequestResponse"})
    assert p.evaluate(attrs("get")).level == "Metadata"
    assert p.evaluate(attrs("list")).level == "RequestResponse"
    assert policy({"level": "Metadata", "users": ["bob"]}).evaluate(attrs()).level == "None"


def test_users_groups_and_verbs() -> None:
    assert policy({"level": "Request", "users": ["alice"]}).evaluate(attrs()).level == "Request"
    assert policy({"level": "Request", "userGroups": ["devs"]}).evaluate(attrs()).level == "Request"
    assert policy({"level": "Request", "userGroups": ["ops"]}).evaluate(attrs()).level == "None"
    assert policy({"level": "Request", "verbs": ["watch"]}).evaluate(attrs("get")).level == "None"


def test_resources_subresources_and_names() -> None:
    rule = {"level": "Request", "resources": [{"group": "", "resources": ["pods"]}]}
    assert policy(rule).evaluate(attrs()).level == "Request"
    # `pods` does not cover `pods/log`: upstream matches the combined name.
    assert policy(rule).evaluate(attrs(subresource="log")).level == "None"
    star_sub = {"level": "Request", "resources": [{"resources": ["*/status"]}]}
    assert policy(star_sub).evaluate(attrs(resource="deployments", subresource="status")).level == "Request"
    assert policy(star_sub).evaluate(attrs(resource="deployments")).level == "None"
    res_star = {"level": "Request", "resources": [{"resources": ["pods/*"]}]}
    assert policy(res_star).evaluate(attrs(subresource="exec")).level == "Request"
    named = {"level": "Request", "resources": [{"resources": ["configmaps"], "resourceNames": ["cm1"]}]}
    assert policy(named).evaluate(attrs(resource="configmaps", name="cm1")).level == "Request"
    assert policy(named).evaluate(attrs(resource="configmaps", name="cm2")).level == "None"
    whole_group = {"level": "Request", "resources": [{"group": "apps"}]}
    assert policy(whole_group).evaluate(attrs(group="apps", resource="deployments")).level == "Request"
    assert policy(whole_group).evaluate(attrs()).level == "None"


def test_namespaces_match_cluster_scope_with_empty_string() -> None:
    rule = {"level": "Metadata", "namespaces": [""]}
    assert policy(rule).evaluate(attrs(resource="nodes", namespace="")).level == "Metadata"
    assert policy(rule).evaluate(attrs()).level == "None"
    # A resource rule never matches a non-resource request.
    assert (
        policy({"level": "Metadata", "namespaces": ["default"]}).evaluate(attrs(path="/healthz")).level
        == "None"
    )


def test_non_resource_urls() -> None:
    p = policy({"level": "None", "nonResourceURLs": ["/healthz*", "/version"]}, {"level": "Metadata"})
    assert p.evaluate(attrs(path="/healthz/etcd")).level == "None"
    assert p.evaluate(attrs(path="/version")).level == "None"
    assert p.evaluate(attrs(path="/metrics")).level == "Metadata"
    # Non-resource rules never match resource requests.
    assert policy({"level": "Metadata", "nonResourceURLs": ["*"]}).evaluate(attrs()).level == "None"


def test_omit_stages_union_and_managed_fields() -> None:
    p = policy(
        {
            "level": "Metadata",
            "verbs": ["get"],
            "omitStages": ["ResponseComplete"],
            "omitManagedFields": False,
        },
        {"level": "Request"},
        omitStages=["RequestReceived"],
        omitManagedFields=True,
    )
    got = p.evaluate(attrs("get"))
    assert got.omit_stages == {"RequestReceived", "ResponseComplete"}
    assert got.omit_managed_fields is False
    other = p.evaluate(attrs("list"))
    assert other.omit_stages == {"RequestReceived"} and other.omit_managed_fields is True
    assert policy({"level": "None", "verbs": ["x"]}, omitStages=["Panic"]).evaluate(attrs()).omit_stages == {
        "Panic"
    }


@pytest.mark.parametrize(
    "doc",
    [
        {"apiVersion": "audit.k8s.io/v1beta1", "kind": "Policy", "rules": []},
        {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Everything"}]},
        {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "rules": [{"level": "None", "omitStages": ["Done"]}],
        },
        {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}],
        },
        {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "users": "alice"}]},
    ],
)
def test_invalid_policies_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        parse_policy(doc)


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    assert load_policy_file(path).evaluate(attrs()).level == "Metadata"
    path.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\n")
    with pytest.raises(PolicyError, match="0 rules"):
        load_policy_file(path)


names = st.sampled_from(["pods", "pods/log", "*", "*/status", "pods/*", "configmaps", "*/log"])


@given(
    resources=st.lists(names, max_size=3),
    resource=st.sampled_from(["pods", "configmaps", "deployments"]),
    sub=st.sampled_from(["", "log", "status"]),
)
def test_resource_match_agrees_with_a_direct_reading(resources: list[str], resource: str, sub: str) -> None:
    """A model of upstream's ruleMatchesResource for the single-group case."""
    p = policy({"level": "Request", "resources": [{"resources": resources}]})
    combined = f"{resource}/{sub}" if sub else resource
    expected = not resources or any(
        r in (combined, "*") or (sub and r == f"*/{sub}") or r == f"{resource}/*" for r in resources
    )
    assert (p.evaluate(attrs(resource=resource, subresource=sub)).level == "Request") == expected
