"""Watches narrowed by an exact field selector, as kubelets hold them, through the `kubernetes`
Python client against a real `pinnace server`.

A kubelet watches its own pods (`spec.nodeName=<node>`) and its own Node (`metadata.name=`); the
server hands such a watch only the events of its value (upstream's indexed triggers), so it
must still see a pod enter its selection on binding and leave it on deletion, and its
bookmarks must move past the writes that were not for it.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes import watch
from kubernetes.client import ApiClient, CoreV1Api

from tests.integration.conftest import ServerProcess

WATCH_SECONDS = 5
Event = dict[str, Any]


@pytest.fixture(scope="module")
def api(bookmark_server: ServerProcess) -> Iterator[ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(bookmark_server.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def core(api: ApiClient) -> CoreV1Api:
    return CoreV1Api(api)


def pod(name: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}
    if node is not None:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


class Stream:
    """One watch request in a thread: its events (bookmarks included, as raw objects) arrive on
    a queue, so the test can wait for a given event instead of sleeping."""

    def __init__(self, func: Any, **kwargs: Any) -> None:
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.seen: list[Event] = []
        self._thread = threading.Thread(target=self._run, args=(func,), kwargs=kwargs, daemon=True)
        self._thread.start()

    def _run(self, func: Any, **kwargs: Any) -> None:
        try:
            for e in watch.Watch().stream(
                func, allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS, **kwargs
            ):
                self.events.put({"type": e["type"], "object": e["raw_object"]})
        finally:
            self.events.put(None)

    def wait_for(self, name: str) -> None:
        """Until an event about `name` arrives: the watch has read its history and is live."""
        while True:
            event = self.events.get(timeout=WATCH_SECONDS + 10)
            assert event is not None, f"the watch ended before an event about {name}"
            self.seen.append(event)
            if event["object"]["metadata"].get("name") == name:
                return

    def rest(self) -> list[Event]:
        """Everything seen, once the request has ended."""
        while (event := self.events.get(timeout=WATCH_SECONDS + 10)) is not None:
            self.seen.append(event)
        self._thread.join()
        return self.seen


def changes(events: list[Event]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"]


def bookmarks(events: list[Event]) -> list[int]:
    return [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] == "BOOKMARK"]


def test_a_kubelet_pod_watch_sees_its_pods_enter_and_leave_and_bookmarks_move_on(core: CoreV1Api) -> None:
    ns = f"trig-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": ns}})
    node = f"node-{uuid.uuid4().hex[:6]}"
    selector = f"spec.nodeName={node}"
    start = core.list_pod_for_all_namespaces(field_selector=selector).metadata.resource_version
    stream = Stream(core.list_pod_for_all_namespaces, field_selector=selector, resource_version=start)
    core.create_namespaced_pod(ns, pod("sentinel", node))
    stream.wait_for("sentinel")  # live from here: what follows goes through the trigger
    core.create_namespaced_pod(ns, pod("bound-later"))
    # The python client cannot read the Status a binding answers with; the request is what counts.
    core.create_namespaced_pod_binding(
        "bound-later",
        ns,
        {"metadata": {"name": "bound-later"}, "target": {"kind": "Node", "name": node}},
        _preload_content=False,
    )
    core.create_namespaced_pod(ns, pod("elsewhere", "some-other-node"))
    core.create_namespaced_pod(ns, pod("created-on-it", node))
    core.delete_namespaced_pod("bound-later", ns, grace_period_seconds=0)
    last = core.create_namespaced_pod(ns, pod("last-elsewhere", "some-other-node"))
    events = stream.rest()

    assert changes(events) == [
        ("ADDED", "sentinel"),
        ("ADDED", "bound-later"),  # it enters the selection when bound
        ("ADDED", "created-on-it"),
        ("DELETED", "bound-later"),
    ]
    bound = next(e["object"] for e in events if e["object"]["metadata"]["name"] == "bound-later")
    assert bound["spec"]["nodeName"] == node
    # A quiet watch's bookmark carries the revisions that were not for it.
    marks = bookmarks(events)
    assert marks and max(marks) >= int(last.metadata.resource_version)

    # Resuming from that bookmark works and replays nothing old.
    resumed = Stream(
        core.list_pod_for_all_namespaces, field_selector=selector, resource_version=str(max(marks))
    )
    assert changes(resumed.rest()) == []


def test_a_watch_of_one_node_by_name_sees_only_that_node(core: CoreV1Api) -> None:
    mine, other = f"mine-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    start = core.list_node().metadata.resource_version
    stream = Stream(core.list_node, field_selector=f"metadata.name={mine}", resource_version=start)
    core.create_node({"metadata": {"name": mine}})
    stream.wait_for(mine)
    core.create_node({"metadata": {"name": other}})
    core.patch_node(mine, {"metadata": {"labels": {"touched": "yes"}}})
    core.patch_node(other, {"metadata": {"labels": {"touched": "yes"}}})
    core.delete_node(mine)
    core.delete_node(other)
    assert changes(stream.rest()) == [("ADDED", mine), ("MODIFIED", mine), ("DELETED", mine)]
