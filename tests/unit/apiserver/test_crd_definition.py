"""The CRD object: defaults, strategy, validation and deletion marking, as upstream's apiextensions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.apiserver.crd import definition


def crd(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "group": "stable.example.com",
        "scope": "Namespaced",
        "names": {"plural": "crontabs", "kind": "CronTab"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object"}},
            }
        ],
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": spec,
    }


def messages(causes: list[errors.Cause]) -> list[str]:
    return [f"{c.field}: {c.message}" for c in causes]


def test_defaults_singular_list_kind_and_conversion() -> None:
    obj = crd()
    definition.prepare_for_create(obj)
    assert obj["spec"]["names"] == {
        "plural": "crontabs",
        "kind": "CronTab",
        "singular": "crontab",
        "listKind": "CronTabList",
    }
    assert obj["spec"]["conversion"] == {"strategy": "None"}
    assert "preserveUnknownFields" not in obj["spec"]  # false is the v1 zero value, omitted
    assert obj["status"] == {"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": ["v1"]}


def test_webhook_service_port_defaults_to_443() -> None:
    obj = crd(
        conversion={
            "strategy": "Webhook",
            "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {"service": {"name": "conv", "namespace": "default"}},
            },
        }
    )
    definition.default_crd(obj)
    assert obj["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 443
    assert definition.validate_crd(obj) == []


def test_a_new_storage_version_is_recorded_on_update() -> None:
    old = crd()
    definition.prepare_for_create(old)
    new = copy.deepcopy(old)
    new["status"] = {"storedVersions": ["bogus"]}  # a main-resource write cannot change status
    new["spec"]["versions"] = [
        {**old["spec"]["versions"][0], "storage": False},
        {"name": "v2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}},
    ]
    definition.prepare_for_update(new, old)
    assert new["status"]["storedVersions"] == ["v1", "v2"]
    assert definition.validate_crd(new, old) == []


def test_a_valid_crd_has_no_errors() -> None:
    obj = crd()
    definition.prepare_for_create(obj)
    assert definition.validate_crd(obj) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda o: o["metadata"].update(name="wrong.stable.example.com"),
            'metadata.name: Invalid value: "wrong.stable.example.com": must be spec.names.plural+"."+spec.group',
        ),
        (
            lambda o: o["spec"].update(group="example"),
            'spec.group: Invalid value: "example": should be a domain with at least one dot',
        ),
        (
            lambda o: o["spec"].update(scope="Global"),
            'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"',
        ),
        (
            lambda o: o["spec"]["versions"][0].update(storage=False),
            'spec.versions: Invalid value: ["v1"]: must have exactly one version marked as storage version',
        ),
        (
            lambda o: o["spec"]["versions"][0].pop("schema"),
            "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
        ),
        (
            lambda o: o["spec"]["names"].update(listKind="CronTab"),
            'spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same',
        ),
        (
            lambda o: o["spec"].update(preserveUnknownFields=True),
            "spec.preserveUnknownFields: Invalid value: true: cannot set to true, set "
            "x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ),
        (
            lambda o: o["spec"]["versions"][0].update(
                subresources={"scale": {"specReplicasPath": ".replicas", "statusReplicasPath": ".status.r"}}
            ),
            # One version: converting to the internal form moves its subresources to the top level.
            'spec.subresources.scale.specReplicasPath: Invalid value: ".replicas": '
            "should be a json path under .spec",
        ),
        (
            lambda o: o["spec"]["versions"][0].update(
                additionalPrinterColumns=[{"name": "X", "type": "float", "jsonPath": ".spec.x"}]
            ),
            'spec.additionalPrinterColumns[0].type: Unsupported value: "float": supported '
            'values: "integer", "number", "string", "boolean", "date"',
        ),
        (
            lambda o: o["spec"].update(conversion={"strategy": "Webhook"}),
            "spec.conversion.webhook: Required value: required when strategy is set to Webhook",
        ),
    ],
)
def test_invalid_crds_are_refused_with_upstream_wording(change: Any, expected: str) -> None:
    obj = crd()
    definition.prepare_for_create(obj)
    change(obj)
    assert expected in messages(definition.validate_crd(obj))


def test_schema_errors_name_the_version_only_when_versions_differ() -> None:
    bad = {"openAPIV3Schema": {"type": "thing"}}
    same = crd()
    same["spec"]["versions"] = [
        {"name": "v1", "served": True, "storage": True, "schema": bad},
        {"name": "v2", "served": True, "storage": False, "schema": bad},
    ]
    definition.prepare_for_create(same)
    shown = messages(definition.validate_crd(same))
    assert [m for m in shown if ".type: Unsupported value" in m] == [
        'spec.validation.openAPIV3Schema.type: Unsupported value: "thing": supported values: "array", '
        '"boolean", "integer", "number", "object", "string"'
    ]
    differing = crd()
    differing["spec"]["versions"] = [
        {"name": "v1", "served": True, "storage": True, "schema": bad},
        {"name": "v2", "served": True, "storage": False, "schema": {"openAPIV3Schema": {"type": "object"}}},
    ]
    definition.prepare_for_create(differing)
    shown = messages(definition.validate_crd(differing))
    assert any(m.startswith("spec.versions[0].schema.openAPIV3Schema.type: Unsupported value") for m in shown)
    assert not any(m.startswith("spec.versions[1]") or m.startswith("spec.validation") for m in shown)


def test_group_and_scope_are_immutable() -> None:
    old = crd()
    definition.prepare_for_create(old)
    new = copy.deepcopy(old)
    new["spec"]["scope"] = "Cluster"
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in messages(
        definition.validate_crd(new, old)
    )


def test_first_delete_marks_the_crd_terminating_with_the_cleanup_finalizer() -> None:
    obj = crd()
    marked = definition.mark_for_deletion(obj, "2026-01-01T00:00:00Z")
    assert obj["metadata"].get("finalizers") is None  # the input is not touched
    assert marked["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    assert marked["metadata"]["deletionTimestamp"] == "2026-01-01T00:00:00Z"
    assert definition.condition(marked, "Terminating") == {
        "type": "Terminating",
        "status": "True",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "reason": "InstanceDeletionPending",
        "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    }


def test_condition_transition_time_moves_only_with_the_status() -> None:
    obj: dict[str, Any] = {}
    cond = {"type": "Established", "status": "True", "reason": "A", "message": "a"}
    definition.set_condition(obj, cond, "t1")
    definition.set_condition(obj, {**cond, "reason": "B"}, "t2")
    assert definition.condition(obj, "Established") == {**cond, "reason": "B", "lastTransitionTime": "t1"}
    definition.set_condition(obj, {**cond, "status": "False"}, "t3")
    assert definition.condition(obj, "Established")["lastTransitionTime"] == "t3"  # type: ignore[index]
