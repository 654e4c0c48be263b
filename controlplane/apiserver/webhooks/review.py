"""AdmissionReview v1: the request a webhook receives and the checks on its answer
(upstream's request.CreateV1AdmissionReview and VerifyAdmissionResponse)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controlplane.api.resources import ResourceInfo

__all__ = ["InvalidResponse", "Reply", "admission_review", "verify_response"]

Obj = dict[str, Any]

REVIEW_API_VERSION = "admission.k8s.io/v1"


class InvalidResponse(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    allowed: bool
    result: Mapping[str, Any] | None
    patch: bytes = b""
    warnings: tuple[str, ...] = ()
    audit_annotations: Mapping[str, str] = field(default_factory=dict)


def _options(operation: str, dry_run: bool) -> Obj | None:
    kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}.get(operation)
    if kind is None:
        return None
    options: Obj = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        options["dryRun"] = ["All"]
    return options


def admission_review(
    *,
    uid: str,
    info: ResourceInfo,
    request_info: ResourceInfo,
    subresource: str,
    name: str,
    namespace: str,
    operation: str,
    user: Mapping[str, Any] | None,
    obj: Obj | None,
    old: Obj | None,
    dry_run: bool,
    kind: Obj | None = None,
) -> Obj:
    """`info` is the version the webhook asked for (matchPolicy Equivalent may differ from the
    request's), `request_info` the version the client used. `kind` is the object's kind when a
    subresource has its own (autoscaling/v1 Scale for `scale`), as upstream's scale REST."""
    request: Obj = {
        "uid": uid,
        "kind": dict(kind) if kind else {"group": info.group, "version": info.version, "kind": info.kind},
        "resource": {"group": info.group, "version": info.version, "resource": info.plural},
        "requestKind": dict(kind)
        if kind
        else {
            "group": request_info.group,
            "version": request_info.version,
            "kind": request_info.kind,
        },
        "requestResource": {
            "group": request_info.group,
            "version": request_info.version,
            "resource": request_info.plural,
        },
    }
    if subresource:
        request["subResource"] = subresource
        request["requestSubResource"] = subresource
    if name:
        request["name"] = name
    if namespace:
        request["namespace"] = namespace
    request["operation"] = operation
    request["userInfo"] = dict(user or {})
    request["object"] = obj
    request["oldObject"] = old
    request["dryRun"] = dry_run
    options = _options(operation, dry_run)
    if options is not None:
        request["options"] = options
    return {"kind": "AdmissionReview", "apiVersion": REVIEW_API_VERSION, "request": request}


def verify_response(review: Obj, uid: str, *, mutating: bool) -> Reply:
    response = review.get("response")
    if not isinstance(response, Mapping):
        raise InvalidResponse("webhook response was absent")
    got_uid = str(response.get("uid", ""))
    if got_uid != uid:
        raise InvalidResponse(f'expected response.uid="{uid}", got "{got_uid}"')
    api_version = str(review.get("apiVersion", ""))
    kind = str(review.get("kind", ""))
    if api_version != REVIEW_API_VERSION or kind != "AdmissionReview":
        group, _, version = api_version.rpartition("/")
        shown = f"{group}/{version}, Kind={kind}" if group else f"{version}, Kind={kind}"
        raise InvalidResponse(
            f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {shown}"
        )
    patch_type = str(response.get("patchType") or "")
    raw_patch = response.get("patch") or ""
    try:
        patch = base64.b64decode(str(raw_patch), validate=True) if raw_patch else b""
    except binascii.Error as exc:
        raise InvalidResponse(f"illegal base64 data in response.patch: {exc}") from exc
    if mutating:
        if patch and not patch_type:
            raise InvalidResponse("webhook returned response.patch but not response.patchType")
        if patch_type and patch_type != "JSONPatch":
            raise InvalidResponse(f'webhook returned invalid response.patchType of "{patch_type}"')
    else:
        if patch:
            raise InvalidResponse("validating webhook may not return response.patch")
        if patch_type:
            raise InvalidResponse("validating webhook may not return response.patchType")
    result = response.get("status")
    warnings = tuple(str(w) for w in response.get("warnings") or ())
    annotations = response.get("auditAnnotations") or {}
    return Reply(
        allowed=bool(response.get("allowed")),
        result=result if isinstance(result, Mapping) else None,
        patch=patch,
        warnings=warnings,
        audit_annotations={str(k): str(v) for k, v in annotations.items()}
        if isinstance(annotations, Mapping)
        else {},
    )
