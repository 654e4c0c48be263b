"""The authentication endpoints through the real request pipeline (in-memory storage, plain HTTP):
TokenRequest, TokenReview, SelfSubjectReview, and the 401 every refused token gets."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization

from controlplane.__main__ import _max_token_expiration
from controlplane.api.resources import default_registry
from controlplane.apiserver import app as app_module
from controlplane.apiserver import audit, authn_endpoints
from controlplane.apiserver.allocators import NodePortAllocator, ServiceIPAllocator
from controlplane.apiserver.audit_policy import parse_policy
from controlplane.apiserver.authz import Attributes, Decision
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.server import _bootstrap
from controlplane.apiserver.service_allocation import ServiceAllocation
from controlplane.apiserver.serviceaccount_tokens import DEFAULT_ISSUER, ObjectCache
from controlplane.apiserver.store import ObjectStore
from controlplane.apiserver.token_request import TokenIssuer
from controlplane.storage import open_storage

from .helpers import rsa_key

Client = TestClient[web.Request, web.Application]

UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


class AllowAll:
    """Authorization is another step's business; these tests look at authentication only."""

    async def authorize(self, attrs: Attributes) -> Decision:
        return Decision(allowed=True)


class Env:
    def __init__(
        self,
        client: Client,
        ctx: ServerContext,
        objects: ObjectCache,
        static: str,
        issuer: TokenIssuer,
        audited: audit.ListBackend,
    ) -> None:
        self.client = client
        self.ctx = ctx
        self.objects = objects
        self.static = static  # a token-file token: the "admin" of these tests
        self.issuer = issuer
        self.audited = audited  # every request's audit events, at Metadata level

    def audit_annotations(self, method: str, path: str) -> dict[str, str]:
        """The annotations of the last completed request to `path`."""
        verb = {"GET": "list", "POST": "create"}[method]
        events = [
            e
            for e in self.audited.events
            if e["stage"] == "ResponseComplete" and e["requestURI"] == path and e["verb"] == verb
        ]
        assert events, f"no audit event for {method} {path}"
        annotations: dict[str, str] = events[-1].get("annotations", {})
        return annotations

    async def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.static}"}
        resp = await self.client.request(method, path, headers=headers, json=body)
        return resp.status, await resp.json()

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, obj = await self.call("POST", path, body=body)
        assert status == 201, obj
        assert isinstance(obj, dict)
        return obj

    async def token(self, sa: str = "bob", **spec: Any) -> tuple[int, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        return await self.call("POST", f"/api/v1/namespaces/default/serviceaccounts/{sa}/token", body=body)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    storage = open_storage("memory://", compaction_interval=0)
    await storage.start()
    ips = ServiceIPAllocator(storage, "10.96.0.0/24")
    ctx = ServerContext(
        registry=default_registry(),
        storage=storage,
        store=ObjectStore(storage),
        services=ServiceAllocation(ips, NodePortAllocator(storage)),
    )
    await _bootstrap(ctx, ips.kubernetes_service_ip, 6443)
    token_file = tmp_path / "tokens.csv"
    token_file.write_text('admin-token,admin,uid-admin,"system:masters"\n')
    # A key made once per session instead of one per test (RSA key generation is slow).
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir(mode=0o700)
    key = rsa_key().private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (pki_dir / "sa.key").write_bytes(key)
    (pki_dir / "sa.key").chmod(0o600)
    authentication = await authn_endpoints.build(ctx, pki_dir, token_file=token_file, lookup_ttl=0.0)
    audited = audit.ListBackend()
    auditor = audit.Auditor(
        parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}),
        audited,
    )
    app = app_module.create_app(
        ctx,
        app_module.AppSettings(
            authenticator=authentication.authenticator, authorizer=AllowAll(), auditor=auditor
        ),
    )
    app.middlewares.append(authn_endpoints.middleware(authentication.endpoints))
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    e = Env(client, ctx, authentication.objects, "admin-token", authentication.endpoints.issuer, audited)
    await e.create("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "bob"}})
    try:
        yield e
    finally:
        await client.close()
        await storage.close()


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


async def test_token_request_issues_a_working_token(env: Env) -> None:
    status, out = await env.token()
    assert status == 201, out
    assert out["kind"] == "TokenRequest" and out["apiVersion"] == "authentication.k8s.io/v1"
    assert out["spec"]["audiences"] == [DEFAULT_ISSUER]
    assert out["spec"]["expirationSeconds"] == 3600
    token = out["status"]["token"]
    claims = _payload(token)
    assert claims["exp"] - claims["iat"] == 3600
    assert out["status"]["expirationTimestamp"].endswith("Z")
    status, who = await env.call(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        token,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert status == 201, who
    info = who["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:default:bob"
    assert info["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]
    assert info["extra"] == {"authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"]}
    assert who["metadata"]["creationTimestamp"]

    # Deleting the ServiceAccount revokes it.
    status, _ = await env.call("DELETE", "/api/v1/namespaces/default/serviceaccounts/bob")
    assert status == 200
    for path in ("/api/v1/namespaces", "/apis", "/version", "/api/v1/namespaces/default/pods/x"):
        status, body = await env.call("GET", path, token)
        assert (status, body) == (401, UNAUTHORIZED), path


async def test_stale_projected_token_is_named_in_the_audit_log(env: Env) -> None:
    """The kubelet's projected token (3607 s, extended to a year) still works after its
    `warnafter`. Each request made with it then gets upstream's `authentication.k8s.io/stale-token`
    audit annotation, and so does a TokenReview of it. A fresh token gets none."""
    await env.create(
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": "web"},
            "spec": {"serviceAccountName": "bob", "containers": [{"name": "c", "image": "nginx"}]},
        },
    )
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "web"}
    env.issuer.clock = lambda: time.time() - 7200  # issued two hours ago: warnafter was ~1 h ago
    status, out = await env.token(boundObjectRef=ref, expirationSeconds=3607)
    assert status == 201, out
    stale = out["status"]["token"]
    env.issuer.clock = time.time
    status, out = await env.token(boundObjectRef=ref, expirationSeconds=3607)
    assert status == 201, out
    fresh = out["status"]["token"]

    path = "/api/v1/namespaces/default/configmaps"
    status, _ = await env.call("GET", path, stale)
    assert status == 200
    found = re.fullmatch(
        r"subject: system:serviceaccount:default:bob, seconds after warning threshold: (\d+)",
        env.audit_annotations("GET", path)["authentication.k8s.io/stale-token"],
    )
    assert found is not None and 3590 <= int(found.group(1)) <= 3700
    status, _ = await env.call("GET", path, fresh)
    assert status == 200
    assert "authentication.k8s.io/stale-token" not in env.audit_annotations("GET", path)

    reviews = "/apis/authentication.k8s.io/v1/tokenreviews"
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": stale}}
    status, out = await env.call("POST", reviews, body=review)
    assert status == 201 and out["status"]["authenticated"] is True, out
    assert env.audit_annotations("POST", reviews)["authentication.k8s.io/stale-token"].startswith(
        "subject: system:serviceaccount:default:bob, seconds after warning threshold: "
    )


async def test_max_token_expiration_caps_what_is_issued(env: Env) -> None:
    """--service-account-max-token-expiration: a longer request is issued with the cap, as
    upstream; the kubelet's 3607 s projected tokens are still extended to a year unless
    --service-account-extend-token-expiration=false (checked in test_pod_bound_tokens)."""
    env.issuer.max_expiration_seconds = 7200
    status, out = await env.token(expirationSeconds=36000)
    assert status == 201, out
    assert out["spec"]["expirationSeconds"] == 7200
    claims = _payload(out["status"]["token"])
    assert claims["exp"] - claims["iat"] == 7200
    status, out = await env.token(expirationSeconds=3600)  # under the cap: as asked
    assert status == 201 and out["spec"]["expirationSeconds"] == 3600


def test_max_token_expiration_flag_is_checked_as_upstream() -> None:
    assert _max_token_expiration("0s") == 0
    assert _max_token_expiration("48h") == 48 * 3600
    for bad in ("30m", "2000000h"):
        with pytest.raises(SystemExit, match="between 1 hour and 2\\^32 seconds"):
            _max_token_expiration(bad)
    with pytest.raises(SystemExit, match="invalid"):
        _max_token_expiration("soon")


async def test_token_request_validation(env: Env) -> None:
    status, out = await env.token(expirationSeconds=599)
    assert status == 422
    assert out["message"] == (
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: '
        "may not specify a duration less than 10 minutes"
    )
    status, out = await env.token(expirationSeconds=600, audiences=["vault"])
    assert status == 201 and out["spec"]["audiences"] == ["vault"]
    assert _payload(out["status"]["token"])["aud"] == ["vault"]
    status, out = await env.token("nobody")
    assert (status, out["message"]) == (404, 'serviceaccounts "nobody" not found')
    status, out = await env.token(boundObjectRef={"kind": "Deployment", "apiVersion": "apps/v1", "name": "d"})
    assert (status, out["message"]) == (400, "cannot bind token to object of type apps/v1, Kind=Deployment")
    status, out = await env.call("GET", "/api/v1/namespaces/default/serviceaccounts/bob/token")
    assert status == 405


async def test_pod_bound_tokens(env: Env) -> None:
    pod = {
        "metadata": {"name": "web"},
        "spec": {"serviceAccountName": "bob", "containers": [{"name": "c", "image": "nginx"}]},
    }
    created = await env.create("/api/v1/namespaces/default/pods", pod)
    await env.create("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "default"}})
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "web"}
    status, out = await env.token(boundObjectRef={**ref, "uid": "not-it"})
    assert status == 409 and "does not match the UID in record" in out["message"]
    status, out = await env.token("default", boundObjectRef=ref)
    assert status == 400
    assert (
        out["message"]
        == 'cannot bind token for serviceaccount "default" to pod running with different serviceaccount name.'
    )
    status, out = await env.token(boundObjectRef=ref)
    assert status == 201
    assert out["spec"]["boundObjectRef"]["uid"] == created["metadata"]["uid"]
    token = out["status"]["token"]
    assert _payload(token)["kubernetes.io"]["pod"] == {"name": "web", "uid": created["metadata"]["uid"]}
    status, _ = await env.call("GET", "/api/v1/namespaces", token)
    assert status == 200

    # The kubelet's projected-volume lifetime (3607 s) is quietly extended to a year, with a
    # warnafter at the requested time; the response still reports the requested expiry.
    status, out = await env.token(boundObjectRef=ref, expirationSeconds=3607)
    claims = _payload(out["status"]["token"])
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    stamp = datetime.fromisoformat(out["status"]["expirationTimestamp"].replace("Z", "+00:00"))
    assert int(stamp.timestamp()) == claims["iat"] + 3607
    _, unbound = await env.token(expirationSeconds=3607)
    claims = _payload(unbound["status"]["token"])
    assert claims["exp"] - claims["iat"] == 3607 and "warnafter" not in claims["kubernetes.io"]

    status, _ = await env.call("DELETE", "/api/v1/namespaces/default/pods/web?gracePeriodSeconds=0")
    assert status == 200
    status, body = await env.call("GET", "/api/v1/namespaces", token)
    assert (status, body) == (401, UNAUTHORIZED)


async def test_token_review(env: Env) -> None:
    _, out = await env.token()
    token = out["status"]["token"]
    review: dict[str, Any] = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    status, result = await env.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=review)
    assert status == 201, result
    assert result["status"]["authenticated"] is True
    assert result["status"]["user"]["username"] == "system:serviceaccount:default:bob"
    assert result["status"]["audiences"] == [DEFAULT_ISSUER]
    assert "error" not in result["status"]

    # Another audience than the token's: not authenticated, with the reason.
    review["spec"]["audiences"] = ["vault"]
    status, result = await env.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=review)
    assert status == 201
    assert "authenticated" not in result["status"] and result["status"]["user"] == {}
    assert "token audiences" in result["status"]["error"]

    # Static tokens answer for the API's audience only (audience-agnostic).
    static = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "admin-token"},
    }
    status, result = await env.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=static)
    assert result["status"]["user"]["username"] == "admin"
    assert result["status"]["audiences"] == [DEFAULT_ISSUER]

    garbage = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "nope"}}
    status, result = await env.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=garbage)
    assert status == 201
    assert result["status"] == {"user": {}, "error": "invalid bearer token"}

    empty = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}}
    status, result = await env.call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=empty)
    assert (status, result["message"]) == (400, "token is required for TokenReview in authentication")
    status, _ = await env.call("GET", "/apis/authentication.k8s.io/v1/tokenreviews")
    assert status == 405


def _metric(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_failed_authentication_is_401_and_counted(env: Env) -> None:
    errors_before = _metric("authentication_attempts_total", result="error")
    failures_before = _metric("authentication_attempts_total", result="failure")
    success_before = _metric("authentication_attempts_total", result="success")
    for token in ("unknown", "abcdef.0123456789abcdef", "a.b.c", "admin-tokeN"):
        status, body = await env.call("GET", "/api/v1/namespaces", token)
        assert (status, body) == (401, UNAUTHORIZED)
    resp = await env.client.get("/api/v1/namespaces")
    assert resp.status == 401 and await resp.json() == UNAUTHORIZED
    status, _ = await env.call("GET", "/api/v1/namespaces")
    assert status == 200
    assert _metric("authentication_attempts_total", result="error") == errors_before + 4
    assert _metric("authentication_attempts_total", result="failure") == failures_before + 1
    assert _metric("authentication_attempts_total", result="success") >= success_before + 1


async def test_discovery_lists_the_endpoints(env: Env) -> None:
    status, doc = await env.call("GET", "/apis/authentication.k8s.io/v1")
    assert status == 200
    verbs = {r["name"]: r["verbs"] for r in doc["resources"]}
    assert verbs == {"selfsubjectreviews": ["create"], "tokenreviews": ["create"]}
    status, doc = await env.call("GET", "/api/v1")
    assert {"name": "serviceaccounts/token", "verbs": ["create"]}.items() <= next(
        r for r in doc["resources"] if r["name"] == "serviceaccounts/token"
    ).items()
