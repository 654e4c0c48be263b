"""The bootstrap signer: upstream's detached JWS (its own test vectors), which token Secrets may
sign, and the ConfigMap written only when a signature changes."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
import jwt
from hypothesis import given

from controlplane.api import errors
from controlplane.api.bootstrap_jws import compute_detached_signature, detached_token_is_valid
from controlplane.controllers.bootstrapsigner import BootstrapSigner, signed_data, signing_tokens
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
    rfc3339,
)
from tests.unit.rbac.bootstrap_resolver import bootstrap_policy_allows

# k8s.io/cluster-bootstrap/token/jws/jws_test.go
CONTENT = "Hello from the other side. I must have called a thousand times."
SECRET = "my voice is my passcode"
ID = "joshua"
SIG = "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"


def test_upstream_vectors() -> None:
    assert compute_detached_signature(CONTENT, ID, SECRET) == SIG
    assert compute_detached_signature("", ID, SECRET) == (
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"
    )
    assert compute_detached_signature(CONTENT, ID, "") == (
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"
    )
    assert detached_token_is_valid(SIG, CONTENT, ID, SECRET)
    assert not detached_token_is_valid(SIG + "foo", CONTENT, ID, SECRET)


@given(
    st.text(), st.from_regex(r"[a-z0-9]{6}", fullmatch=True), st.from_regex(r"[a-z0-9]{16}", fullmatch=True)
)
def test_signature_verifies_as_a_jws_with_the_payload_put_back(
    content: str, token_id: str, secret: str
) -> None:
    header, empty, signature = compute_detached_signature(content, token_id, secret).split(".")
    assert empty == ""
    payload = base64.urlsafe_b64encode(content.encode()).rstrip(b"=").decode()
    decoded = jwt.api_jws.decode_complete(
        f"{header}.{payload}.{signature}", secret.encode().ljust(32, b"\0"), algorithms=["HS256"]
    )
    assert decoded["payload"] == content.encode()
    assert decoded["header"] == {"alg": "HS256", "kid": token_id}


T0 = datetime(2027, 5, 1, 9, 0, tzinfo=UTC)
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def token(
    token_id: str,
    secret: str = "0123456789abcdef",
    *,
    signing: str | None = "true",
    expiration: str | None = None,
    name: str | None = None,
    namespace: str = "kube-system",
    type_: str = "bootstrap.kubernetes.io/token",
) -> dict[str, Any]:
    data = {"token-id": _b64(token_id), "token-secret": _b64(secret)}
    if signing is not None:
        data["usage-bootstrap-signing"] = _b64(signing)
    if expiration is not None:
        data["expiration"] = _b64(expiration)
    name = name or f"bootstrap-token-{token_id}"
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "resourceVersion": "1"},
        "type": type_,
        "data": data,
    }


def test_which_tokens_may_sign() -> None:
    later = rfc3339(T0 + timedelta(minutes=10))
    secrets = [
        token("aaaaaa"),
        token("bbbbbb", expiration=later),
        token("cccccc", expiration=rfc3339(T0)),  # expired
        token("dddddd", expiration="soon"),  # unparsable: expired
        token("eeeeee", signing=None),
        token("ffffff", signing="yes"),
        token("gggggg", name="bootstrap-token-hhhhhh"),  # id does not match the name
        token("iiiiii", name="my-token"),
        token("jjjjjj", secret=""),
        token("kkkkkk", type_="Opaque"),
    ]
    tokens, expires_in = signing_tokens(secrets, T0)
    assert tokens == {"aaaaaa": "0123456789abcdef", "bbbbbb": "0123456789abcdef"}
    assert expires_in == 600.0
    assert signing_tokens([token("aaaaaa")], T0) == ({"aaaaaa": "0123456789abcdef"}, None)


def test_signed_data_adds_replaces_and_drops_signatures_only_when_needed() -> None:
    good = compute_detached_signature(KUBECONFIG, "aaaaaa", "0123456789abcdef")
    data = {"kubeconfig": KUBECONFIG, "other": "x"}
    assert signed_data(data, {"aaaaaa": "0123456789abcdef"}) == {**data, "jws-kubeconfig-aaaaaa": good}
    current = {**data, "jws-kubeconfig-aaaaaa": good}
    assert signed_data(current, {"aaaaaa": "0123456789abcdef"}) is None
    assert signed_data({**data, "jws-kubeconfig-aaaaaa": "stale"}, {"aaaaaa": "0123456789abcdef"}) == current
    assert (
        signed_data({**current, "jws-kubeconfig-zzzzzz": "gone"}, {"aaaaaa": "0123456789abcdef"}) == current
    )
    assert signed_data(current, {}) == data
    assert signed_data({"other": "x"}, {"aaaaaa": "0123456789abcdef"}) is None  # nothing to sign
    assert signed_data(data, {}) is None


class FakeClient:
    def __init__(self) -> None:
        self.puts: list[tuple[str, dict[str, Any]]] = []
        self.conflict = False

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        assert method == "PUT"
        if self.conflict:
            raise errors.Conflict(message="the object has been modified")
        self.puts.append((path, copy.deepcopy(body)))
        return body


def cluster_info(**extra: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "cluster-info", "namespace": "kube-public", "resourceVersion": "7"},
        "data": {"kubeconfig": KUBECONFIG, **extra},
    }


def _signer(client: FakeClient, clock: FakeClock) -> BootstrapSigner:
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("test"),  # type: ignore[arg-type]
        clock=clock,
        config=ControllerConfig(),
    )
    return BootstrapSigner(ctx)


async def test_signer_keeps_cluster_info_signed() -> None:
    client, clock = FakeClient(), FakeClock(T0)
    signer = _signer(client, clock)
    signer.configmaps.apply(
        "ADDED", {**cluster_info(), "metadata": {"name": "other", "namespace": "kube-public"}}
    )
    signer.secrets.apply("ADDED", token("aaaaaa", namespace="default"))
    assert len(signer.queue) == 0  # neither is watched
    signer.configmaps.apply("ADDED", cluster_info())
    assert list(signer.queue._queue) == ["kube-public/cluster-info"]
    assert await signer.reconcile("kube-public/cluster-info") is None
    assert client.puts == []  # no token, no signature: nothing to write

    expiring = token("bbbbbb", "fedcba9876543210", expiration=rfc3339(T0 + timedelta(seconds=90)))
    signer.secrets.apply("ADDED", token("aaaaaa"))
    signer.secrets.apply("ADDED", expiring)
    assert list(signer.queue._queue) == ["kube-public/cluster-info"]
    assert await signer.reconcile("kube-public/cluster-info") == 90.0  # look again when b expires
    path, body = client.puts[-1]
    assert path == "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["data"] == {
        "kubeconfig": KUBECONFIG,
        "jws-kubeconfig-aaaaaa": compute_detached_signature(KUBECONFIG, "aaaaaa", "0123456789abcdef"),
        "jws-kubeconfig-bbbbbb": compute_detached_signature(KUBECONFIG, "bbbbbb", "fedcba9876543210"),
    }

    signer.configmaps.apply("MODIFIED", body)  # our own write coming back: no second write
    await signer.reconcile("kube-public/cluster-info")
    assert len(client.puts) == 1

    clock.advance(90)
    assert await signer.reconcile("kube-public/cluster-info") is None
    assert set(client.puts[-1][1]["data"]) == {"kubeconfig", "jws-kubeconfig-aaaaaa"}
    signer.configmaps.apply("MODIFIED", client.puts[-1][1])

    signer.queue._queue.clear()
    signer.queue._dirty.clear()
    signer.secrets.apply("DELETED", token("aaaaaa"))
    assert list(signer.queue._queue) == ["kube-public/cluster-info"]
    client.conflict = True  # a newer ConfigMap is coming through the informer: not an error
    assert await signer.reconcile("kube-public/cluster-info") is None
    client.conflict = False
    assert await signer.reconcile("kube-public/cluster-info") is None
    assert client.puts[-1][1]["data"] == {"kubeconfig": KUBECONFIG}


async def test_new_kubeconfig_is_signed_again() -> None:
    """The API server rewrites the kubeconfig (new URL or CA) and keeps the old signatures."""
    client, clock = FakeClient(), FakeClock(T0)
    signer = _signer(client, clock)
    signer.secrets.apply("ADDED", token("aaaaaa"))
    old = compute_detached_signature(KUBECONFIG, "aaaaaa", "0123456789abcdef")
    moved = cluster_info(**{"jws-kubeconfig-aaaaaa": old})
    moved["data"]["kubeconfig"] = KUBECONFIG + "# moved\n"
    signer.configmaps.apply("ADDED", moved)
    await signer.reconcile("kube-public/cluster-info")
    signature = client.puts[-1][1]["data"]["jws-kubeconfig-aaaaaa"]
    assert signature != old
    assert detached_token_is_valid(signature, KUBECONFIG + "# moved\n", "aaaaaa", "0123456789abcdef")


def _controller_manager_may(
    verb: str, resource: str, group: str = "", *, ns: str = "", name: str = ""
) -> bool:
    """The controller manager's identity runs this controller in `pinnace server`."""
    return bootstrap_policy_allows("system:kube-controller-manager", verb, resource, group, ns=ns, name=name)


def test_controller_manager_may_do_what_the_signer_does() -> None:
    assert _controller_manager_may("list", "secrets", ns="kube-system")
    assert _controller_manager_may("watch", "secrets", ns="kube-system")
    assert _controller_manager_may("list", "configmaps", ns="kube-public")
    assert _controller_manager_may("watch", "configmaps", ns="kube-public")
    assert _controller_manager_may("update", "configmaps", ns="kube-public", name="cluster-info")
