"""What kopf 1.45.2 expects of the API server, request for request (client-compat.md section 2).

Each request here is shaped as kopf's own client sends it (`kopf/_cogs/clients/*.py`): aiohttp's
`Accept: */*`, kopf's User-Agent, its JSON Patch with a `test` of resourceVersion, its merge
patches, its watch parameters and its Event body. Only built-in kinds are used; the custom
resource side lives in test_example_operator.py and in kopf's own e2e suite (scripts/kopf-e2e).
"""

from __future__ import annotations

import datetime
import http.client
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.conftest import ServerProcess

KOPF_HEADERS = {"Accept": "*/*", "User-Agent": "kopf/1.45.2"}
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"
# kopf's settings.watching.inactivity_timeout: a watch silent for this long is dropped.
KOPF_INACTIVITY_TIMEOUT = 70.0
# kopf's settings.persistence.consistency_timeout: how long it waits for a patch's RV in the watch.
KOPF_CONSISTENCY_TIMEOUT = 5.0


@dataclass
class Response:
    status: int
    body: Any


@dataclass
class Api:
    server: ServerProcess

    def connect(self, timeout: float = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.server.port, context=self.server.ssl_context(), timeout=timeout
        )

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Response:
        conn = self.connect()
        try:
            headers = dict(KOPF_HEADERS)
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = content_type
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            return Response(resp.status, json.loads(raw) if raw else None)
        finally:
            conn.close()

    def json_patch(self, path: str, ops: list[dict[str, Any]]) -> Response:
        return self.request("PATCH", path, ops, "application/json-patch+json")

    def merge_patch(self, path: str, patch: dict[str, Any]) -> Response:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def watch(self, path: str, resource_version: str) -> Watch:
        return Watch(self, f"{path}?watch=true&allowWatchBookmarks=true&resourceVersion={resource_version}")


@dataclass
class Watch:
    """One watch stream read as kopf reads it: newline-delimited JSON events."""

    api: Api
    path: str
    events: list[dict[str, Any]] = field(default_factory=list)
    status: int = 0

    def __post_init__(self) -> None:
        self._conn = self.api.connect()
        self._conn.request("GET", self.path, headers=KOPF_HEADERS)
        self._resp = self._conn.getresponse()
        self.status = self._resp.status

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None if the stream stays silent for `timeout` seconds."""
        sock = self._conn.sock
        assert sock is not None
        sock.settimeout(timeout)
        try:
            line = self._resp.readline()
        except TimeoutError:
            return None
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    def wait_for(self, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            event = self.next(remaining)
            if event is not None and predicate(event):
                return event
        raise AssertionError(f"{what} not seen within {timeout}s; events: {self.events}")

    def close(self) -> None:
        self._conn.close()


@pytest.fixture
def api(server: ServerProcess) -> Api:
    return Api(server)


@pytest.fixture
def ns(api: Api) -> Iterator[str]:
    name = f"kopf-{uuid.uuid4().hex[:8]}"
    created = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert created.status == 201, created.body
    # As upstream's e2e framework does (WaitForKubeRootCAInNamespace): the root CA's ConfigMap
    # lands in every new namespace a moment after it, and would otherwise show up, at a time of
    # its own, in the ConfigMap lists and watches these tests make.
    deadline = time.monotonic() + 20
    while api.request("GET", f"/api/v1/namespaces/{name}/configmaps/kube-root-ca.crt").status != 200:
        assert time.monotonic() < deadline, "kube-root-ca.crt was not published"
        time.sleep(0.05)
    yield name
    api.request("DELETE", f"/api/v1/namespaces/{name}")


def create_configmap(api: Api, ns: str, name: str, **metadata: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, **metadata},
        "data": {"a": "1"},
    }
    resp = api.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert resp.status == 201, resp.body
    return dict(resp.body)


def list_rv(api: Api, path: str) -> str:
    resp = api.request("GET", path)
    assert resp.status == 200, resp.body
    return str(resp.body["metadata"]["resourceVersion"])


def test_json_patch_with_stale_resource_version_test_is_422(api: Api, ns: str) -> None:
    obj = create_configmap(api, ns, "cm")
    rv = obj["metadata"]["resourceVersion"]
    path = f"/api/v1/namespaces/{ns}/configmaps/cm"
    bump = api.merge_patch(path, {"metadata": {"annotations": {LAST_HANDLED: '{"data":{"a":"1"}}\n'}}})
    assert bump.status == 200, bump.body
    assert bump.body["metadata"]["resourceVersion"] != rv

    stale = api.json_patch(
        path,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ],
    )
    # kopf catches APIUnprocessableEntityError (422 only) and retries later; anything else breaks it.
    assert stale.status == 422, stale.body
    assert stale.body["kind"] == "Status"
    assert stale.body["code"] == 422
    assert stale.body["status"] == "Failure"
    assert "finalizers" not in api.request("GET", path).body["metadata"]

    current = bump.body["metadata"]["resourceVersion"]
    added = api.json_patch(
        path,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": current},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ],
    )
    assert added.status == 200, added.body
    assert added.body["metadata"]["finalizers"] == [FINALIZER]

    removed = api.json_patch(
        path,
        [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": added.body["metadata"]["resourceVersion"],
            },
            {"op": "remove", "path": "/metadata/finalizers"},
        ],
    )
    assert removed.status == 200, removed.body
    assert "finalizers" not in removed.body["metadata"]


def test_json_patch_errors_are_422_statuses(api: Api, ns: str) -> None:
    create_configmap(api, ns, "cm")
    path = f"/api/v1/namespaces/{ns}/configmaps/cm"
    # Upstream answers 422 for any JSON Patch that cannot be applied (handlers/patch.go).
    missing = api.json_patch(path, [{"op": "remove", "path": "/metadata/finalizers"}])
    assert missing.status == 422, missing.body
    assert missing.body["kind"] == "Status"
    gone = api.json_patch(
        f"/api/v1/namespaces/{ns}/configmaps/absent", [{"op": "add", "path": "/data/b", "value": "2"}]
    )
    # A 404 on patch means "object gone" to kopf, and error bodies are parsed only as Status.
    assert gone.status == 404, gone.body
    assert gone.body["kind"] == "Status"
    assert gone.body["reason"] == "NotFound"


def test_every_patch_response_resource_version_is_seen_in_the_watch(api: Api, ns: str) -> None:
    plural = f"/api/v1/namespaces/{ns}/configmaps"
    create_configmap(api, ns, "cm")
    watch = api.watch(plural, list_rv(api, plural))
    try:
        assert watch.status == 200
        path = f"{plural}/cm"
        current = api.request("GET", path).body["metadata"]["resourceVersion"]
        responses = [
            api.json_patch(
                path,
                [
                    {"op": "test", "path": "/metadata/resourceVersion", "value": current},
                    {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
                ],
            ),
            api.merge_patch(path, {"metadata": {"annotations": {LAST_HANDLED: '{"data":{"a":"1"}}\n'}}}),
            api.merge_patch(
                path, {"metadata": {"annotations": {"kopf.zalando.org/create_fn": '{"started":"x"}'}}}
            ),
        ]
        for resp in responses:
            assert resp.status == 200, resp.body
            rv = resp.body["metadata"]["resourceVersion"]
            # kopf compares resource versions for equality only, and waits 5 s at most.
            event = watch.wait_for(
                lambda e, rv=rv: e["object"]["metadata"]["resourceVersion"] == rv,
                KOPF_CONSISTENCY_TIMEOUT,
                f"MODIFIED with resourceVersion {rv}",
            )
            assert event["type"] == "MODIFIED"
            assert event["object"]["metadata"].get("annotations") == resp.body["metadata"].get("annotations")
    finally:
        watch.close()


def test_deletion_flow_with_kopf_finalizer(api: Api, ns: str) -> None:
    plural = f"/api/v1/namespaces/{ns}/configmaps"
    create_configmap(api, ns, "cm", finalizers=[FINALIZER])
    watch = api.watch(plural, list_rv(api, plural))
    try:
        deleted = api.request("DELETE", f"{plural}/cm")
        assert deleted.status in (200, 202), deleted.body
        assert deleted.body["metadata"]["deletionTimestamp"]
        marked = watch.wait_for(lambda e: e["type"] == "MODIFIED", 5, "MODIFIED with deletionTimestamp")
        assert marked["object"]["metadata"]["deletionTimestamp"]
        rv = marked["object"]["metadata"]["resourceVersion"]

        released = api.json_patch(
            f"{plural}/cm",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "remove", "path": "/metadata/finalizers"},
            ],
        )
        assert released.status == 200, released.body
        watch.wait_for(lambda e: e["type"] == "DELETED", 5, "DELETED once the finalizer is gone")
        assert api.request("GET", f"{plural}/cm").status == 404
    finally:
        watch.close()


def test_merge_patch_null_deletes_keys(api: Api, ns: str) -> None:
    # Peering keepalives and kopf's progress cleanup remove keys with null (RFC 7386).
    create_configmap(api, ns, "cm", annotations={"kopf.zalando.org/a": "1", "kopf.zalando.org/b": "2"})
    path = f"/api/v1/namespaces/{ns}/configmaps/cm"
    resp = api.merge_patch(
        path, {"metadata": {"annotations": {"kopf.zalando.org/a": None}}, "data": {"a": None}}
    )
    assert resp.status == 200, resp.body
    assert resp.body["metadata"]["annotations"] == {"kopf.zalando.org/b": "2"}
    assert "a" not in (resp.body.get("data") or {})


def test_large_kopf_annotations_are_stored(api: Api, ns: str) -> None:
    create_configmap(api, ns, "cm")
    path = f"/api/v1/namespaces/{ns}/configmaps/cm"
    value = json.dumps({"spec": {"blob": "x" * 200_000}}) + "\n"
    resp = api.merge_patch(path, {"metadata": {"annotations": {LAST_HANDLED: value}}})
    assert resp.status == 200, resp.body
    assert api.request("GET", path).body["metadata"]["annotations"][LAST_HANDLED] == value
    too_big = api.merge_patch(path, {"metadata": {"annotations": {"kopf.zalando.org/big": "y" * 70_000}}})
    assert too_big.status == 422, too_big.body
    assert "metadata.annotations: Too long" in too_big.body["message"]


def test_list_pages_end_with_empty_continue(api: Api, ns: str) -> None:
    for i in range(5):
        create_configmap(api, ns, f"cm-{i}")
    plural = f"/api/v1/namespaces/{ns}/configmaps"
    names: list[str] = []
    token = ""
    for _ in range(10):
        resp = api.request("GET", f"{plural}?limit=2" + (f"&continue={token}" if token else ""))
        assert resp.status == 200, resp.body
        assert resp.body["kind"] == "ConfigMapList"
        assert resp.body["metadata"]["resourceVersion"]
        names += [item["metadata"]["name"] for item in resp.body["items"]]
        token = resp.body["metadata"].get("continue", "")
        if not token:
            break
    # Besides ours, the namespace holds the root CA's ConfigMap (root-ca-cert-publisher).
    assert sorted(names) == ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "kube-root-ca.crt"]


def test_discovery_lists_status_subresources_and_verbs(api: Api) -> None:
    # kopf patches /status only when discovery lists "<plural>/status".
    resources = {r["name"]: r for r in api.request("GET", "/api/v1").body["resources"]}
    assert "pods/status" in resources
    assert "configmaps/status" not in resources
    pods = resources["pods"]
    assert pods["kind"] == "Pod"
    assert pods["namespaced"] is True
    assert {"list", "watch", "patch"} <= set(pods["verbs"])
    assert api.request("GET", "/apis/events.k8s.io/v1").status == 200
    # A vanished group-version is a tolerated 404 while scanning.
    assert api.request("GET", "/apis/nonexistent.kopf.dev/v1").status == 404


def test_watch_reconnects_from_last_seen_resource_version(api: Api, ns: str) -> None:
    plural = f"/api/v1/namespaces/{ns}/configmaps"
    watch = api.watch(plural, list_rv(api, plural))
    create_configmap(api, ns, "cm-1")
    first = watch.wait_for(lambda e: e["type"] == "ADDED", 5, "ADDED cm-1")
    watch.close()
    create_configmap(api, ns, "cm-2")
    resumed = api.watch(plural, first["object"]["metadata"]["resourceVersion"])
    try:
        assert resumed.status == 200
        event = resumed.wait_for(lambda e: e["type"] == "ADDED", 5, "ADDED cm-2 after reconnecting")
        assert event["object"]["metadata"]["name"] == "cm-2"
    finally:
        resumed.close()


def test_quiet_watch_gets_bookmarks_and_resumes_from_them(bookmark_server: ServerProcess) -> None:
    api = Api(bookmark_server)
    ns = f"quiet-{uuid.uuid4().hex[:8]}"
    assert api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}}).status == 201
    plural = f"/api/v1/namespaces/{ns}/configmaps"
    watch = api.watch(plural, list_rv(api, plural))
    try:
        bookmark = watch.wait_for(lambda e: e["type"] == "BOOKMARK", 5, "BOOKMARK on a quiet watch")
        assert bookmark["object"]["kind"] == "ConfigMap"
        assert bookmark["object"]["apiVersion"] == "v1"
        rv = bookmark["object"]["metadata"]["resourceVersion"]
        assert rv
    finally:
        watch.close()
    create_configmap(api, ns, "after-bookmark")
    resumed = api.watch(plural, rv)
    try:
        assert resumed.status == 200
        event = resumed.wait_for(lambda e: e["type"] == "ADDED", 5, "ADDED after resuming from a bookmark")
        assert event["object"]["metadata"]["name"] == "after-bookmark"
    finally:
        resumed.close()


def test_default_bookmark_interval_is_within_kopf_inactivity_timeout() -> None:
    # A full-length quiet watch would take a minute; the default is checked where it is set.
    from controlplane.__main__ import _parser

    args = _parser().parse_args(["server"])
    assert 0 < args.watch_bookmark_interval < KOPF_INACTIVITY_TIMEOUT - 5


def kopf_event(ns: str, involved: dict[str, Any], message: str = "m") -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    return {
        "metadata": {"namespace": ns, "generateName": "kopf-event-"},
        "action": "Action?",
        "type": "Normal",
        "reason": "Logging",
        "message": message,
        "reportingComponent": "kopf",
        "reportingInstance": "dev",
        "source": {"component": "kopf"},
        "involvedObject": involved,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "eventTime": now,
    }


def test_events_with_old_and_new_fields_are_accepted(api: Api, ns: str) -> None:
    obj = create_configmap(api, ns, "cm")
    involved = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "cm",
        "uid": obj["metadata"]["uid"],
        "namespace": ns,
    }
    message = "x" * 1024  # kopf's MAX_MESSAGE_LENGTH
    resp = api.request("POST", f"/api/v1/namespaces/{ns}/events", kopf_event(ns, involved, message))
    assert resp.status == 201, resp.body
    event = resp.body
    assert event["metadata"]["name"].startswith("kopf-event-")
    assert event["involvedObject"]["uid"] == obj["metadata"]["uid"]
    assert event["source"] == {"component": "kopf"}
    assert event["reportingComponent"] == "kopf"
    assert event["reportingInstance"] == "dev"
    assert event["action"] == "Action?"
    assert event["message"] == message
    assert event["firstTimestamp"] and event["lastTimestamp"] and event["eventTime"]

    listed = api.request("GET", f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3Dcm")
    assert [e["metadata"]["name"] for e in listed.body["items"]] == [event["metadata"]["name"]]


def test_kopf_events_are_seen_through_events_k8s_io(api: Api, ns: str) -> None:
    obj = create_configmap(api, ns, "cm")
    involved = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "cm",
        "uid": obj["metadata"]["uid"],
        "namespace": ns,
    }
    message = "seen in both groups"
    resp = api.request("POST", f"/api/v1/namespaces/{ns}/events", kopf_event(ns, involved, message))
    assert resp.status == 201, resp.body
    event = resp.body
    # The same event through events.k8s.io/v1, as upstream maps the fields.
    name = event["metadata"]["name"]
    new = api.request("GET", f"/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}")
    assert new.status == 200, new.body
    assert new.body["regarding"]["uid"] == obj["metadata"]["uid"]
    assert new.body["note"] == message
    assert new.body["reportingController"] == "kopf"
    assert new.body["reportingInstance"] == "dev"
    assert new.body["deprecatedSource"] == {"component": "kopf"}


def test_events_for_cluster_scoped_objects_go_to_the_default_namespace(api: Api) -> None:
    # For cluster-scoped objects kopf posts into the context namespace (else "default").
    ns = api.request("GET", "/api/v1/namespaces/default").body
    involved = {"apiVersion": "v1", "kind": "Namespace", "name": "default", "uid": ns["metadata"]["uid"]}
    involved["namespace"] = "default"  # kopf fills it in (events.py: full_ref['namespace'])
    resp = api.request("POST", "/api/v1/namespaces/default/events", kopf_event("default", involved))
    assert resp.status == 201, resp.body
    api.request("DELETE", f"/api/v1/namespaces/default/events/{resp.body['metadata']['name']}")


def test_error_bodies_are_status_objects(api: Api, ns: str) -> None:
    create_configmap(api, ns, "cm")
    conflict = api.request(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
    )
    assert conflict.status == 409
    assert conflict.body["kind"] == "Status"
    assert conflict.body["reason"] == "AlreadyExists"
    # Admission configurations are created by name only, then merge-patched (admission.py).
    name = f"kopf-{uuid.uuid4().hex[:8]}"
    path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
    first = api.request("POST", path, {"metadata": {"name": name}})
    assert first.status == 201, first.body
    again = api.request("POST", path, {"metadata": {"name": name}})
    assert again.status == 409, again.body
    api.request("DELETE", f"{path}/{name}")
