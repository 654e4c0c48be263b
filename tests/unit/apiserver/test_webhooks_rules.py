"""Which requests a webhook sees: rules, scope, subresources, selectors, exempt resources,
and reading webhook configurations with the v1 defaults."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import selectors
from controlplane.apiserver.webhooks import match_conditions, rules
from controlplane.apiserver.webhooks.config import Rule, webhooks_of


def rule(**kw: Any) -> Rule:
    base: dict[str, Any] = {
        "operations": ["CREATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods"],
    }
    base.update(kw)
    return Rule.from_dict(base)


def req(
    operation: str = "CREATE",
    group: str = "",
    version: str = "v1",
    resource: str = "pods",
    subresource: str = "",
    namespace: str = "default",
) -> rules.RequestFacts:
    return rules.RequestFacts(operation, group, version, resource, subresource, namespace)


@pytest.mark.parametrize(
    ("the_rule", "request_", "expected"),
    [
        (rule(), req(), True),
        (rule(), req(operation="UPDATE"), False),
        (rule(operations=["*"]), req(operation="UPDATE"), True),
        (rule(), req(group="apps"), False),
        (rule(apiGroups=["*"]), req(group="apps"), True),
        (rule(apiVersions=["v2"]), req(), False),
        (rule(apiVersions=["*"]), req(version="v9"), True),
        (rule(resources=["*"]), req(resource="configmaps"), True),
        # A bare resource never matches its subresources, and `*` alone means no subresource.
        (rule(), req(subresource="status"), False),
        (rule(resources=["*"]), req(subresource="status"), False),
        (rule(resources=["pods/status"]), req(subresource="status"), True),
        (rule(resources=["pods/status"]), req(), False),
        (rule(resources=["pods/*"]), req(subresource="status"), True),
        (rule(resources=["*/status"]), req(resource="deployments", subresource="status"), True),
        (rule(resources=["*/*"]), req(resource="deployments", subresource="scale"), True),
        # `sub == "*"` also holds for no subresource: `*/*` is everything, as upstream's matcher.
        (rule(resources=["*/*"]), req(resource="deployments"), True),
        (rule(resources=["pods/*"]), req(), True),
        (rule(scope="Namespaced"), req(), True),
        (rule(scope="Namespaced"), req(namespace=""), False),
        (rule(scope="Cluster"), req(), False),
        (rule(scope="Cluster", resources=["nodes"]), req(resource="nodes", namespace=""), True),
        # A namespace object is cluster scoped although its attributes carry its own name.
        (rule(scope="Cluster", resources=["namespaces"]), req(resource="namespaces", namespace="team"), True),
        (
            rule(scope="Namespaced", resources=["namespaces"]),
            req(resource="namespaces", namespace="team"),
            False,
        ),
        (rule(scope="*"), req(namespace=""), True),
    ],
)
def test_rule_matching(the_rule: Rule, request_: rules.RequestFacts, expected: bool) -> None:
    assert rules.rule_matches(the_rule, request_) is expected


def test_any_rule_of_a_webhook_is_enough() -> None:
    both = (rule(resources=["configmaps"]), rule(resources=["pods"]))
    assert rules.rules_match(both, req())
    assert not rules.rules_match((), req())


def test_admission_configurations_are_exempt() -> None:
    assert rules.is_exempt("admissionregistration.k8s.io", "validatingwebhookconfigurations")
    assert rules.is_exempt("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
    assert not rules.is_exempt("", "pods")


SELECTOR = selectors.label_selector_from_dict({"matchLabels": {"team": "a"}})
EVERYTHING = selectors.label_selector_from_dict({})


@pytest.mark.parametrize(
    ("facts", "labels", "expected"),
    [
        (req(), {"team": "a"}, True),
        (req(), {"team": "b"}, False),
        (req(), {}, False),
        # Cluster-scoped objects are never exempted by a namespaceSelector...
        (req(resource="nodes", namespace=""), None, True),
        # ...except namespaces themselves, judged on their own labels.
        (req(resource="namespaces", namespace="team"), {"team": "b"}, False),
        (req(resource="namespaces", namespace="team"), {"team": "a"}, True),
    ],
)
def test_namespace_selector(facts: rules.RequestFacts, labels: dict[str, str] | None, expected: bool) -> None:
    assert rules.matches_namespace_labels(SELECTOR, facts, labels) is expected


def test_namespace_labels_are_only_read_when_needed() -> None:
    assert not rules.needs_namespace_labels(EVERYTHING, req())
    assert rules.needs_namespace_labels(SELECTOR, req())
    assert not rules.needs_namespace_labels(SELECTOR, req(resource="nodes", namespace=""))
    assert rules.needs_namespace_labels(SELECTOR, req(resource="namespaces", namespace="x"))


def obj(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "x", "labels": labels}}


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        (obj(team="a"), None, True),
        (obj(team="b"), None, False),
        # The old or the new object: a label removed by an update still matches.
        (obj(), obj(team="a"), True),
        (obj(team="a"), obj(), True),
        (obj(), obj(), False),
    ],
)
def test_object_selector(new: dict[str, Any], old: dict[str, Any] | None, expected: bool) -> None:
    assert rules.matches_object(SELECTOR, new, old) is expected
    assert rules.matches_object(EVERYTHING, new, old)


@given(
    resource=st.sampled_from(["pods", "configmaps", "deployments"]),
    sub=st.sampled_from(["", "status", "scale"]),
)
def test_star_and_star_slash_star(resource: str, sub: str) -> None:
    assert rules.rule_matches(rule(resources=["*/*"]), req(resource=resource, subresource=sub))
    assert rules.rule_matches(rule(resources=["*"]), req(resource=resource, subresource=sub)) == (sub == "")


def test_configuration_defaults() -> None:
    configuration = {
        "metadata": {"name": "cfg"},
        "webhooks": [
            {
                "name": "a.example.com",
                "clientConfig": {"url": "https://example.com"},
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "IfNeeded",
            }
        ],
    }
    (mutating,) = webhooks_of(configuration, "mutating")
    assert mutating.failure_policy == "Fail"
    assert mutating.match_policy == "Equivalent"
    assert mutating.timeout_seconds == 10
    assert mutating.namespace_selector.empty and mutating.object_selector.empty
    assert mutating.reinvocation_policy == "IfNeeded"
    assert mutating.rules[0].scope == "*"
    assert mutating.uid == "cfg/a.example.com/0"
    (validating,) = webhooks_of(configuration, "validating")
    assert validating.reinvocation_policy == "Never"
    assert mutating.supports_dry_run
    unknown = webhooks_of({"metadata": {"name": "c"}, "webhooks": [{"name": "u"}]}, "validating")[0]
    assert unknown.side_effects == "Unknown" and not unknown.supports_dry_run


def test_match_conditions_with_cel() -> None:
    conditions = (
        ("not-system", "!object.metadata.name.startsWith('system-')"),
        ("is-create", "request.operation == 'CREATE'"),
    )
    variables: dict[str, Any] = {
        "object": {"metadata": {"name": "app"}},
        "oldObject": None,
        "request": {"operation": "CREATE"},
    }
    assert match_conditions.evaluate(conditions, variables)
    variables["object"] = {"metadata": {"name": "system-x"}}
    assert not match_conditions.evaluate(conditions, variables)
    with pytest.raises(match_conditions.MatchConditionError):
        match_conditions.evaluate((("broken", "object.spec.missing == 1"),), {"object": {}})
    # A definite false wins over an error in another condition.
    assert not match_conditions.evaluate(
        (("broken", "object.spec.missing == 1"), ("no", "false")), {"object": {}}
    )
