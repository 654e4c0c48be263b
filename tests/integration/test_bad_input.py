"""Bad input over raw HTTPS: every rejection is a Kubernetes `Status` with upstream's reason and
code, never a traceback, and never a write.

Requests are sent byte for byte with `http.client` (admin client certificate, or none for the
anonymous cases), so malformed bodies reach the server exactly as written here. After each
rejected request the test proves nothing was written: the store's revision is unchanged (a
list's `metadata.resourceVersion` is the current revision), or, should something else in the
server have written meanwhile, a watch replay of this test's namespace since the request shows
no event; and the objects a failed update aimed at keep their resourceVersion and content.
"""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.conftest import ServerProcess

MiB = 1024 * 1024

# What a Python or Go failure dump looks like; none of it may reach a client.
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "goroutine ", '.py", line ')


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """Plain HTTPS requests against one server; one connection per request."""

    def __init__(self, server: ServerProcess) -> None:
        self.port = server.port
        self.admin = server.ssl_context()
        self.anonymous = ssl.create_default_context(cafile=str(server.ca))

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        *,
        anonymous: bool = False,
    ) -> Reply:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.anonymous if anonymous else self.admin, timeout=30
        )
        try:
            headers = {"Accept": "application/json"}
            if content_type is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        reply = self.request("GET", path)
        assert reply.status == 200, reply.body
        return reply.json()

    def revision(self, collection: str) -> str:
        rv = self.get_json(f"{collection}?limit=1")["metadata"]["resourceVersion"]
        assert isinstance(rv, str)
        return rv

    def events_since(self, collection: str, rv: str, idle: float = 0.5) -> list[dict[str, Any]]:
        """Every watch event after `rv`; replayed history arrives at once, so a short idle ends it."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.admin, timeout=idle)
        events: list[dict[str, Any]] = []
        try:
            conn.request("GET", f"{collection}?watch=true&resourceVersion={rv}&allowWatchBookmarks=false")
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            while line := resp.readline():
                if line.strip():
                    events.append(json.loads(line))
        except TimeoutError:
            pass
        finally:
            conn.close()
        return [e for e in events if e["type"] != "BOOKMARK"]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def configmap(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


def deployment(name: str, *, template_labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": template_labels or labels},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }


@pytest.fixture(scope="module")
def raw(bare_server: ServerProcess) -> Raw:
    # No controllers: a Deployment's controller would write its status while the test checks
    # that a refused request wrote nothing.
    return Raw(bare_server)


@dataclass
class Fixture:
    ns: str
    cm: str  # /api/v1/namespaces/<ns>/configmaps
    deploy: str  # /apis/apps/v1/namespaces/<ns>/deployments
    originals: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def env(raw: Raw) -> Iterator[Fixture]:
    """A namespace holding one ConfigMap and one Deployment named `existing`, the targets of the
    failed updates."""
    ns = f"bad-{uuid.uuid4().hex[:8]}"
    reply = raw.request(
        "POST",
        "/api/v1/namespaces",
        dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        "application/json",
    )
    assert reply.status == 201, reply.body
    fx = Fixture(ns, f"/api/v1/namespaces/{ns}/configmaps", f"/apis/apps/v1/namespaces/{ns}/deployments")
    for collection, body in (
        (fx.cm, configmap("existing", data={"a": "1"})),
        (fx.deploy, deployment("existing", replicas=1)),
    ):
        reply = raw.request("POST", collection, dumps(body), "application/json")
        assert reply.status == 201, reply.body
        fx.originals[collection] = reply.json()
    yield fx


def assert_status(reply: Reply, code: int, reason: str) -> dict[str, Any]:
    text = reply.body.decode("utf-8", errors="replace")
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"traceback text in the response body: {text[:2000]}"
    assert reply.status == code, text[:2000]
    assert reply.headers.get_content_type() == "application/json"
    status = reply.json()
    assert isinstance(status, dict)
    assert status["kind"] == "Status", status
    assert status["apiVersion"] == "v1"
    assert status["metadata"] == {}
    assert status["status"] == "Failure"
    assert status["reason"] == reason
    assert status["code"] == code
    assert isinstance(status["message"], str) and status["message"]
    # Go's field order, which the Python e2e compares byte for byte.
    assert list(status)[:5] == ["kind", "apiVersion", "metadata", "status", "message"]
    assert list(status)[-1] == "code"
    return status


def assert_nothing_written(raw: Raw, env: Fixture, before: str) -> None:
    if raw.revision(env.cm) != before:
        # Something in the server wrote elsewhere; make sure it was not in this namespace.
        for collection in (env.cm, env.deploy):
            assert raw.events_since(collection, before) == [], f"writes in {collection} after {before}"
    for collection, original in env.originals.items():
        current = raw.get_json(f"{collection}/existing")
        assert current["metadata"]["resourceVersion"] == original["metadata"]["resourceVersion"]
        assert current.get("data") == original.get("data")
        assert current.get("spec") == original.get("spec")
    names = {i["metadata"]["name"] for i in raw.get_json(env.cm)["items"]}
    assert names == {"existing"}
    names = {i["metadata"]["name"] for i in raw.get_json(env.deploy)["items"]}
    assert names == {"existing"}


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str  # "{cm}", "{deploy}" and "{ns}" are filled in from the fixture
    body: bytes | None
    content_type: str | None
    code: int
    reason: str
    message: str | None = None  # exact
    message_part: str | None = None  # substring, where the exact text is not pinned down
    cause_fields: tuple[str, ...] = ()
    anonymous: bool = False


JSON = "application/json"
MERGE = "application/merge-patch+json"
SMP = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"
STALE_CM = {"metadata": {"name": "existing", "resourceVersion": "1"}, "data": {"a": "stale"}}

CASES = [
    # Bodies that do not decode.
    Case(
        "malformed-json",
        "POST",
        "{cm}",
        b'{"apiVersion": "v1", "kind": "ConfigMap", ',
        JSON,
        400,
        "BadRequest",
    ),
    Case(
        "malformed-yaml",
        "POST",
        "{cm}",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n",
        "application/yaml",
        400,
        "BadRequest",
    ),
    Case("json-array-body", "POST", "{cm}", b"[1, 2]", JSON, 400, "BadRequest"),
    Case("empty-body", "POST", "{cm}", b"", JSON, 400, "BadRequest"),
    Case(
        "metadata-not-object",
        "POST",
        "{cm}",
        dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"}),
        JSON,
        400,
        "BadRequest",
    ),
    # Bodies for the wrong type or place.
    Case(
        "wrong-kind",
        "POST",
        "{cm}",
        dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "w1"}}),
        JSON,
        400,
        "BadRequest",
        message_part="Secret",
    ),
    Case(
        "wrong-api-version",
        "POST",
        "{cm}",
        dumps({"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "w2"}}),
        JSON,
        400,
        "BadRequest",
        message="the API version in the data (v2) does not match the expected API version (v1)",
    ),
    Case(
        "wrong-group",
        "POST",
        "{deploy}",
        dumps({**deployment("w3"), "apiVersion": "batch/v1"}),
        JSON,
        400,
        "BadRequest",
    ),
    Case(
        "namespace-mismatch",
        "POST",
        "{cm}",
        dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w4", "namespace": "kube-system"}}
        ),
        JSON,
        400,
        "BadRequest",
        message="the namespace of the provided object does not match the namespace sent on the request",
    ),
    Case(
        "put-name-mismatch",
        "PUT",
        "{cm}/existing",
        dumps(configmap("other", data={"a": "2"})),
        JSON,
        400,
        "BadRequest",
        message="the name of the object (other) does not match the name on the URL (existing)",
    ),
    # Validation: 422 Invalid with field paths.
    Case(
        "invalid-name",
        "POST",
        "{cm}",
        dumps(configmap("Not_A_Name")),
        JSON,
        422,
        "Invalid",
        message_part='ConfigMap "Not_A_Name" is invalid',
        cause_fields=("metadata.name",),
    ),
    Case(
        "invalid-label-key-and-value",
        "POST",
        "{cm}",
        dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "l1", "labels": {"bad key": "x", "ok": "-bad-"}},
            }
        ),
        JSON,
        422,
        "Invalid",
        cause_fields=("metadata.labels", "metadata.labels"),
    ),
    Case(
        "invalid-label-on-update",
        "PUT",
        "{cm}/existing",
        dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "existing", "labels": {"x": "a b"}},
                "data": {"a": "2"},
            }
        ),
        JSON,
        422,
        "Invalid",
        cause_fields=("metadata.labels",),
    ),
    Case(
        "deployment-selector-mismatch",
        "POST",
        "{deploy}",
        dumps(deployment("sel", template_labels={"app": "other"})),
        JSON,
        422,
        "Invalid",
        message_part='Deployment.apps "sel" is invalid',
        cause_fields=("spec.template.metadata.labels",),
    ),
    Case(
        "invalid-strategic-patch-result",
        "PATCH",
        "{deploy}/existing",
        dumps({"spec": {"replicas": -1}}),
        SMP,
        422,
        "Invalid",
        cause_fields=("spec.replicas",),
    ),
    # Size.
    Case(
        "oversized-body",
        "POST",
        "{cm}",
        dumps(configmap("huge", data={"blob": "x" * (3 * MiB + 1)})),
        JSON,
        413,
        "RequestEntityTooLarge",
        message="Request entity too large: limit is 3145728",
    ),
    # fieldValidation=Strict.
    Case(
        "strict-unknown-top-level-field",
        "POST",
        "{cm}?fieldValidation=Strict",
        dumps(configmap("s1", foo=1)),
        JSON,
        400,
        "BadRequest",
        message='ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "foo"',
    ),
    Case(
        "strict-unknown-spec-field",
        "POST",
        "{deploy}?fieldValidation=Strict",
        dumps(deployment("s2", foo=1)),
        JSON,
        400,
        "BadRequest",
        # Upstream's create handler wraps decode errors; the version is the bare "v1" of apps/v1.
        message='Deployment in version "v1" cannot be handled as a Deployment: '
        'strict decoding error: unknown field "spec.foo"',
    ),
    Case(
        "strict-unknown-field-in-merge-patch",
        "PATCH",
        "{deploy}/existing?fieldValidation=Strict",
        dumps({"spec": {"foo": 1}}),
        MERGE,
        400,
        "BadRequest",
        message='strict decoding error: unknown field "spec.foo"',
    ),
    Case(
        "bad-field-validation-value",
        "POST",
        "{cm}?fieldValidation=Loose",
        dumps(configmap("s3")),
        JSON,
        400,
        "BadRequest",
    ),
    Case("bad-dry-run-value", "POST", "{cm}?dryRun=Some", dumps(configmap("s4")), JSON, 400, "BadRequest"),
    # Patches that do not apply.
    Case(
        "json-patch-failed-test",
        "PATCH",
        "{cm}/existing",
        dumps(
            [
                {"op": "test", "path": "/data/a", "value": "not-1"},
                {"op": "replace", "path": "/data/a", "value": "2"},
            ]
        ),
        JSONPATCH,
        422,
        "Invalid",
    ),
    Case(
        "json-patch-missing-path",
        "PATCH",
        "{cm}/existing",
        dumps([{"op": "remove", "path": "/data/nope"}]),
        JSONPATCH,
        422,
        "Invalid",
    ),
    Case(
        "json-patch-not-a-list",
        "PATCH",
        "{cm}/existing",
        dumps({"data": {"a": "2"}}),
        JSONPATCH,
        400,
        "BadRequest",
    ),
    Case("merge-patch-array", "PATCH", "{cm}/existing", b"[1, 2]", MERGE, 400, "BadRequest"),
    Case("merge-patch-string", "PATCH", "{cm}/existing", b'"x"', MERGE, 400, "BadRequest"),
    Case("merge-patch-malformed", "PATCH", "{cm}/existing", b'{"data": ', MERGE, 400, "BadRequest"),
    Case(
        "strategic-patch-bad-directive",
        "PATCH",
        "{deploy}/existing",
        dumps({"spec": {"template": {"spec": {"$patch": "explode"}}}}),
        SMP,
        400,
        "BadRequest",
        message_part="unknown patch type: explode",
    ),
    Case(
        "unsupported-patch-type",
        "PATCH",
        "{cm}/existing",
        dumps({"data": {"a": "2"}}),
        "text/plain",
        415,
        "UnsupportedMediaType",
    ),
    Case(
        "patch-missing-object",
        "PATCH",
        "{cm}/missing",
        dumps({"data": {"a": "2"}}),
        MERGE,
        404,
        "NotFound",
        message='configmaps "missing" not found',
    ),
    # Optimistic concurrency.
    Case(
        "put-stale-resource-version",
        "PUT",
        "{cm}/existing",
        dumps({"apiVersion": "v1", "kind": "ConfigMap", **STALE_CM}),
        JSON,
        409,
        "Conflict",
        message='Operation cannot be fulfilled on configmaps "existing": the object has been modified; '
        "please apply your changes to the latest version and try again",
    ),
    Case("patch-stale-resource-version", "PATCH", "{cm}/existing", dumps(STALE_CM), MERGE, 409, "Conflict"),
    Case(
        "put-missing-object",
        "PUT",
        "{cm}/missing",
        dumps(configmap("missing")),
        JSON,
        404,
        "NotFound",
        message='configmaps "missing" not found',
    ),
    Case(
        "create-existing-name",
        "POST",
        "{cm}",
        dumps(configmap("existing")),
        JSON,
        409,
        "AlreadyExists",
        message='configmaps "existing" already exists',
    ),
    # Routing.
    Case("unknown-resource", "GET", "/api/v1/namespaces/{ns}/gizmos", None, None, 404, "NotFound"),
    Case(
        "unknown-group",
        "POST",
        "/apis/gizmos.example.com/v1/namespaces/{ns}/gizmos",
        dumps({"kind": "Gizmo"}),
        JSON,
        404,
        "NotFound",
    ),
    Case(
        "post-to-named-resource",
        "POST",
        "{cm}/existing",
        dumps(configmap("existing")),
        JSON,
        405,
        "MethodNotAllowed",
    ),
    Case(
        "missing-namespace",
        "POST",
        "/api/v1/namespaces/no-such-ns/configmaps",
        dumps(configmap("x")),
        JSON,
        404,
        "NotFound",
        message='namespaces "no-such-ns" not found',
    ),
    # Authentication.
    Case(
        "anonymous-list",
        "GET",
        "{cm}",
        None,
        None,
        401,
        "Unauthorized",
        message="Unauthorized",
        anonymous=True,
    ),
    Case(
        "anonymous-create",
        "POST",
        "{cm}",
        dumps(configmap("anon")),
        JSON,
        401,
        "Unauthorized",
        anonymous=True,
    ),
    Case("anonymous-delete", "DELETE", "{cm}/existing", None, None, 401, "Unauthorized", anonymous=True),
    # Selectors: on list, watch and deletecollection (which must then delete nothing).
    Case(
        "label-selector-unparsable",
        "GET",
        "{cm}?labelSelector=app%20in%20(a",
        None,
        None,
        400,
        "BadRequest",
        message_part="unable to parse requirement",
    ),
    Case(
        "label-selector-bad-operator",
        "GET",
        "{cm}?labelSelector=app%3D%3D%3Da",
        None,
        None,
        400,
        "BadRequest",
    ),
    Case(
        "label-selector-on-watch", "GET", "{cm}?watch=true&labelSelector=a%3D(", None, None, 400, "BadRequest"
    ),
    Case(
        "label-selector-on-deletecollection",
        "DELETE",
        "{cm}?labelSelector=app%20in%20(a",
        None,
        None,
        400,
        "BadRequest",
    ),
    Case(
        "field-selector-unsupported",
        "GET",
        "{cm}?fieldSelector=data.a%3D1",
        None,
        None,
        400,
        "BadRequest",
        message_part="data.a",
    ),
    Case(
        "field-selector-without-operator",
        "GET",
        "{cm}?fieldSelector=metadata.name",
        None,
        None,
        400,
        "BadRequest",
    ),
    Case(
        "field-selector-on-watch",
        "GET",
        "{cm}?watch=true&fieldSelector=spec.foo%3Dx",
        None,
        None,
        400,
        "BadRequest",
    ),
    Case(
        "field-selector-on-deletecollection",
        "DELETE",
        "{cm}?fieldSelector=spec.foo%3Dx",
        None,
        None,
        400,
        "BadRequest",
    ),
    Case(
        "resource-version-not-a-number",
        "GET",
        "{cm}?watch=true&resourceVersion=abc",
        None,
        None,
        400,
        "BadRequest",
    ),
]


def fill(path: str, env: Fixture) -> str:
    return path.format(cm=env.cm, deploy=env.deploy, ns=env.ns)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rejected_with_status_and_nothing_written(raw: Raw, env: Fixture, case: Case) -> None:
    before = raw.revision(env.cm)
    reply = raw.request(
        case.method, fill(case.path, env), case.body, case.content_type, anonymous=case.anonymous
    )
    status = assert_status(reply, case.code, case.reason)
    if case.message is not None:
        assert status["message"] == case.message
    if case.message_part is not None:
        assert case.message_part in status["message"]
    if case.cause_fields:
        causes = status["details"]["causes"]
        assert [c["field"] for c in causes] == list(case.cause_fields)
        for cause in causes:
            assert cause["reason"].startswith("FieldValue") and cause["message"]
            # The summary message names every cause's field.
            assert cause["field"] in status["message"]
    assert_nothing_written(raw, env, before)


def test_health_and_version_need_no_credentials(raw: Raw) -> None:
    for path in ("/livez", "/readyz", "/healthz"):
        reply = raw.request("GET", path, anonymous=True)
        assert reply.status == 200, (path, reply.body)
        assert reply.body == b"ok"
    reply = raw.request("GET", "/version", anonymous=True)
    assert reply.status == 200
    version = reply.json()
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")
    # Anything else is not for anonymous users.
    for path in ("/api", "/apis", "/api/v1/namespaces", "/metrics", "/openapi/v3"):
        assert_status(raw.request("GET", path, anonymous=True), 401, "Unauthorized")


def test_field_validation_warn_creates_with_a_warning(raw: Raw, env: Fixture) -> None:
    reply = raw.request(
        "POST", f"{env.deploy}?fieldValidation=Warn", dumps(deployment("warned", foo=1)), JSON
    )
    assert reply.status == 201, reply.body
    warning = reply.headers.get("Warning", "")
    assert warning.startswith("299 - ") and "unknown field" in warning and "spec.foo" in warning
    created = raw.get_json(f"{env.deploy}/warned")
    assert created["metadata"]["uid"] == reply.json()["metadata"]["uid"]
    # Warn is also the default when the parameter is absent (upstream since 1.23)...
    reply = raw.request("POST", env.deploy, dumps(deployment("defaulted", foo=1)), JSON)
    assert reply.status == 201 and "spec.foo" in reply.headers.get("Warning", "")
    # ...and Ignore says nothing.
    reply = raw.request(
        "POST", f"{env.deploy}?fieldValidation=Ignore", dumps(deployment("ignored", foo=1)), JSON
    )
    assert reply.status == 201 and reply.headers.get("Warning") is None
    for name in ("warned", "defaulted", "ignored"):
        assert raw.request("DELETE", f"{env.deploy}/{name}").status == 200


# ---------------------------------------------------------------------------------------------
# Decoding as upstream's typed structs: wrong types, unknown fields dropped, warnings, media types.


def test_unknown_fields_are_dropped_from_built_in_objects(raw: Raw, env: Fixture) -> None:
    for mode in ("Warn", "Ignore"):
        name = f"drop-{mode.lower()}"
        reply = raw.request(
            "POST", f"{env.deploy}?fieldValidation={mode}", dumps(deployment(name, foo=1)), JSON
        )
        assert reply.status == 201, reply.body
        try:
            assert "foo" not in reply.json()["spec"]
            assert "foo" not in raw.get_json(f"{env.deploy}/{name}")["spec"]
        finally:
            raw.request("DELETE", f"{env.deploy}/{name}")


def test_warning_header_quotes_like_upstream(raw: Raw, env: Fixture) -> None:
    reply = raw.request(
        "POST", f"{env.deploy}?fieldValidation=Warn", dumps(deployment("quoted", foo=1)), JSON
    )
    raw.request("DELETE", f"{env.deploy}/quoted")
    assert reply.headers.get("Warning") == '299 - "unknown field \\"spec.foo\\""'


TYPE_MISMATCHES = [
    ("configmap-data-number", "{cm}", configmap("t1", data={"k": 1})),
    ("configmap-data-string", "{cm}", configmap("t2", data="text")),
    ("deployment-replicas-string", "{deploy}", deployment("t3", replicas="three")),
    ("deployment-containers-object", "{deploy}", deployment("t4")),
]
# A list where the schema has a list (and only that wrong), so only decoding can reject it.
TYPE_MISMATCHES[-1][2]["spec"]["template"]["spec"]["containers"] = {"name": "app", "image": "nginx:1.25"}


@pytest.mark.parametrize(
    ("collection", "body"), [(c, b) for _, c, b in TYPE_MISMATCHES], ids=[i for i, _, _ in TYPE_MISMATCHES]
)
def test_wrongly_typed_fields_are_bad_request(
    raw: Raw, env: Fixture, collection: str, body: dict[str, Any]
) -> None:
    path = fill(collection, env)
    before = raw.revision(env.cm)
    reply = raw.request("POST", path, dumps(body), JSON)
    if reply.status == 201:
        raw.request("DELETE", f"{path}/{body['metadata']['name']}")
    status = assert_status(reply, 400, "BadRequest")
    assert "cannot be handled as a" in status["message"]
    assert_nothing_written(raw, env, before)


def test_unsupported_body_content_type_is_415(raw: Raw, env: Fixture) -> None:
    reply = raw.request("POST", env.cm, dumps(configmap("plain")), "text/plain")
    if reply.status == 201:
        raw.request("DELETE", f"{env.cm}/plain")
    assert_status(reply, 415, "UnsupportedMediaType")


def test_failed_json_patch_says_why(raw: Raw, env: Fixture) -> None:
    reply = raw.request(
        "PATCH", f"{env.cm}/existing", dumps([{"op": "test", "path": "/data/a", "value": "x"}]), JSONPATCH
    )
    status = assert_status(reply, 422, "Invalid")
    assert status["message"] == "the server rejected our request due to an error in our request"
    # Upstream: NewGenericServerResponse(422, ..., err.Error()) puts the patch error in a cause.
    [cause] = status["details"]["causes"]
    assert cause["reason"] == "UnexpectedServerResponse"
    assert "/data/a" in cause["message"]


def test_duplicate_fields_are_refused_under_strict(raw: Raw, env: Fixture) -> None:
    before = raw.revision(env.cm)
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}'
    reply = raw.request("POST", f"{env.cm}?fieldValidation=Strict", body, JSON)
    status = assert_status(reply, 400, "BadRequest")
    assert status["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data.a"'
    )
    assert_nothing_written(raw, env, before)
