"""Watches narrowed by an exact field selector, as kubelets hold them, through the `kubernetes`
Python client against a real `pinnace server`.

A kubelet watches its own pods (`spec.nodeName=<node>`) and its own Node (`metadata.name=`); the
server hands such a watch only the events of its value (upstream's indexed triggers), so it
must still see a pod enter its selection on binding and leave it on deletion, and its
bookmarks must move past the writes that were not for it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import pytest
from kubernetes import watch
from kubernetes.client import ApiClient, CoreV1Api

from tests.integration.conftest import ServerProcess, start_server

WATCH_SECONDS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path_factory.mktemp("pinnace-triggers") / "data",
        "--watch-bookmark-interval",
        "1",
        "--controllers=",
        "--disable-scheduler",
    )
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def core(api: ApiClient) -> CoreV1Api:
    return CoreV1Api(api)


@pytest.fixture
def ns(core: CoreV1Api) -> str:
    name = f"trig-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name}})
    return name


def pod(name: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}
    if node is not None:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


def stream(api: ApiClient, func: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every event (bookmarks included) of one watch request, as raw objects."""
    w = watch.Watch()
    return [
        {"type": e["type"], "object": e["raw_object"]}
        for e in w.stream(func, allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS, **kwargs)
    ]


def rv_of(obj: Any) -> int:
    return int(obj.metadata.resource_version)


def test_a_kubelet_pod_watch_sees_its_pods_enter_and_leave_and_bookmarks_move_on(
    api: ApiClient, core: CoreV1Api, ns: str
) -> None:
    node = f"node-{uuid.uuid4().hex[:6]}"
    start = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").metadata.resource_version
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(
            stream,
            api,
            core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={node}",
            resource_version=start,
        )
        time.sleep(1)  # the watch is live before the writes, so the trigger path delivers them
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
        events = watching.result(timeout=WATCH_SECONDS + 10)

    changes = [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"]
    assert changes == [
        ("ADDED", "bound-later"),  # it enters the selection when bound
        ("ADDED", "created-on-it"),
        ("DELETED", "bound-later"),
    ]
    bound = next(e["object"] for e in events if e["type"] == "ADDED")
    assert bound["spec"]["nodeName"] == node
    bookmarks = [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] == "BOOKMARK"]
    # A quiet watch's bookmark carries the revisions that were not for it.
    assert bookmarks and max(bookmarks) >= rv_of(last)

    # Resuming from that bookmark works and replays nothing old.
    resumed = stream(
        api,
        core.list_pod_for_all_namespaces,
        field_selector=f"spec.nodeName={node}",
        resource_version=str(max(bookmarks)),
    )
    assert [e for e in resumed if e["type"] != "BOOKMARK"] == []


def test_a_watch_of_one_node_by_name_sees_only_that_node(api: ApiClient, core: CoreV1Api) -> None:
    mine, other = f"mine-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    start = core.list_node().metadata.resource_version
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(
            stream, api, core.list_node, field_selector=f"metadata.name={mine}", resource_version=start
        )
        time.sleep(1)
        core.create_node({"metadata": {"name": other}})
        core.create_node({"metadata": {"name": mine}})
        core.patch_node(mine, {"metadata": {"labels": {"touched": "yes"}}})
        core.patch_node(other, {"metadata": {"labels": {"touched": "yes"}}})
        core.delete_node(mine)
        core.delete_node(other)
        events = watching.result(timeout=WATCH_SECONDS + 10)
    changes = [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"]
    assert changes == [("ADDED", mine), ("MODIFIED", mine), ("DELETED", mine)]
