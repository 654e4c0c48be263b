"""The helpers the Endpoints and EndpointSlice controllers share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controlplane.controllers.endpointslice_util import (
    LAST_CHANGE_TRIGGER_TIME,
    is_service_ip_set,
    managed_selector,
    selected_pods,
    services_for_pod_event,
    set_trigger_time,
)

Obj = dict[str, Any]


def _service(name: str, selector: dict[str, str] | None, **spec: Any) -> Obj:
    body: Obj = {"metadata": {"name": name, "namespace": "ns"}, "spec": dict(spec)}
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


def _pod(labels: dict[str, str], rv: str = "1", ready: bool = True) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "labels": labels, "resourceVersion": rv},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


SERVICES = [_service("web", {"app": "web"}), _service("db", {"app": "db"}), _service("manual", None)]


def _services_in(namespace: str) -> list[Obj]:
    assert namespace == "ns"
    return SERVICES


def test_managed_selector_skips_external_name_and_selectorless_services() -> None:
    assert managed_selector(_service("web", {"app": "web"})) == {"app": "web"}
    assert managed_selector(_service("web", {})) == {}
    assert managed_selector(_service("manual", None)) is None
    assert managed_selector(_service("ext", {"app": "web"}, type="ExternalName")) is None


def test_selected_pods_need_every_selector_label() -> None:
    pods = [_pod({"app": "web", "tier": "a"}), _pod({"app": "db"}), _pod({})]
    assert selected_pods({"app": "web"}, pods) == [pods[0]]
    assert selected_pods({}, pods) == pods


def test_pod_events_concern_the_services_selecting_the_pod() -> None:
    web = _pod({"app": "web"})
    assert services_for_pod_event(_services_in, "ADDED", None, web) == {"ns/web"}
    assert services_for_pod_event(_services_in, "DELETED", web, None) == {"ns/web"}
    moved = _pod({"app": "db"}, rv="2")
    assert services_for_pod_event(_services_in, "MODIFIED", web, moved) == {"ns/web", "ns/db"}
    assert services_for_pod_event(_services_in, "MODIFIED", web, web) == set()
    assert services_for_pod_event(_services_in, "DELETED", None, None) == set()


def test_trigger_time_is_set_or_cleared() -> None:
    annotations = {"keep": "me"}
    set_trigger_time(annotations, datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC))
    assert annotations == {"keep": "me", LAST_CHANGE_TRIGGER_TIME: "2026-01-02T03:04:05.12Z"}
    set_trigger_time(annotations, None)
    assert annotations == {"keep": "me"}


def test_service_ip_set() -> None:
    assert is_service_ip_set(_service("a", None, clusterIP="10.0.0.1"))
    assert not is_service_ip_set(_service("a", None, clusterIP="None"))
    assert not is_service_ip_set(_service("a", None))
