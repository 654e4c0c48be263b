"""AdmissionReview v1 answers checked as upstream's VerifyAdmissionResponse, and the denial
wording of webhookerrors.ToStatusErr."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from controlplane.apiserver.webhooks import errors as webhook_errors
from controlplane.apiserver.webhooks import review

UID = "0b9f-uid"


def answer(**response: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": UID, "allowed": True, **response},
    }


PATCH = base64.b64encode(b'[{"op":"add","path":"/x","value":1}]').decode()


@pytest.mark.parametrize(
    ("body", "mutating", "message"),
    [
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            False,
            "webhook response was absent",
        ),
        (answer(uid="other"), False, f'expected response.uid="{UID}", got "other"'),
        (
            {**answer(), "apiVersion": "admission.k8s.io/v1beta1"},
            False,
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
            "admission.k8s.io/v1beta1, Kind=AdmissionReview",
        ),
        (answer(patch=PATCH), True, "webhook returned response.patch but not response.patchType"),
        (
            answer(patch=PATCH, patchType="Merge"),
            True,
            'webhook returned invalid response.patchType of "Merge"',
        ),
        (
            answer(patch=PATCH, patchType="JSONPatch"),
            False,
            "validating webhook may not return response.patch",
        ),
        (answer(patchType="JSONPatch"), False, "validating webhook may not return response.patchType"),
    ],
)
def test_invalid_responses(body: dict[str, Any], mutating: bool, message: str) -> None:
    with pytest.raises(review.InvalidResponse) as caught:
        review.verify_response(body, UID, mutating=mutating)
    assert str(caught.value) == message


def test_a_valid_mutating_response() -> None:
    reply = review.verify_response(
        answer(patch=PATCH, patchType="JSONPatch", warnings=["w"], auditAnnotations={"k": "v"}),
        UID,
        mutating=True,
    )
    assert reply.allowed and reply.patch.startswith(b"[") and reply.warnings == ("w",)
    assert reply.audit_annotations == {"k": "v"}
    # `allowed` missing is a denial.
    assert not review.verify_response(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": UID}},
        UID,
        mutating=False,
    ).allowed


@pytest.mark.parametrize(
    ("status", "code", "reason", "message"),
    [
        (None, 400, "", 'admission webhook "x.example.com" denied the request without explanation'),
        ({"message": "nope"}, 400, "", 'admission webhook "x.example.com" denied the request: nope'),
        (
            {"reason": "NotAllowed"},
            400,
            "NotAllowed",
            'admission webhook "x.example.com" denied the request: NotAllowed',
        ),
        ({"code": 200, "message": "m"}, 400, "", 'admission webhook "x.example.com" denied the request: m'),
        (
            {"code": 403, "reason": "Forbidden", "message": "no"},
            403,
            "Forbidden",
            'admission webhook "x.example.com" denied the request: no',
        ),
    ],
)
def test_denials(status: dict[str, Any] | None, code: int, reason: str, message: str) -> None:
    err = webhook_errors.denied("x.example.com", status)
    body = err.to_status()
    assert body["code"] == code and body["message"] == message
    assert body.get("reason", "") == reason


def test_call_failures_and_dry_run() -> None:
    failure = webhook_errors.CallError(
        "x.example.com", 'failed to call webhook: Post "https://h/?timeout=10s": boom'
    )
    err = webhook_errors.internal(failure)
    assert err.to_status()["message"] == (
        'Internal error occurred: failed calling webhook "x.example.com": failed to call webhook: '
        'Post "https://h/?timeout=10s": boom'
    )
    assert err.code == 500
    dry = webhook_errors.dry_run_unsupported("x.example.com")
    assert dry.code == 400 and dry.message == 'admission webhook "x.example.com" does not support dry run'


def test_the_request_shape() -> None:
    from controlplane.api.resources import default_registry

    info = default_registry().get("apps", "v1", "deployments")
    assert info is not None
    body = review.admission_review(
        uid="u",
        info=info,
        request_info=info,
        subresource="scale",
        name="web",
        namespace="default",
        operation="UPDATE",
        user={"username": "alice", "groups": ["dev"]},
        obj={"a": 1},
        old={"a": 0},
        dry_run=False,
    )
    request = body["request"]
    assert request["subResource"] == "scale" and request["requestSubResource"] == "scale"
    assert request["userInfo"] == {"username": "alice", "groups": ["dev"]}
    assert request["options"] == {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    assert request["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
