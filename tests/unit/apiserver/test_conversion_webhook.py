"""convert_objects: strategy None rewrites apiVersion; strategy Webhook sends a ConversionReview
v1 to a fake conversion webhook over HTTPS and checks its answer as upstream's converter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.apiserver.conversion import ConversionFailed, convert_objects
from tests.unit.apiserver.test_webhooks_server import TLS, WebhookServer, _Ctx, make_tls, serve

Obj = dict[str, Any]


def review_answer(body: Obj, objects: list[Obj], **result: Any) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": {
            "uid": body["request"]["uid"],
            "convertedObjects": objects,
            "result": result or {"status": "Success"},
        },
    }


def converter(path: str, body: Obj) -> Obj:
    request = body["request"]
    desired = request["desiredAPIVersion"]
    out = []
    for obj in request["objects"]:
        converted = {**obj, "apiVersion": desired}
        spec = dict(obj.get("spec") or {})
        if desired.endswith("/v2") and "size" in spec:
            spec["replicas"] = spec.pop("size")
        converted["spec"] = spec
        meta = dict(obj["metadata"])
        meta["labels"] = {**(meta.get("labels") or {}), "converted": "yes"}
        meta["uid"] = "changed-by-webhook"  # not allowed: restored from the original
        converted["metadata"] = meta
        out.append(converted)
    if path == "/fail":
        return review_answer(body, [], status="Failure", message="cannot convert foos today")
    if path == "/short":
        return review_answer(body, out[:-1])
    if path == "/wrong-version":
        return review_answer(body, [{**o, "apiVersion": "example.com/v9"} for o in out])
    return review_answer(body, out)


@pytest.fixture(scope="module")
def tls() -> TLS:
    return make_tls()


@pytest.fixture(scope="module")
def server(tls: TLS) -> Iterator[WebhookServer]:
    with serve(tls, converter) as running:
        yield running


def crd(url: str, tls: TLS, versions: tuple[str, ...] = ("v1",)) -> Obj:
    return {
        "metadata": {"name": "foos.example.com"},
        "spec": {
            "group": "example.com",
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": url, "caBundle": tls.ca_bundle},
                    "conversionReviewVersions": list(versions),
                },
            },
        },
    }


def foo(name: str, version: str = "example.com/v1", **spec: Any) -> Obj:
    return {
        "apiVersion": version,
        "kind": "Foo",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": spec,
    }


CTX: Any = _Ctx({})


async def test_strategy_none_rewrites_the_api_version() -> None:
    objects = [foo("a", size=1)]
    out = await convert_objects(
        CTX, {"spec": {"conversion": {"strategy": "None"}}}, objects, "example.com/v2"
    )
    assert out == [{**foo("a", size=1), "apiVersion": "example.com/v2"}]
    assert objects[0]["apiVersion"] == "example.com/v1"  # inputs untouched
    assert await convert_objects(CTX, {"spec": {}}, objects, "example.com/v2") == out


async def test_webhook_conversion(server: WebhookServer, tls: TLS) -> None:
    objects = [foo("a", size=1), foo("b", "example.com/v2", replicas=2), foo("c", size=3)]
    out = await convert_objects(CTX, crd(server.url("/convert"), tls), objects, "example.com/v2")
    assert [o["apiVersion"] for o in out] == ["example.com/v2"] * 3
    assert out[0]["spec"] == {"replicas": 1} and out[2]["spec"] == {"replicas": 3}
    # Already in the desired version: not sent, returned as it was.
    assert out[1] == objects[1]
    sent = server.bodies("/convert")[-1]
    assert sent["apiVersion"] == "apiextensions.k8s.io/v1" and sent["kind"] == "ConversionReview"
    assert sent["request"]["desiredAPIVersion"] == "example.com/v2"
    assert [o["metadata"]["name"] for o in sent["request"]["objects"]] == ["a", "c"]
    # Labels may change, the rest of metadata is the original's.
    assert out[0]["metadata"]["labels"] == {"converted": "yes"}
    assert out[0]["metadata"]["uid"] == "uid-a"


async def test_nothing_to_convert_calls_nobody(server: WebhookServer, tls: TLS) -> None:
    before = len(server.requests)
    out = await convert_objects(CTX, crd(server.url("/convert"), tls), [foo("a")], "example.com/v1")
    assert out == [foo("a")]
    assert len(server.requests) == before


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/fail", "conversion webhook for example.com/v1, Kind=Foo failed: cannot convert foos today"),
        ("/short", "conversion webhook for example.com/v1, Kind=Foo returned 1 objects, expected 2"),
        (
            "/wrong-version",
            "conversion webhook for example.com/v1, Kind=Foo returned invalid converted object at index 0: "
            "invalid groupVersion (expected example.com/v2, received example.com/v9)",
        ),
    ],
)
async def test_bad_answers_are_worded_as_upstream(
    server: WebhookServer, tls: TLS, path: str, message: str
) -> None:
    with pytest.raises(ConversionFailed) as caught:
        await convert_objects(CTX, crd(server.url(path), tls), [foo("a"), foo("b")], "example.com/v2")
    assert caught.value.message == message
    status = caught.value.to_status()
    assert status["code"] == 500 and "reason" not in status


async def test_an_unreachable_webhook(tls: TLS) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConversionFailed) as caught:
        await convert_objects(CTX, crd(f"https://127.0.0.1:{port}/c", tls), [foo("a")], "example.com/v2")
    assert caught.value.message == (
        f'conversion webhook for example.com/v1, Kind=Foo failed: Post "https://127.0.0.1:{port}/c?timeout=30s": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )


async def test_the_webhook_must_accept_v1_reviews(server: WebhookServer, tls: TLS) -> None:
    with pytest.raises(ConversionFailed, match="no supported conversion review versions"):
        await convert_objects(
            CTX, crd(server.url("/convert"), tls, ("v1beta1",)), [foo("a")], "example.com/v2"
        )
