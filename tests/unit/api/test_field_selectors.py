"""Per-resource field selector support and field extraction."""

from __future__ import annotations

import pytest

from controlplane.api import errors
from controlplane.api.field_selectors import (
    check_supported,
    convert_field_selector,
    object_fields,
    supported_fields,
)
from controlplane.api.selectors import FieldRequirement, parse_field_selector


def test_every_resource_supports_name_and_namespace() -> None:
    assert {"metadata.name", "metadata.namespace"} <= supported_fields("", "configmaps")
    check_supported("apps", "deployments", parse_field_selector("metadata.name=d1,metadata.namespace!=x"))


def test_pod_fields_and_the_spec_host_alias() -> None:
    assert "spec.nodeName" in supported_fields("", "pods")
    converted = convert_field_selector("", "pods", parse_field_selector("spec.host=n1"))
    assert converted.requirements == (FieldRequirement("spec.nodeName", "=", "n1"),)


@pytest.mark.parametrize(
    ("group", "plural", "selector", "message"),
    [
        ("", "pods", "spec.bogus=1", "field label not supported: spec.bogus"),
        ("", "nodes", "metadata.namespace=x", "field label not supported: metadata.namespace"),
        ("batch", "jobs", "spec.x=1", 'field label "spec.x" not supported for Job'),
        (
            "",
            "configmaps",
            "data.x=1",
            '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
    ],
)
def test_unsupported_fields_are_rejected_with_upstream_wording(
    group: str, plural: str, selector: str, message: str
) -> None:
    with pytest.raises(errors.BadRequest) as exc:
        check_supported(group, plural, parse_field_selector(selector))
    assert exc.value.message == message


def test_pod_object_fields() -> None:
    pod = {
        "metadata": {"name": "p1", "namespace": "ns"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "hostNetwork": True},
        "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.1"}]},
    }
    fields = object_fields("", "pods", pod)
    assert fields["metadata.name"] == "p1"
    assert fields["metadata.namespace"] == "ns"
    assert fields["spec.nodeName"] == "n1"
    assert fields["spec.hostNetwork"] == "true"
    assert fields["status.podIP"] == "10.0.0.1"
    assert fields["spec.schedulerName"] == ""
    assert parse_field_selector("spec.nodeName=n1,status.phase=Running").matches(fields)


def test_other_kinds() -> None:
    assert object_fields("", "nodes", {"metadata": {"name": "n"}, "spec": {}}) == {
        "metadata.name": "n",
        "spec.unschedulable": "false",
    }
    assert object_fields("", "secrets", {"metadata": {"name": "s"}, "type": "Opaque"})["type"] == "Opaque"
    assert (
        object_fields("batch", "jobs", {"metadata": {}, "status": {"succeeded": 2}})["status.successful"]
        == "2"
    )
    assert object_fields("apps", "replicasets", {"metadata": {}})["status.replicas"] == "0"
    event = {
        "metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p1", "uid": "u"},
        "reason": "Scheduled",
        "reportingComponent": "default-scheduler",
        "type": "Normal",
    }
    fields = object_fields("", "events", event)
    assert fields["involvedObject.kind"] == "Pod"
    assert fields["source"] == "default-scheduler"
    v1_event = {"metadata": {"name": "e"}, "regarding": {"name": "p1"}, "reportingController": "kubelet"}
    fields = object_fields("events.k8s.io", "events", v1_event)
    assert fields["involvedObject.name"] == "p1"
    assert fields["reportingComponent"] == "kubelet"
