"""authentication.k8s.io/v1 TokenReview and SelfSubjectReview: create-only, answered, never stored.

TokenReview authenticates `spec.token` for `spec.audiences` (the server's API audiences when
empty) with the same token authenticators that guard requests, as upstream's
pkg/registry/authentication/tokenreview. SelfSubjectReview answers who the caller is
(`kubectl auth whoami`), as upstream's selfsubjectreview REST.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from controlplane.api import errors
from controlplane.apiserver import audit, codec
from controlplane.apiserver.authn import TokenAuthenticator, UserInfo

__all__ = ["decode_body", "self_subject_review", "token_review", "user_info_json"]

GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"
_BODY_TYPES = ("application/json", "application/yaml", codec.PROTOBUF)


async def decode_body(request: web.Request, kind: str, api_version: str = API_VERSION) -> dict[str, Any]:
    """The request's object of `kind` (JSON, YAML or protobuf, as typed clients send it)."""
    content_type = codec.media_type(request.headers.get("Content-Type")) or "application/json"
    if content_type not in _BODY_TYPES:
        raise errors.UnsupportedMediaType(
            message="the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(_BODY_TYPES)
        )
    body = codec.decode_body(await codec.read_body(request), content_type, api_version=api_version, kind=kind)
    if not isinstance(body, dict):
        raise errors.BadRequest(
            message=f"the body of the request was in an unknown format - expected a {kind}"
        )
    got_kind, got_version = body.get("kind") or kind, body.get("apiVersion") or api_version
    if got_kind != kind or got_version != api_version:
        raise errors.BadRequest(
            message=f'{got_kind} in version "{str(got_version).rsplit("/", 1)[-1]}" cannot be handled as a '
            f'{kind}: no kind "{got_kind}" is registered for version "{got_version}"'
        )
    body["kind"], body["apiVersion"] = kind, api_version
    return body


def user_info_json(user: UserInfo) -> dict[str, Any]:
    """authentication/v1 UserInfo with Go's omitempty."""
    out: dict[str, Any] = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta.setdefault("creationTimestamp", None)
    return meta


async def token_review(
    request: web.Request,
    authenticator: TokenAuthenticator,
    api_audiences: Sequence[str],
) -> web.Response:
    body = await decode_body(request, "TokenReview")
    spec = body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.BadRequest(message="token is required for TokenReview in authentication")
    requested = spec.get("audiences")
    audiences = [a for a in requested if isinstance(a, str)] if isinstance(requested, list) else []
    if not audiences:
        audiences = list(api_audiences)
    status: dict[str, Any] = {}
    try:
        response = await authenticator.authenticate_token(token, audiences)
    except errors.Unauthorized as exc:
        response = None
        status["error"] = exc.message
    if response is not None:
        # The token was authenticated inside this request, so its annotations go on this
        # request's audit event, as upstream's TokenReview does (it passes its own context on).
        for key, value in response.audit_annotations:
            audit.annotate(request, key, value)
        if audiences and not set(audiences) & set(response.audiences):
            raise errors.InternalError(message="Internal error occurred: error validating audiences")
        status["authenticated"] = True
        status["user"] = user_info_json(response.user)
        if response.audiences:
            status["audiences"] = list(response.audiences)
    else:
        status.setdefault("user", {})
    status = {k: status[k] for k in ("authenticated", "user", "audiences", "error") if k in status}
    out = {
        "kind": "TokenReview",
        "apiVersion": API_VERSION,
        "metadata": _metadata(body),
        "spec": spec,
        "status": status,
    }
    return codec.json_response(out, status=201)


async def self_subject_review(
    request: web.Request, user: UserInfo, now: str, *, api_version: str = API_VERSION
) -> web.Response:
    """The v1 and v1beta1 shapes are the same; the answer is in the version asked."""
    body = await decode_body(request, "SelfSubjectReview", api_version)
    meta = _metadata(body)
    meta["creationTimestamp"] = now
    out = {
        "kind": "SelfSubjectReview",
        "apiVersion": api_version,
        "metadata": meta,
        "status": {"userInfo": user_info_json(user)},
    }
    return codec.json_response(out, status=201)
