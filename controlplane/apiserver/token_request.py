"""`serviceaccounts/<name>/token`: the TokenRequest subresource (upstream's
pkg/registry/core/serviceaccount/storage/token.go), what `kubectl create token` calls.

It issues a bound, expiring JWT for the ServiceAccount: audiences default to the server's API
audiences, `expirationSeconds` defaults to 3600 and may not be under 600, and a
`boundObjectRef` ties the token to a Pod, Secret or Node whose deletion revokes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from controlplane.api import errors
from controlplane.apiserver import admission, codec
from controlplane.apiserver.authentication_reviews import decode_body
from controlplane.apiserver.context import ServerContext, rfc3339
from controlplane.apiserver.serviceaccount_tokens import BoundRef, TokenGenerator, bound_claims

__all__ = ["DEFAULT_EXPIRATION_SECONDS", "MIN_EXPIRATION_SECONDS", "TokenIssuer", "create_token"]

DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
# The kubelet asks for this lifetime for projected volume tokens; upstream quietly issues them for a
# year (with a `warnafter` claim at the hour) so that clients that never reread them keep working.
WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS = 60 * 60 + 7
EXPIRATION_EXTENSION_SECONDS = 24 * 365 * 60 * 60


@dataclass
class TokenIssuer:
    generator: TokenGenerator
    api_audiences: Sequence[str]
    # --service-account-max-token-expiration (0: no cap).
    max_expiration_seconds: int = 0
    # --service-account-extend-token-expiration (default true upstream).
    extend_expiration: bool = True
    clock: Callable[[], float] = time.time


def _invalid(value: Any, message: str) -> errors.Invalid:
    return errors.Invalid.for_object(
        "TokenRequest",
        "authentication.k8s.io",
        "",
        [
            errors.Cause(
                reason="FieldValueInvalid",
                message=f"Invalid value: {value}: {message}",
                field="spec.expirationSeconds",
            )
        ],
    )


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


async def _get(ctx: ServerContext, plural: str, namespace: str, name: str) -> dict[str, Any]:
    info = ctx.registry.get("", "v1", plural)
    assert info is not None
    return await ctx.store.get(info, namespace if info.namespaced else "", name)


async def create_token(
    ctx: ServerContext, issuer: TokenIssuer, namespace: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The TokenRequest answered: the request with its defaults and `status.token`."""
    spec = body.get("spec")
    spec = dict(spec) if isinstance(spec, dict) else {}
    expiration = spec.get("expirationSeconds")
    if expiration is None:
        expiration = DEFAULT_EXPIRATION_SECONDS
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise errors.BadRequest(message="spec.expirationSeconds must be an integer")
    if expiration < MIN_EXPIRATION_SECONDS:
        raise _invalid(expiration, "may not specify a duration less than 10 minutes")
    if expiration > MAX_EXPIRATION_SECONDS:
        raise _invalid(expiration, "may not specify a duration larger than 2^32 seconds")
    account = await _get(ctx, "serviceaccounts", namespace, name)
    pod = secret = node = None
    ref = spec.get("boundObjectRef")
    if isinstance(ref, dict):
        kind, api_version = str(ref.get("kind") or ""), str(ref.get("apiVersion") or "")
        ref_name, ref_uid = str(ref.get("name") or ""), str(ref.get("uid") or "")
        group, _, version = api_version.rpartition("/")
        if group == "" and kind == "Pod":
            pod_obj = await _get(ctx, "pods", namespace, ref_name)
            if (pod_obj.get("spec") or {}).get("serviceAccountName", "default") != name:
                raise errors.BadRequest(
                    message=f'cannot bind token for serviceaccount "{name}" to pod running with different '
                    "serviceaccount name."
                )
            bound_uid = str(_meta(pod_obj).get("uid", ""))
            pod = BoundRef(ref_name, bound_uid)
            node_name = (pod_obj.get("spec") or {}).get("nodeName")
            if node_name:
                # The pod's node goes into the token when it can be read; failing to is not fatal.
                try:
                    node_obj = await _get(ctx, "nodes", "", str(node_name))
                    node = BoundRef(str(node_name), str(_meta(node_obj).get("uid", "")))
                except errors.NotFound:
                    node = None
        elif group == "" and kind == "Secret":
            secret_obj = await _get(ctx, "secrets", namespace, ref_name)
            bound_uid = str(_meta(secret_obj).get("uid", ""))
            secret = BoundRef(ref_name, bound_uid)
        elif group == "" and kind == "Node":
            node_obj = await _get(ctx, "nodes", "", ref_name)
            bound_uid = str(_meta(node_obj).get("uid", ""))
            node = BoundRef(ref_name, bound_uid)
        else:
            raise errors.BadRequest(
                message=f"cannot bind token to object of type {group}/{version}, Kind={kind}"
            )
        if ref_uid and ref_uid != bound_uid:
            raise errors.Conflict(
                message=f'Operation cannot be fulfilled on {kind} "{ref_name}": the UID in the bound object '
                f"reference ({ref_uid}) does not match the UID in record. The object might have been deleted "
                "and then recreated",
                name=ref_name,
                kind=kind,
            )
        spec["boundObjectRef"] = {**ref, "uid": bound_uid}
    audiences = spec.get("audiences")
    if not isinstance(audiences, list) or not audiences:
        audiences = list(issuer.api_audiences)
    spec["audiences"] = [str(a) for a in audiences]
    if issuer.max_expiration_seconds > 0 and expiration > issuer.max_expiration_seconds:
        expiration = issuer.max_expiration_seconds
    spec["expirationSeconds"] = expiration
    meta = dict(_meta(body))
    meta.setdefault("name", name)
    meta.setdefault("namespace", namespace)
    meta.setdefault("creationTimestamp", None)
    request_obj: dict[str, Any] = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": meta,
        "spec": spec,
    }
    # Admission sees the request as upstream's does (CREATE of serviceaccounts/token): this is
    # where NodeRestriction keeps a node to tokens bound to its own pods.
    sa_info = ctx.registry.get("", "v1", "serviceaccounts")
    assert sa_info is not None
    attrs = admission.Attributes(
        info=sa_info, operation="CREATE", namespace=namespace, name=name, subresource="token"
    )
    await ctx.admission.admit(ctx, attrs, request_obj, None)
    async with ctx.admission.validate(ctx, attrs, request_obj, None):
        pass
    token_lifetime, warn_after = expiration, 0
    if (
        issuer.extend_expiration
        and pod is not None
        and expiration == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
        and set(spec["audiences"]) <= set(issuer.api_audiences)
    ):
        token_lifetime, warn_after = EXPIRATION_EXTENSION_SECONDS, expiration
    now = issuer.clock()
    claims = bound_claims(
        namespace=namespace,
        service_account=BoundRef(name, str(_meta(account).get("uid", ""))),
        audiences=spec["audiences"],
        expiration_seconds=token_lifetime,
        now=now,
        pod=pod,
        secret=secret,
        node=node,
        warn_after_seconds=warn_after,
    )
    token = issuer.generator.generate(claims)
    return {
        **request_obj,
        "status": {
            "token": token,
            # The requested lifetime even when extended, so the kubelet still refreshes on time.
            "expirationTimestamp": rfc3339(datetime.fromtimestamp(int(now) + expiration, UTC)),
        },
    }


async def serve(
    ctx: ServerContext, issuer: TokenIssuer, request: web.Request, namespace: str, name: str
) -> web.Response:
    body = await decode_body(request, "TokenRequest")
    return codec.json_response(await create_token(ctx, issuer, namespace, name, body), status=201)
