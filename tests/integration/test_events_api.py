"""One Event resource served in two groups, as upstream serves it: an Event written through
core/v1 is read, listed and watched through events.k8s.io/v1 and the other way round, with the
real `kubernetes` client's EventsV1Api and CoreV1Api and with real kubectl."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes import watch
from kubernetes.client import ApiClient, CoreV1Api, EventsV1Api
from kubernetes.client.exceptions import ApiException

from controlplane.api import event_versions
from tests.integration.conftest import ServerProcess, kubectl_binaries
from tests.integration.kubectl_helpers import Kubectl


@pytest.fixture(scope="module")
def client(bare_server: ServerProcess) -> Iterator[ApiClient]:
    api = kubernetes.config.new_client_from_config(config_file=str(bare_server.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def ns(client: ApiClient) -> str:
    name = f"ev-{uuid.uuid4().hex[:10]}"
    CoreV1Api(client).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
def kubectl(bare_server: ServerProcess, tmp_path: Path) -> Kubectl:
    binaries = kubectl_binaries()
    if not binaries:
        pytest.skip("no kubectl binary installed")
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(bare_server.kubeconfig), KUBECACHEDIR=str(tmp_path / "cache"), HOME=str(tmp_path)
    )
    return Kubectl(sorted(binaries, key=lambda b: Path(b).name)[-1], env)


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _legacy_event(ns: str, name: str) -> dict[str, Any]:
    """What client-go's legacy recorder posts: no eventTime, so no reporting fields."""
    return {
        "metadata": {"name": name},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "namespace": ns},
        "reason": "Written",
        "message": "through core/v1",
        "source": {"component": "legacy-recorder"},
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "count": 1,
        "type": "Normal",
    }


def _kopf_event(ns: str, name: str) -> dict[str, Any]:
    """What kopf posts through core/v1: the legacy fields and the new ones."""
    return {
        **_legacy_event(ns, name),
        "eventTime": _micro_now(),
        "action": "Action",
        "reportingComponent": "kopf",
        "reportingInstance": "dev",
        "message": "kopf through core/v1",
    }


def _new_event(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "eventTime": _micro_now(),
        "reportingController": "example.com/recorder",
        "reportingInstance": "recorder-0",
        "action": "Reconcile",
        "reason": "Written",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "namespace": ns},
        "note": "through events.k8s.io/v1",
        "type": "Warning",
    }


def _raw(response: Any) -> Any:
    """A response read without the client's models (`_preload_content=False`)."""
    return json.loads(response.data)


def test_each_group_reads_lists_and_watches_what_the_other_wrote(client: ApiClient, ns: str) -> None:
    core, events = CoreV1Api(client), EventsV1Api(client)
    start = core.list_namespaced_event(ns).metadata.resource_version
    core.create_namespaced_event(ns, _kopf_event(ns, "kopf"))
    events.create_namespaced_event(ns, _new_event(ns, "new"))
    core.create_namespaced_event(ns, _legacy_event(ns, "legacy"))

    kopf = events.read_namespaced_event("kopf", ns)
    assert kopf.api_version == "events.k8s.io/v1"
    assert (kopf.note, kopf.regarding.name, kopf.deprecated_count) == ("kopf through core/v1", "cm", 1)
    assert (kopf.reporting_controller, kopf.deprecated_source.component) == ("kopf", "legacy-recorder")
    new = core.read_namespaced_event("new", ns)
    assert new.api_version == "v1"
    assert (new.message, new.reporting_component, new.involved_object.name) == (
        "through events.k8s.io/v1",
        "example.com/recorder",
        "cm",
    )
    assert new.metadata.resource_version == events.read_namespaced_event("new", ns).metadata.resource_version
    # A legacy Event has no eventTime, which this client's EventsV1Event model requires (as
    # upstream, the server sends none): read it as JSON.
    legacy = _raw(events.read_namespaced_event("legacy", ns, _preload_content=False))
    assert legacy["apiVersion"] == "events.k8s.io/v1"
    assert (legacy["note"], legacy["deprecatedCount"], legacy["regarding"]["name"]) == (
        "through core/v1",
        1,
        "cm",
    )
    assert "message" not in legacy and "involvedObject" not in legacy

    listed = _raw(events.list_namespaced_event(ns, _preload_content=False))
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["kopf", "legacy", "new"]
    assert sorted(e.metadata.name for e in core.list_namespaced_event(ns).items) == ["kopf", "legacy", "new"]
    # Field selectors use each group's own names for the same fields.
    warned = events.list_namespaced_event(ns, field_selector="type=Warning").items
    assert [e.metadata.name for e in warned] == ["new"]
    by_core = core.list_namespaced_event(ns, field_selector="reportingComponent=example.com/recorder").items
    assert [e.metadata.name for e in by_core] == ["new"]

    w = watch.Watch()
    seen = []
    for item in w.stream(events.list_namespaced_event, ns, resource_version=start, timeout_seconds=10):
        seen.append((item["type"], item["object"].api_version, item["object"].metadata.name))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "events.k8s.io/v1", "kopf"), ("ADDED", "events.k8s.io/v1", "new")]

    events.delete_namespaced_event("kopf", ns)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_event("kopf", ns)
    assert gone.value.status == 404


def test_events_k8s_io_refuses_what_only_the_legacy_group_allows(
    client: ApiClient, ns: str, kubectl: Kubectl
) -> None:
    # The Python client's models refuse this body before sending it; kubectl sends it as it is.
    bad = _new_event(ns, "bad")
    bad["deprecatedCount"] = 3
    del bad["eventTime"]
    refused = kubectl.run("create", "-n", ns, "-f", "-", stdin=json.dumps(bad), check=False)
    assert refused.returncode != 0
    assert 'The Event "bad" is invalid' in refused.stderr
    assert "eventTime: Required value" in refused.stderr
    assert 'count: Invalid value: "": needs to be unset' in refused.stderr
    # The same body through core/v1, renamed, is a legacy Event, which may carry a count.
    kubectl.run("create", "-n", ns, "-f", "-", stdin=json.dumps(event_versions.to_core(bad)))
    events = EventsV1Api(client)
    names = [
        i["metadata"]["name"] for i in _raw(events.list_namespaced_event(ns, _preload_content=False))["items"]
    ]
    assert names == ["bad"]

    created = events.create_namespaced_event(ns, _new_event(ns, "fixed"))
    created.note = "rewritten"
    with pytest.raises(ApiException) as immutable:
        events.replace_namespaced_event("fixed", ns, created)
    assert immutable.value.status == 422
    assert 'message: Invalid value: \\"rewritten\\": field is immutable' in str(immutable.value.body)


def test_kubectl_sees_one_set_of_events_through_both_groups(
    client: ApiClient, ns: str, kubectl: Kubectl
) -> None:
    CoreV1Api(client).create_namespaced_event(ns, _legacy_event(ns, "legacy"))
    EventsV1Api(client).create_namespaced_event(ns, _new_event(ns, "new"))
    through_new = kubectl.json("get", "events.v1.events.k8s.io", "-n", ns)
    assert sorted((i["metadata"]["name"], i["apiVersion"]) for i in through_new["items"]) == [
        ("legacy", "events.k8s.io/v1"),
        ("new", "events.k8s.io/v1"),
    ]
    through_core = kubectl.json("get", "events.v1.", "-n", ns)
    assert sorted(i["metadata"]["name"] for i in through_core["items"]) == ["legacy", "new"]
    table = kubectl.run("events", "-n", ns).stdout
    assert "through core/v1" in table and "through events.k8s.io/v1" in table
