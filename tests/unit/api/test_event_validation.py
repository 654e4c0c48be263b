"""Event validation through either group (pkg/apis/core/validation/events.go): upstream's
field paths and messages, legacy rules for core/v1, strict ones for events.k8s.io/v1."""

from __future__ import annotations

from typing import Any

from controlplane.api import event_versions
from controlplane.api.errors import Cause
from controlplane.api.resources import default_registry
from controlplane.api.validation import validate

REGISTRY = default_registry()
CORE = REGISTRY.get("", "v1", "events")
NEW = REGISTRY.get("events.k8s.io", "v1", "events")
assert CORE is not None and NEW is not None


def causes(
    obj: dict[str, Any], *, new: bool = False, old: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    info = NEW if new else CORE
    assert info is not None
    return [(c.field, c.message) for c in validate(info, obj, old)]


def legacy_event(namespace: str = "ns", involved_namespace: str = "ns") -> dict[str, Any]:
    """What client-go's legacy recorder posts: no eventTime."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "pod.1", "namespace": namespace},
        "involvedObject": {"kind": "Pod", "name": "pod", "namespace": involved_namespace},
        "reason": "Scheduled",
        "message": "assigned",
        "source": {"component": "default-scheduler"},
        "count": 1,
        "type": "Normal",
    }


def new_event(**changes: Any) -> dict[str, Any]:
    """What an events.k8s.io/v1 recorder posts."""
    event: dict[str, Any] = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "pod.2", "namespace": "ns"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-node-1",
        "action": "Binding",
        "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "pod", "namespace": "ns"},
        "note": "assigned",
        "type": "Normal",
    }
    event.update(changes)
    return event


def test_valid_events_pass_through_both_groups() -> None:
    assert causes(legacy_event()) == []
    assert causes(legacy_event("default", "")) == []  # a cluster-scoped object's event
    assert causes(new_event(), new=True) == []


def test_a_legacy_event_must_sit_in_its_objects_namespace() -> None:
    assert causes(legacy_event("ns", "other")) == [
        ("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')
    ]
    assert causes(legacy_event("ns", "")) == [
        ("involvedObject.namespace", 'Invalid value: "": does not match event.namespace')
    ]


def test_an_event_with_event_time_needs_its_reporting_fields() -> None:
    core = legacy_event()
    core["eventTime"] = "2026-01-01T00:00:00.000000Z"
    # Through core/v1 the controller field is named reportingComponent.
    assert causes(core) == [
        ("reportingComponent", "Required value"),
        (
            "reportingComponent",
            'Invalid value: "": name part must be non-empty',
        ),
        (
            "reportingComponent",
            "Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
            "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        ("reportingInstance", "Required value"),
        ("action", "Required value"),
    ]
    # Through events.k8s.io/v1, reportingController; the note's limit is reported on "message".
    event = new_event(reportingController="", reason="", note="x" * 1025)
    got = causes(event, new=True)
    assert ("reportingController", "Required value") in got
    assert ("reason", "Required value") in got
    assert ("message", 'Invalid value: "": can have at most 1024 characters') in got


def test_events_k8s_io_refuses_the_deprecated_fields_on_create() -> None:
    event = new_event(
        deprecatedSource={"component": "kubelet"},
        deprecatedFirstTimestamp="2026-01-01T00:00:00Z",
        deprecatedLastTimestamp="2026-01-01T00:00:00Z",
        deprecatedCount=3,
        type="Info",
        series={"count": 1},
    )
    del event["eventTime"]
    assert causes(event, new=True) == [
        ("series.count", 'Invalid value: "": should be at least 2'),
        ("series.lastObservedTime", "Required value"),
        ("eventTime", "Required value"),
        ("type", 'Invalid value: "": has invalid value: Info'),
        ("firstTimestamp", 'Invalid value: "": needs to be unset'),
        ("lastTimestamp", 'Invalid value: "": needs to be unset'),
        ("count", 'Invalid value: "": needs to be unset'),
        ("source", 'Invalid value: "": needs to be unset'),
    ]
    # The same object through core/v1 is a legacy Event: none of that applies.
    legacy = event_versions.to_core({k: v for k, v in event.items() if k != "series"})
    assert causes(legacy) == []


def test_events_k8s_io_updates_may_only_move_the_series() -> None:
    old = new_event()
    grown = new_event(series={"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"})
    assert causes(grown, new=True, old=old) == []
    bad_series = new_event(series={"count": 1, "lastObservedTime": "2026-01-01T00:01:00.000000Z"})
    assert causes(bad_series, new=True, old=old) == [
        ("series.count", 'Invalid value: "": should be at least 2')
    ]
    changed = new_event(note="rewritten", action="Preempting")
    assert causes(changed, new=True, old=old) == [
        ("message", 'Invalid value: "rewritten": field is immutable'),
        ("action", 'Invalid value: "Preempting": field is immutable'),
    ]


def test_core_v1_updates_only_get_the_legacy_rules() -> None:
    old = legacy_event()
    changed = {**legacy_event(), "message": "rewritten", "count": 2}
    assert causes(changed, old=old) == []


def test_names_are_checked_as_the_group_of_the_request_checks_them() -> None:
    odd = legacy_event()
    odd["metadata"]["name"] = "Pod_1.17a"
    assert causes(odd) == []  # core/v1: a path segment is enough
    assert causes(new_event(metadata={"name": "Pod_1.17a", "namespace": "ns"}), new=True) == [
        (
            "metadata.name",
            'Invalid value: "Pod_1.17a": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    ]
    slash = legacy_event()
    slash["metadata"]["name"] = "a/b"
    assert causes(slash) == [("metadata.name", "Invalid value: \"a/b\": may not contain '/'")]


def test_the_cause_type_is_upstreams() -> None:
    found = validate(CORE, legacy_event("ns", "other"))
    assert found == [
        Cause(
            reason="FieldValueInvalid",
            field="involvedObject.namespace",
            message='Invalid value: "other": does not match event.namespace',
        )
    ]
