"""Converting custom resources between the versions of their CRD, as upstream's apiextensions
converters: strategy None rewrites apiVersion; strategy Webhook sends a ConversionReview v1
through the same webhook client admission uses."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from controlplane.api import errors, uids
from controlplane.apiserver.webhooks import client

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = ["ConversionFailed", "convert_objects"]

Obj = dict[str, Any]

REVIEW_API_VERSION = "apiextensions.k8s.io/v1"
# The apiextensions-apiserver's webhook converter allows each call 30 seconds.
CONVERSION_TIMEOUT_SECONDS = 30


class ConversionFailed(errors.StatusError):
    """Upstream returns the converter's error as is: a 500 with no reason, which kubectl shows
    as `Error from server: conversion webhook for ... failed: ...`."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = ""


def _gvk(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('apiVersion', '')}, Kind={obj.get('kind', '')}"


def _restore_metadata(original: Obj, converted: Obj) -> Obj:
    """Only labels and annotations may change in a conversion; the rest of metadata is the
    original's (upstream restoreObjectMeta)."""
    meta = copy.deepcopy(original.get("metadata") or {})
    new_meta = converted.get("metadata") or {}
    for key in ("labels", "annotations"):
        if key in new_meta:
            if new_meta[key]:
                meta[key] = new_meta[key]
            else:
                meta.pop(key, None)
    converted["metadata"] = meta
    return converted


async def convert_objects(
    ctx: ServerContext, crd: Mapping[str, Any], objects: list[Obj], desired_api_version: str
) -> list[Obj]:
    """`objects` converted to `desired_api_version`, in order; inputs are not modified."""
    conversion = (crd.get("spec") or {}).get("conversion") or {}
    strategy = conversion.get("strategy") or "None"
    if strategy == "None" or not objects:
        out = []
        for obj in objects:
            converted = copy.deepcopy(obj)
            converted["apiVersion"] = desired_api_version
            out.append(converted)
        return out
    if strategy != "Webhook":
        raise ConversionFailed(message=f'unknown conversion strategy "{strategy}"')
    # Objects already in the desired version are not sent (upstream's webhook converter).
    pending = [i for i, obj in enumerate(objects) if obj.get("apiVersion") != desired_api_version]
    out = [copy.deepcopy(obj) for obj in objects]
    if not pending:
        return out
    sent = [objects[i] for i in pending]
    answers = await _call(ctx, conversion.get("webhook") or {}, sent, desired_api_version)
    for index, result in zip(pending, answers, strict=True):
        out[index] = result
    return out


async def _call(
    ctx: ServerContext, webhook: Mapping[str, Any], objects: list[Obj], desired_api_version: str
) -> list[Obj]:
    what = _gvk(objects[0])
    versions = [str(v) for v in webhook.get("conversionReviewVersions") or ()]
    if "v1" not in versions:
        raise ConversionFailed(
            message=f"conversion webhook for {what} failed: no supported conversion review versions "
            f"supported by webhook, supported versions are [v1], webhook accepted versions are "
            f"[{' '.join(versions)}]"
        )
    uid = uids.uuid4()
    review = {
        "kind": "ConversionReview",
        "apiVersion": REVIEW_API_VERSION,
        "request": {"uid": uid, "desiredAPIVersion": desired_api_version, "objects": objects},
    }
    try:
        target = await client.resolve(ctx, webhook.get("clientConfig") or {}, CONVERSION_TIMEOUT_SECONDS)
        answer = await client.post_json(target, review, CONVERSION_TIMEOUT_SECONDS)
        converted = _converted_objects(answer, uid)
    except (client.WebhookCallFailed, _BadResponse) as exc:
        raise ConversionFailed(message=f"conversion webhook for {what} failed: {exc}") from exc
    if len(converted) != len(objects):
        raise ConversionFailed(
            message=f"conversion webhook for {what} returned {len(converted)} objects, expected {len(objects)}"
        )
    out: list[Obj] = []
    for index, (original, result) in enumerate(zip(objects, converted, strict=True)):
        if not isinstance(result, dict):
            raise ConversionFailed(
                message=f"conversion webhook for {what} returned invalid object at index {index}"
            )
        got = result.get("apiVersion", "")
        if got != desired_api_version:
            raise ConversionFailed(
                message=f"conversion webhook for {what} returned invalid converted object at index {index}: "
                f"invalid groupVersion (expected {desired_api_version}, received {got})"
            )
        if result.get("kind") != original.get("kind"):
            raise ConversionFailed(
                message=f"conversion webhook for {what} returned invalid converted object at index {index}: "
                f"invalid kind (expected {original.get('kind')}, received {result.get('kind')})"
            )
        out.append(_restore_metadata(original, result))
    return out


class _BadResponse(Exception):
    pass


def _converted_objects(answer: Obj, uid: str) -> list[Any]:
    if answer.get("apiVersion") != REVIEW_API_VERSION or answer.get("kind") != "ConversionReview":
        raise _BadResponse(
            f"expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {_gvk(answer)}"
        )
    response = answer.get("response")
    if not isinstance(response, Mapping):
        raise _BadResponse("no response provided")
    got_uid = str(response.get("uid", ""))
    if got_uid != uid:
        raise _BadResponse(f'expected response.uid="{uid}", got "{got_uid}"')
    result = response.get("result") or {}
    status = str(result.get("status", "")) if isinstance(result, Mapping) else ""
    if status != "Success":
        message = str(result.get("message", "")) if isinstance(result, Mapping) else ""
        raise _BadResponse(message or f"response.result.status was '{status}', not 'Success'")
    objects = response.get("convertedObjects")
    return list(objects) if isinstance(objects, list) else []
