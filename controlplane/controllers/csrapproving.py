"""The CSR approving controller (upstream `csrapproving`,
pkg/controller/certificates/approver/sarapprove.go): approves the node client certificate
requests of kubelets, as kubeadm sets clusters up.

A request for `kubernetes.io/kube-apiserver-client-kubelet` shaped as a node client certificate
(CN `system:node:<name>`, O `system:nodes`, client auth usages, no SANs) is approved when a
SubjectAccessReview says its requester may create `certificatesigningrequests/selfnodeclient`
(renewal: the requester is the node named in the request) or `certificatesigningrequests/nodeclient`
(a new node, e.g. through a bootstrap token). Anything else is left for a human or another approver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.api import certificates as certapi
from controlplane.client import ResourcePath
from controlplane.controllers.csrsigning import CSRS
from controlplane.controllers.runtime import Controller

__all__ = [
    "RECOGNIZERS",
    "SUBJECT_ACCESS_REVIEWS",
    "CSRApprovingController",
    "Recognizer",
    "approval_condition",
]

SUBJECT_ACCESS_REVIEWS = ResourcePath("authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False)
# A refused review is looked at again after this long (RBAC may change), as upstream requeues
# its IgnorableError with backoff.
_RETRY_SECONDS = 30.0


def _is_node_client(csr: dict[str, Any], parsed: certapi.ParsedCSR) -> bool:
    spec = csr.get("spec") or {}
    if spec.get("signerName") != certapi.KUBE_APISERVER_CLIENT_KUBELET:
        return False
    try:
        certapi.validate_kubelet_client(parsed, [str(u) for u in spec.get("usages") or []])
    except certapi.CSRError:
        return False
    return True


def _is_self_node_client(csr: dict[str, Any], parsed: certapi.ParsedCSR) -> bool:
    if (csr.get("spec") or {}).get("username") != parsed.common_name:
        return False
    return _is_node_client(csr, parsed)


@dataclass(frozen=True)
class Recognizer:
    recognize: Callable[[dict[str, Any], certapi.ParsedCSR], bool]
    subresource: str
    message: str


RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        _is_self_node_client,
        "selfnodeclient",
        "Auto approving self kubelet client certificate after SubjectAccessReview.",
    ),
    Recognizer(
        _is_node_client, "nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."
    ),
)


def approval_condition(message: str) -> dict[str, str]:
    return {"type": certapi.APPROVED, "status": "True", "reason": "AutoApproved", "message": message}


def _review(csr: dict[str, Any], subresource: str) -> dict[str, Any]:
    spec = csr.get("spec") or {}
    review_spec: dict[str, Any] = {
        "user": spec.get("username") or "",
        "groups": list(spec.get("groups") or []),
        "resourceAttributes": {
            "group": "certificates.k8s.io",
            "resource": "certificatesigningrequests",
            "verb": "create",
            "subresource": subresource,
            "version": "*",
        },
    }
    if spec.get("uid"):
        review_spec["uid"] = spec["uid"]
    if spec.get("extra"):
        review_spec["extra"] = spec["extra"]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": review_spec}


class CSRApprovingController(Controller):
    name = "csrapproving"
    event_source = "certificate-controller"

    def setup(self) -> None:
        self.csrs = self.ctx.informers.informer(CSRS)
        self.csrs.add_handler(self._on_csr)

    def _on_csr(self, event: str, _old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if event != "DELETED" and new is not None:
            self.enqueue_obj(new)

    async def reconcile(self, key: str) -> float | None:
        csr = self.csrs.get(key)
        if csr is None or (csr.get("status") or {}).get("certificate"):
            return None
        approved, denied = certapi.approval_state(csr)
        if approved or denied:
            return None
        try:
            parsed = certapi.parse_csr(certapi.decode_bytes((csr.get("spec") or {}).get("request")))
        except certapi.CSRError as exc:
            self.log.warning("unable to parse csr %s: %s", key, exc)
            return None
        tried: list[str] = []
        for recognizer in RECOGNIZERS:
            if not recognizer.recognize(csr, parsed):
                continue
            tried.append(recognizer.subresource)
            review = await self.ctx.client.create(
                SUBJECT_ACCESS_REVIEWS, _review(csr, recognizer.subresource)
            )
            if (review.get("status") or {}).get("allowed"):
                await self._approve(csr, recognizer.message)
                return None
        if tried:
            self.log.info(
                "recognized csr %s as [%s] but subject access review was not approved", key, " ".join(tried)
            )
            return _RETRY_SECONDS
        return None

    async def _approve(self, csr: dict[str, Any], message: str) -> None:
        updated = dict(csr)
        status = dict(csr.get("status") or {})
        status["conditions"] = [*(status.get("conditions") or []), approval_condition(message)]
        updated["status"] = status
        name = csr["metadata"]["name"]
        await self.ctx.client.request("PUT", CSRS.url(None, name, "approval"), body=updated)
        self.log.info("approved %s: %s", name, message)
