"""The tokencleaner (expired bootstrap token Secrets go) and the serviceaccount-token controller
(legacy token Secrets filled, and deleted with their ServiceAccount), driven with a fake client and
a fake clock."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from controlplane.api import errors
from controlplane.client import ResourcePath
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
    WorkQueue,
    rfc3339,
)
from controlplane.controllers.serviceaccount_tokens import TokensController
from controlplane.controllers.tokencleaner import TokenCleaner, time_left

from .helpers import rsa_key

T0 = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)


def _b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


class FakeClient:
    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[Any, ...]] = []

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append(("get", rp.plural, name))
        if rp.plural == "serviceaccounts" and f"{namespace}/{name}" in self.accounts:
            return self.accounts[f"{namespace}/{name}"]
        raise errors.NotFound(message=f'{rp.plural} "{name}" not found')

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        self.calls.append((method, path, copy.deepcopy(body)))
        return body

    async def delete(
        self, rp: ResourcePath, name: str, namespace: str | None = None, *, options: Any = None
    ) -> None:
        self.calls.append(("delete", name, options))


def _ctx(client: FakeClient, clock: FakeClock, **extra: Any) -> ControllerContext:
    return ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("test"),  # type: ignore[arg-type]
        clock=clock,
        config=ControllerConfig(extra=extra),
    )


def bootstrap_secret(name: str, expiration: str | None, *, namespace: str = "kube-system") -> dict[str, Any]:
    data = {"token-id": _b64(name[-6:]), "token-secret": _b64("0123456789abcdef")}
    if expiration is not None:
        data["expiration"] = _b64(expiration)
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "resourceVersion": "1"},
        "type": "bootstrap.kubernetes.io/token",
        "data": data,
    }


def test_time_left() -> None:
    assert time_left(bootstrap_secret("bootstrap-token-aaaaaa", None), T0) == (0.0, False)
    assert time_left(bootstrap_secret("bootstrap-token-aaaaaa", rfc3339(T0 + timedelta(seconds=90))), T0) == (
        90.0,
        False,
    )
    assert time_left(bootstrap_secret("bootstrap-token-aaaaaa", rfc3339(T0)), T0) == (0.0, True)
    assert time_left(bootstrap_secret("bootstrap-token-aaaaaa", "next tuesday"), T0) == (0.0, True)


async def test_tokencleaner_deletes_expired_tokens_when_due() -> None:
    client, clock = FakeClient(), FakeClock(T0)
    cleaner = TokenCleaner(_ctx(client, clock))
    soon = bootstrap_secret("bootstrap-token-aaaaaa", rfc3339(T0 + timedelta(seconds=30)))
    past = bootstrap_secret("bootstrap-token-bbbbbb", rfc3339(T0 - timedelta(seconds=1)))
    forever = bootstrap_secret("bootstrap-token-cccccc", None)
    elsewhere = bootstrap_secret(
        "bootstrap-token-dddddd", rfc3339(T0 - timedelta(days=1)), namespace="default"
    )
    for secret in (soon, past, forever, elsewhere):
        cleaner.secrets.apply("ADDED", secret)
    assert sorted(cleaner.queue._queue) == [  # only kube-system's bootstrap tokens are watched
        "kube-system/bootstrap-token-aaaaaa",
        "kube-system/bootstrap-token-bbbbbb",
        "kube-system/bootstrap-token-cccccc",
    ]
    assert await cleaner.reconcile("kube-system/bootstrap-token-aaaaaa") == 30.0
    assert await cleaner.reconcile("kube-system/bootstrap-token-bbbbbb") is None
    assert await cleaner.reconcile("kube-system/bootstrap-token-cccccc") is None
    assert client.calls == [
        ("delete", "bootstrap-token-bbbbbb", {"preconditions": {"uid": "uid-bootstrap-token-bbbbbb"}})
    ]
    clock.advance(30)
    assert await cleaner.reconcile("kube-system/bootstrap-token-aaaaaa") is None
    assert client.calls[-1][1] == "bootstrap-token-aaaaaa"


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "sa.key"
    path.write_bytes(
        rsa_key().private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def account(name: str = "bob", uid: str = "uid-bob") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "1"}}


def token_secret(name: str = "bob-token", sa: str = "bob", **data: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "resourceVersion": "5",
            "annotations": {"kubernetes.io/service-account.name": sa},
        },
        "type": "kubernetes.io/service-account-token",
        "data": data,
    }


async def test_tokens_controller_fills_legacy_token_secrets(tmp_path: Path) -> None:
    client, clock = FakeClient(), FakeClock(T0)
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    controller = TokensController(
        _ctx(client, clock, service_account_private_key_file=str(_key_file(tmp_path)), root_ca_file=str(ca))
    )
    controller.accounts.apply("ADDED", account())
    controller.secrets.apply("ADDED", token_secret())
    assert await controller.reconcile("ns/bob-token") is None
    (method, path, updated) = client.calls[-1]
    assert (method, path) == ("PUT", "/api/v1/namespaces/ns/secrets/bob-token")
    assert updated["metadata"]["resourceVersion"] == "5"  # a concurrent change is a Conflict
    assert updated["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": "bob",
        "kubernetes.io/service-account.uid": "uid-bob",
    }
    assert base64.b64decode(updated["data"]["ca.crt"]) == ca.read_bytes()
    assert base64.b64decode(updated["data"]["namespace"]) == b"ns"
    token = base64.b64decode(updated["data"]["token"]).decode()
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": rsa_key().key_id}
    claims = jwt.decode(token, rsa_key().private_key.public_key(), algorithms=["RS256"])
    assert claims == {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "ns",
        "kubernetes.io/serviceaccount/secret.name": "bob-token",
        "kubernetes.io/serviceaccount/service-account.name": "bob",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-bob",
        "sub": "system:serviceaccount:ns:bob",
    }

    # A filled Secret is left alone.
    controller.secrets.apply("MODIFIED", updated)
    calls = len(client.calls)
    assert await controller.reconcile("ns/bob-token") is None
    assert len(client.calls) == calls


async def test_tokens_controller_deletes_secrets_of_gone_accounts(tmp_path: Path) -> None:
    client, clock = FakeClient(), FakeClock(T0)
    controller = TokensController(
        _ctx(client, clock, service_account_private_key_file=str(_key_file(tmp_path)))
    )
    # Not in the cache yet, but it exists: a live read saves the Secret.
    client.accounts["ns/late"] = account("late", "uid-late")
    controller.secrets.apply("ADDED", token_secret("late-token", "late"))
    await controller.reconcile("ns/late-token")
    assert ("get", "serviceaccounts", "late") in client.calls
    assert client.calls[-1][0] == "PUT"

    controller.accounts.apply("ADDED", account())
    controller.secrets.apply("ADDED", token_secret())
    controller.queue = WorkQueue(clock=clock)
    controller.accounts.apply("DELETED", account())
    assert list(controller.queue._queue) == ["ns/bob-token"]
    await controller.reconcile("ns/bob-token")
    assert client.calls[-1] == ("delete", "bob-token", {"preconditions": {"uid": "uid-bob-token"}})

    # A Secret naming an older account of the same name goes too.
    stale = token_secret()
    stale["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = "uid-old"
    controller.accounts.apply("ADDED", account())
    controller.secrets.apply("MODIFIED", stale)
    await controller.reconcile("ns/bob-token")
    assert client.calls[-1][0] == "delete"


async def test_tokens_controller_idles_without_a_key() -> None:
    client, clock = FakeClient(), FakeClock(T0)
    controller = TokensController(_ctx(client, clock))
    assert controller.signer is None
    assert await controller.reconcile("ns/bob-token") is None
    assert client.calls == []
