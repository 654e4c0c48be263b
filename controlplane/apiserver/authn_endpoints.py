"""Routing for the authentication endpoints that are not stored objects: TokenReview,
SelfSubjectReview and `serviceaccounts/<name>/token`.

They are registry entries (so discovery, OpenAPI and authorization see them like upstream's) but
answered here: an innermost middleware, after authentication and authorization, takes these
requests before the generic REST handler would try to store them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from controlplane.api import errors
from controlplane.apiserver import app as app_module
from controlplane.apiserver import authentication_reviews, rest, token_request
from controlplane.apiserver.authn import (
    BearerTokenAuthenticator,
    ClientCertAuthenticator,
    TokenAuthenticator,
    TokenFileAuthenticator,
    UnionAuthenticator,
)
from controlplane.apiserver.bootstrap_tokens import BootstrapTokenAuthenticator
from controlplane.apiserver.context import ServerContext
from controlplane.apiserver.requestinfo import RequestInfo
from controlplane.apiserver.serviceaccount_tokens import (
    DEFAULT_ISSUER,
    LEGACY_TOKEN_LAST_USED_LABEL,
    ObjectCache,
    ServiceAccountTokenAuthenticator,
    TokenGenerator,
    ensure_signing_key,
    load_public_keys,
    load_signing_key,
)
from controlplane.apiserver.token_request import TokenIssuer

__all__ = ["DEFAULT_ISSUER", "Authentication", "AuthnEndpoints", "build", "middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_GROUP = "authentication.k8s.io"


@dataclass
class AuthnEndpoints:
    issuer: TokenIssuer
    token_authenticator: TokenAuthenticator
    api_audiences: Sequence[str]


def _not_allowed(kind: str, group: str = "") -> errors.MethodNotSupported:
    return errors.MethodNotSupported(
        message="the server does not allow this method on the requested resource", kind=kind, group=group
    )


def middleware(endpoints: AuthnEndpoints) -> Any:
    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        ri = request.get(app_module.REQUEST_INFO)
        if ri is None or not ri.is_resource_request:
            return await handler(request)
        ctx = request.app[app_module.CTX]
        if (
            ri.group == ""
            and ri.version == "v1"
            and ri.resource == "serviceaccounts"
            and ri.subresource == "token"
        ):
            if request.method != "POST":
                raise _not_allowed("serviceaccounts/token")
            return await token_request.serve(ctx, endpoints.issuer, request, ri.namespace, ri.name)
        served = ri.version == "v1" or (ri.version == "v1beta1" and ri.resource == "selfsubjectreviews")
        if ri.group != _GROUP or not served or ri.resource not in ("tokenreviews", "selfsubjectreviews"):
            return await handler(request)
        if ri.namespace or ri.subresource:
            raise errors.NotFound(message="the server could not find the requested resource")
        if request.method != "POST" or ri.name:
            raise _not_allowed(ri.resource, _GROUP)
        if ri.resource == "tokenreviews":
            return await authentication_reviews.token_review(
                request, endpoints.token_authenticator, endpoints.api_audiences
            )
        return await authentication_reviews.self_subject_review(
            request, request[app_module.USER], ctx.now(), api_version=f"{_GROUP}/{ri.version}"
        )

    return handle


@dataclass
class Authentication:
    """The request authenticator and the endpoints that share its token authenticators."""

    authenticator: Any  # authn.Authenticator
    endpoints: AuthnEndpoints
    objects: ObjectCache


async def build(
    ctx: ServerContext,
    pki_dir: Path,
    *,
    token_file: Path | None = None,
    issuers: Sequence[str] = (DEFAULT_ISSUER,),
    signing_key_file: Path | None = None,
    key_files: Sequence[Path] = (),
    api_audiences: Sequence[str] = (),
    max_token_expiration: int = 0,
    extend_token_expiration: bool = True,
    lookup_ttl: float = 1.0,
) -> Authentication:
    """Client certificates, then bearer tokens: the token file, ServiceAccount tokens (bound and
    legacy) and bootstrap tokens. The signing key is created under `pki_dir` on first start unless
    one is given (--service-account-signing-key-file); tokens verify against `key_files`
    (--service-account-key-file, default the signing key's public half)."""
    if signing_key_file is None:
        key_path, public_file = await asyncio.to_thread(ensure_signing_key, pki_dir)
        key_files = list(key_files) or [public_file]
    else:
        key_path = signing_key_file
    signing_key = await asyncio.to_thread(load_signing_key, key_path)
    public_keys = await asyncio.to_thread(load_public_keys, list(key_files) or [key_path])
    issuers = list(issuers) or [DEFAULT_ISSUER]
    audiences = list(api_audiences) or [issuers[0]]
    objects = ObjectCache(ctx.store, ctx.registry, ttl=lookup_ttl)
    token_authenticators: list[TokenAuthenticator] = []
    if token_file is not None:
        token_authenticators.append(TokenFileAuthenticator(token_file).token_authenticator())
    token_authenticators.append(
        ServiceAccountTokenAuthenticator(
            issuers=issuers,
            public_keys=public_keys,
            api_audiences=audiences,
            objects=objects,
            last_used_writer=functools.partial(_label_last_used, ctx),
        )
    )
    token_authenticators.append(BootstrapTokenAuthenticator(objects))
    bearer = BearerTokenAuthenticator(token_authenticators, audiences)
    endpoints = AuthnEndpoints(
        issuer=TokenIssuer(
            TokenGenerator(issuers[0], signing_key),
            audiences,
            max_expiration_seconds=max_token_expiration,
            extend_expiration=extend_token_expiration,
        ),
        token_authenticator=bearer,
        api_audiences=audiences,
    )
    authenticator = UnionAuthenticator([ClientCertAuthenticator(), bearer])
    return Authentication(authenticator, endpoints, objects)


async def _label_last_used(ctx: ServerContext, namespace: str, name: str, uid: str, today: str) -> None:
    """Label a legacy token Secret with the day it was used, unless it was replaced meanwhile (the
    UID precondition upstream's patch carries)."""
    info = ctx.registry.get("", "v1", "secrets")
    assert info is not None

    def mutate(current: dict[str, Any]) -> dict[str, Any]:
        meta = current["metadata"]
        if meta.get("uid") != uid:
            raise errors.Conflict(
                message=f'Operation cannot be fulfilled on secrets "{name}": Precondition failed: UID in '
                f"precondition: {uid}, UID in object meta: {meta.get('uid', '')}",
                name=name,
                kind="secrets",
            )
        meta["labels"] = {**(meta.get("labels") or {}), LEGACY_TOKEN_LAST_USED_LABEL: today}
        return current

    await rest.write_update(
        ctx,
        info,
        RequestInfo(True, "", verb="patch", version="v1", resource="secrets", namespace=namespace, name=name),
        mutate,
        rest.WriteOptions(dry_run=False, field_manager="kube-apiserver", field_validation="Ignore"),
        warnings=[],
    )
