"""The CSR approver: which requests it recognizes, the SubjectAccessReviews it sends, and the
approval it writes (upstream sarapprove.go), with a fake client."""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api import certificates as certapi
from controlplane.client import ResourcePath
from controlplane.controllers.csrapproving import CSRApprovingController
from controlplane.controllers.runtime import (
    ControllerConfig,
    ControllerContext,
    EventBroadcaster,
    FakeClock,
    InformerFactory,
)

from .helpers import T0, approved, csr_object, csr_pem

NODE_CLIENT = certapi.KUBE_APISERVER_CLIENT_KUBELET
USAGES = ["digital signature", "client auth"]


class FakeClient:
    """Answers SubjectAccessReviews from a set of (user, subresource) that are allowed."""

    def __init__(self, allowed: set[tuple[str, str]]) -> None:
        self.allowed = allowed
        self.reviews: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str, Any]] = []

    async def create(
        self, rp: ResourcePath, obj: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        assert rp.plural == "subjectaccessreviews"
        self.reviews.append(copy.deepcopy(obj))
        spec = obj["spec"]
        allowed = (spec["user"], spec["resourceAttributes"]["subresource"]) in self.allowed
        return {**obj, "status": {"allowed": allowed}}

    async def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        self.writes.append((method, path, copy.deepcopy(body)))
        return body


def approver(client: FakeClient) -> CSRApprovingController:
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        recorder=EventBroadcaster(client).recorder("test"),  # type: ignore[arg-type]
        clock=FakeClock(T0),
        config=ControllerConfig(),
    )
    return CSRApprovingController(ctx)


def node_csr(requester: str, **kw: Any) -> dict[str, Any]:
    return csr_object(
        csr_pem("system:node:n1", ["system:nodes"]),
        signer=NODE_CLIENT,
        usages=USAGES,
        username=requester,
        **kw,
    )


async def test_a_bootstrap_token_identity_allowed_nodeclient_is_approved() -> None:
    client = FakeClient({("system:bootstrap:abcdef", "nodeclient")})
    controller = approver(client)
    controller.csrs.apply("ADDED", node_csr("system:bootstrap:abcdef"))
    assert await controller.reconcile("csr-1") is None
    [review] = client.reviews  # not the requester's own node: selfnodeclient is not even asked
    assert review["spec"]["resourceAttributes"] == {
        "group": "certificates.k8s.io",
        "resource": "certificatesigningrequests",
        "verb": "create",
        "subresource": "nodeclient",
        "version": "*",
    }
    assert review["spec"]["groups"] == ["system:authenticated"]
    [(method, path, body)] = client.writes
    assert (method, path) == ("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval")
    assert body["status"]["conditions"] == [
        {
            "type": "Approved",
            "status": "True",
            "reason": "AutoApproved",
            "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
        }
    ]


async def test_renewal_by_the_same_node_uses_selfnodeclient() -> None:
    client = FakeClient({("system:node:n1", "selfnodeclient")})
    controller = approver(client)
    controller.csrs.apply("ADDED", node_csr("system:node:n1"))
    await controller.reconcile("csr-1")
    assert [r["spec"]["resourceAttributes"]["subresource"] for r in client.reviews] == ["selfnodeclient"]
    assert client.writes[0][2]["status"]["conditions"][0]["message"] == (
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    )


async def test_a_refused_review_approves_nothing_and_looks_again_later() -> None:
    client = FakeClient(set())
    controller = approver(client)
    controller.csrs.apply("ADDED", node_csr("system:node:n1"))
    assert await controller.reconcile("csr-1") == 30.0
    assert [r["spec"]["resourceAttributes"]["subresource"] for r in client.reviews] == [
        "selfnodeclient",
        "nodeclient",
    ]
    assert client.writes == []


async def test_requests_that_are_not_node_client_certificates_are_not_even_reviewed() -> None:
    client = FakeClient({("u", "nodeclient"), ("u", "selfnodeclient")})
    controller = approver(client)
    shapes = [
        csr_object(
            csr_pem("system:node:n1", ["system:nodes"]),
            signer=NODE_CLIENT,
            usages=["client auth"],
            username="u",
            name="a",
        ),
        csr_object(
            csr_pem("system:node:n1", ["devs"]), signer=NODE_CLIENT, usages=USAGES, username="u", name="b"
        ),
        csr_object(
            csr_pem("system:node:n1", ["system:nodes"]),
            signer=certapi.KUBE_APISERVER_CLIENT,
            usages=USAGES,
            username="u",
            name="c",
        ),
        node_csr("u", name="d", conditions=[approved()]),
        node_csr("u", name="e", conditions=[{"type": "Denied", "status": "True"}]),
    ]
    for obj in shapes:
        controller.csrs.apply("ADDED", obj)
        assert await controller.reconcile(obj["metadata"]["name"]) is None
    assert client.reviews == [] and client.writes == []
