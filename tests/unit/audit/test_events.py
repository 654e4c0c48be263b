"""The audit middleware on a small aiohttp app: event shape, stages, levels and redaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controlplane.api import errors
from controlplane.apiserver import audit, codec, requestinfo
from controlplane.apiserver.audit_policy import parse_policy
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import Decision

USER = web.RequestKey("user", UserInfo)
INFO = web.RequestKey("ri", requestinfo.RequestInfo)
ALICE = UserInfo(name="alice", uid="u1", groups=("system:authenticated",))
NOW = datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)


def make_app(level: str, backend: audit.ListBackend, **policy: Any) -> web.Application:
    auditor = audit.Auditor(
        parse_policy(
            {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": level}], **policy}
        ),
        backend,
        clock=lambda: NOW,
    )

    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") == "Bearer wrong-token":
            raise errors.Unauthorized(message="Unauthorized")
        request[USER] = ALICE
        return await handler(request)

    @web.middleware
    async def authorize(request: web.Request, handler: Any) -> web.StreamResponse:
        audit.record_decision(request, Decision(True, 'RBAC: allowed by ClusterRoleBinding "x"'))
        if request.headers.get("X-As"):
            request[USER] = UserInfo(name=request.headers["X-As"])
        return await handler(request)

    async def echo(request: web.Request) -> web.StreamResponse:
        if request.query.get("fail") == "404":
            raise errors.NotFound(message='configmaps "c" not found', name="c", kind="configmaps")
        if request.query.get("fail") == "boom":
            raise RuntimeError("secret detail")
        if request.query.get("watch"):
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"{}\n")
            return response
        body = json.loads(await codec.read_body(request)) if request.body_exists else {}
        return codec.json_response(
            {"kind": "Thing", "metadata": {"name": "c", "managedFields": [{}]}, "got": body}
        )

    @web.middleware
    async def request_info(request: web.Request, handler: Any) -> web.StreamResponse:
        request[INFO] = requestinfo.parse(request.method, request.path, watch_param="watch" in request.query)
        try:
            return await handler(request)
        except errors.StatusError as exc:
            return codec.status_response(exc)

    app = web.Application(
        middlewares=[
            request_info,
            audit.failed_authentication(auditor, user_key=USER, info_key=INFO),
            authenticate,
            audit.middleware(auditor, user_key=USER, info_key=INFO),
            authorize,
        ]
    )
    app.on_response_prepare.append(audit.on_response_prepare)
    app.router.add_route("*", "/api/{tail:.*}", echo)
    return app


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(
        level: str, backend: audit.ListBackend, **policy: Any
    ) -> TestClient[web.Request, web.Application]:
        client = TestClient(TestServer(make_app(level, backend, **policy)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_event_shape_at_request_response(client_for: Any) -> None:
    backend = audit.ListBackend()
    client = await client_for("RequestResponse", backend)
    resp = await client.post(
        "/api/v1/namespaces/ns/configmaps?fieldManager=x",
        json={"data": {"a": "b"}},
        headers={"User-Agent": "ua/1"},
    )
    assert resp.status == 200
    assert (await resp.json())["got"] == {"data": {"a": "b"}}, "the handler still reads the body"
    received, complete = backend.events
    assert received["stage"] == "RequestReceived" and "responseStatus" not in received
    assert complete == {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": resp.headers["Audit-ID"],
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/ns/configmaps?fieldManager=x",
        "verb": "create",
        "user": {"username": "alice", "uid": "u1", "groups": ["system:authenticated"]},
        "sourceIPs": ["127.0.0.1"],
        "userAgent": "ua/1",
        # A create's name comes from the object.
        "objectRef": {"resource": "configmaps", "namespace": "ns", "name": "c", "apiVersion": "v1"},
        "requestReceivedTimestamp": "2026-11-26T10:00:00.123456Z",
        "stageTimestamp": "2026-11-26T10:00:00.123456Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": 'RBAC: allowed by ClusterRoleBinding "x"',
        },
        "responseStatus": {"metadata": {}, "code": 200},
        "requestObject": {"data": {"a": "b"}},
        "responseObject": {
            "kind": "Thing",
            "metadata": {"name": "c", "managedFields": [{}]},
            "got": {"data": {"a": "b"}},
        },
    }


async def test_levels_omit_stages_and_managed_fields(client_for: Any) -> None:
    backend = audit.ListBackend()
    client = await client_for("Request", backend, omitStages=["RequestReceived"], omitManagedFields=True)
    await client.put("/api/v1/namespaces/ns/configmaps/c", json={"metadata": {"managedFields": [{}]}})
    (event,) = backend.events
    assert event["stage"] == "ResponseComplete" and event["level"] == "Request"
    assert event["requestObject"] == {"metadata": {}}
    assert "responseObject" not in event
    backend = audit.ListBackend()
    client = await client_for("Metadata", backend)
    await client.put("/api/v1/namespaces/ns/configmaps/c", json={"x": 1})
    assert all("requestObject" not in e for e in backend.events)
    backend = audit.ListBackend()
    client = await client_for("None", backend)
    resp = await client.get("/api/v1/namespaces/ns/configmaps/c")
    assert backend.events == [] and resp.headers["Audit-ID"]


async def test_errors_panics_and_client_audit_id(client_for: Any) -> None:
    backend = audit.ListBackend()
    client = await client_for("Metadata", backend)
    resp = await client.get("/api/v1/namespaces/ns/configmaps/c?fail=404", headers={"Audit-ID": "given"})
    assert resp.headers["Audit-ID"] == "given"
    status = backend.events[-1]["responseStatus"]
    assert (
        status["code"] == 404
        and status["reason"] == "NotFound"
        and status["message"] == 'configmaps "c" not found'
    )
    assert status["status"] == "Failure"
    resp = await client.get("/api/v1/namespaces/ns/configmaps/c?fail=boom")
    assert resp.status == 500
    panic = backend.events[-1]
    assert panic["stage"] == "Panic" and panic["responseStatus"]["code"] == 500
    assert "secret detail" not in json.dumps(panic)


async def test_watch_response_started_and_impersonated_user(client_for: Any) -> None:
    backend = audit.ListBackend()
    client = await client_for("Metadata", backend)
    resp = await client.get("/api/v1/namespaces/ns/configmaps?watch=1", headers={"X-As": "jane"})
    await resp.read()
    stages = [e["stage"] for e in backend.events]
    assert stages == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert backend.events[1]["responseStatus"] == {"metadata": {}, "code": 200}
    assert backend.events[-1]["impersonatedUser"] == {"username": "jane"}
    assert backend.events[-1]["user"]["username"] == "alice"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/ns/secrets",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        "/api/v1/namespaces/ns/serviceaccounts/default/token",
    ],
)
async def test_secrets_and_tokens_are_metadata_only(client_for: Any, path: str) -> None:
    backend = audit.ListBackend()
    client = await client_for("RequestResponse", backend)
    await client.post(path, json={"data": {"password": "hunter2"}, "spec": {"token": "tok-abc"}})
    text = json.dumps(backend.events)
    assert backend.events and all(e["level"] == "Metadata" for e in backend.events)
    assert "hunter2" not in text and "tok-abc" not in text


def test_log_backend_writes_lines_and_rotates(tmp_path: Any) -> None:
    path = tmp_path / "audit.log"
    backend = audit.LogBackend(str(path), max_size_mb=1, max_backups=1)
    backend.max_size = 300  # bytes, to rotate in a test
    backend.start()
    for i in range(10):
        backend.process({"kind": "Event", "i": i, "pad": "x" * 100})
    backend.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    backups = sorted(tmp_path.glob("audit-*.log"))
    assert len(backups) == 1, "only max_backups rotated files are kept"
    assert lines[-1]["i"] == 9 and len(lines) < 10
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_full_queue_drops_and_counts() -> None:
    from controlplane.apiserver import metrics

    backend = audit.LogBackend("/dev/null", buffer_size=1)
    before = metrics.AUDIT_ERRORS.labels(plugin="buffered")._value.get()
    backend.process({"a": 1})
    backend.process({"a": 2})  # writer thread not started: the queue is full
    assert metrics.AUDIT_ERRORS.labels(plugin="buffered")._value.get() == before + 1


async def test_failed_authentication_is_recorded_without_the_token(client_for: Any) -> None:
    backend = audit.ListBackend()
    client = await client_for("Metadata", backend, omitStages=["RequestReceived"])
    resp = await client.get("/api/v1/namespaces/ns/pods", headers={"Authorization": "Bearer wrong-token"})
    assert resp.status == 401 and resp.headers["Audit-ID"]
    (event,) = backend.events
    assert event["stage"] == "ResponseStarted" and event["user"] == {}
    assert event["auditID"] == resp.headers["Audit-ID"]
    assert event["responseStatus"] == {
        "metadata": {},
        "message": "Authentication failed, attempted: bearer",
        "code": 401,
    }
    assert "wrong-token" not in json.dumps(event)
