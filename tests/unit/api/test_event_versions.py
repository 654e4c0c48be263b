"""One Event in two groups: the core/v1 <-> events.k8s.io/v1 field mapping."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import event_versions

CORE_FIELDS = (
    "involvedObject",
    "reason",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "type",
    "eventTime",
    "series",
    "action",
    "related",
    "reportingComponent",
    "reportingInstance",
)
EVENTS_FIELDS = (
    "eventTime",
    "series",
    "reportingController",
    "reportingInstance",
    "action",
    "reason",
    "regarding",
    "related",
    "note",
    "type",
    "deprecatedSource",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
)

_values = (
    st.none()
    | st.integers(0, 9)
    | st.text(max_size=5)
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3))
)


def test_a_kopf_event_reads_as_upstream_converts_it() -> None:
    core = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "kopf-event-x", "namespace": "ns"},
        "involvedObject": {"kind": "ConfigMap", "name": "cm", "namespace": "ns", "uid": "u"},
        "reason": "Logging",
        "message": "hello",
        "source": {"component": "kopf"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:01Z",
        "count": 2,
        "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "action": "Action",
        "reportingComponent": "kopf",
        "reportingInstance": "dev",
    }
    new = event_versions.from_core(core)
    assert new == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": core["metadata"],
        "regarding": core["involvedObject"],
        "reason": "Logging",
        "note": "hello",
        "deprecatedSource": {"component": "kopf"},
        "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
        "deprecatedLastTimestamp": "2026-01-01T00:00:01Z",
        "deprecatedCount": 2,
        "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "action": "Action",
        "reportingController": "kopf",
        "reportingInstance": "dev",
    }
    assert event_versions.to_core(new) == core


@given(st.fixed_dictionaries({}, optional={name: _values for name in CORE_FIELDS}))
def test_core_to_events_and_back_is_the_identity(fields: dict[str, Any]) -> None:
    core = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, **fields}
    new = event_versions.from_core(core)
    assert set(new) - {"apiVersion", "kind", "metadata"} <= set(EVENTS_FIELDS)
    assert len(new) == len(core)
    assert event_versions.to_core(new) == core


@given(st.fixed_dictionaries({}, optional={name: _values for name in EVENTS_FIELDS}))
def test_events_to_core_and_back_is_the_identity(fields: dict[str, Any]) -> None:
    new = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, **fields}
    core = event_versions.to_core(new)
    assert set(core) - {"apiVersion", "kind", "metadata"} <= set(CORE_FIELDS)
    assert core["apiVersion"] == "v1"
    assert event_versions.from_core(core) == new
