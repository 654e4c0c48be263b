"""CertificateSigningRequests in the API server: the registry strategy (requester identity on
create, what each endpoint may change), the `approval` subresource, and the admission checks
kube-apiserver enables by default for CSRs:

- CertificateApproval: changing approval conditions needs `approve` on `signers/<signerName>`
  (or `signers/<domain>/*`) in certificates.k8s.io;
- CertificateSigning: changing status.certificate needs `sign` on the same;
- CertificateSubjectRestriction: no `kubernetes.io/kube-apiserver-client` CSR for system:masters.

The two authorization checks need the server's authorizer: the approval and status handlers here
put it (with the requesting user) in a context variable for the request's task.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aiohttp import web

from controlplane.api import certificates, errors
from controlplane.api.patch import json_patch, managed_fields, merge_patch, strategic
from controlplane.api.resources import ResourceInfo
from controlplane.apiserver import admission, authz, codec, rest
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.requestinfo import RequestInfo

if TYPE_CHECKING:
    from controlplane.apiserver.context import ServerContext

__all__ = [
    "CSRStrategy",
    "CertificateSubjectRestriction",
    "is_authorized_for_signer",
    "serve_approval",
    "serve_status",
]

GROUP = "certificates.k8s.io"
PLURAL = "certificatesigningrequests"

# (authorizer, user) of the request being served, for the approval and signing checks.
_REQUEST_AUTHORIZER: ContextVar[tuple[authz.Authorizer, UserInfo] | None] = ContextVar(
    "pinnace_csr_authorizer", default=None
)


def _is_csr(attrs: admission.Attributes) -> bool:
    return attrs.is_resource(GROUP, PLURAL)


class CSRStrategy:
    """The csrStrategy family as a mutating plugin (first in the chain: upstream runs the
    strategy before admission): it is where the requesting user is known."""

    name = "CertificateSigningRequestStrategy"

    async def admit(
        self, ctx: ServerContext, attrs: admission.Attributes, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if not _is_csr(attrs):
            return
        if attrs.operation == "CREATE":
            certificates.prepare_for_create(obj, admission.REQUEST_USER.get())
        elif old is not None and attrs.subresource in ("", "status"):
            certificates.prepare_for_update(obj, old, attrs.subresource, ctx.now())


async def is_authorized_for_signer(
    authorizer: authz.Authorizer, user: UserInfo, verb: str, signer: str
) -> bool:
    """certificates.IsAuthorizedForSignerName: the signer itself, then `<domain>/*`."""
    for name in (signer, f"{signer.partition('/')[0]}/*"):
        attrs = authz.Attributes(
            user=user,
            verb=verb,
            api_group=GROUP,
            resource="signers",
            name=name,
            resource_request=True,
            api_version="*",
        )
        if (await authorizer.authorize(attrs)).allowed:
            return True
    return False


def _signer(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec")
    value = spec.get("signerName") if isinstance(spec, dict) else None
    return value if isinstance(value, str) else ""


class CertificateSubjectRestriction:
    """plugin/pkg/admission/certificates/subjectrestriction."""

    name = "CertificateSubjectRestriction"

    async def validate(
        self,
        ctx: ServerContext,
        attrs: admission.Attributes,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        scope: admission.ValidationScope,
    ) -> None:
        if not _is_csr(attrs) or attrs.operation != "CREATE" or attrs.subresource:
            return
        if _signer(obj) != certificates.KUBE_APISERVER_CLIENT:
            return
        try:
            parsed = certificates.parse_csr(certificates.decode_bytes((obj.get("spec") or {}).get("request")))
        except certificates.CSRError as exc:
            raise admission.forbidden(attrs, str(exc)) from exc
        if "system:masters" in parsed.organizations:
            raise admission.forbidden(
                attrs,
                f"use of {certificates.KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed",
            )


class CertificateSigning:
    """plugin/pkg/admission/certificates/signing: a change of status.certificate needs `sign`."""

    name = "CertificateSigning"

    async def validate(
        self,
        ctx: ServerContext,
        attrs: admission.Attributes,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        scope: admission.ValidationScope,
    ) -> None:
        if not _is_csr(attrs) or attrs.operation != "UPDATE" or attrs.subresource != "status" or old is None:
            return
        if (obj.get("status") or {}).get("certificate") == (old.get("status") or {}).get("certificate"):
            return
        await _require(attrs, "sign", _signer(old))


async def _require(attrs: admission.Attributes, verb: str, signer: str) -> None:
    bound = _REQUEST_AUTHORIZER.get()
    if bound is None:
        return  # the server's own writes (no request): nothing to check against
    authorizer, user = bound
    if not await is_authorized_for_signer(authorizer, user, verb, signer):
        raise admission.forbidden(attrs, f'user not permitted to {verb} requests with signerName "{signer}"')


@contextlib.contextmanager
def _bound_authorizer(request: web.Request) -> Iterator[None]:
    """The server's authorizer and this request's user, for the approval and signing checks
    made while serving it (and only then: a kept-alive connection's task serves others too)."""
    from controlplane.apiserver import app as app_module

    token = _REQUEST_AUTHORIZER.set((request.app[app_module.SETTINGS].authorizer, request[app_module.USER]))
    try:
        yield
    finally:
        _REQUEST_AUTHORIZER.reset(token)


async def serve_status(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.StreamResponse:
    """PUT/PATCH of certificatesigningrequests/status: the generic status write, with the
    signing check bound to this request's user."""
    status_ri = dataclasses.replace(ri, subresource="status")
    with _bound_authorizer(request):
        if request.method == "PUT":
            return await rest.update(ctx, info, status_ri, request)
        return await rest.patch(ctx, info, status_ri, request)


async def serve_approval(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.StreamResponse:
    """PUT/PATCH of certificatesigningrequests/approval (`kubectl certificate approve|deny`):
    only status.conditions change; `approve` on the signer is required."""
    with _bound_authorizer(request):
        return await _serve_approval(ctx, info, ri, request)


async def _serve_approval(
    ctx: ServerContext, info: ResourceInfo, ri: RequestInfo, request: web.Request
) -> web.StreamResponse:
    content_type = codec.media_type(request.content_type) or codec.JSON
    if request.method == "PATCH" and content_type not in (
        codec.JSON_PATCH,
        codec.MERGE_PATCH,
        codec.STRATEGIC_MERGE_PATCH,
    ):
        raise errors.UnsupportedMediaType(
            message="the body of the request was in an unknown format - accepted media types include: "
            f"{codec.JSON_PATCH}, {codec.MERGE_PATCH}, {codec.STRATEGIC_MERGE_PATCH}"
        )
    raw = await codec.read_body(request)
    if request.method == "PUT":
        body: Any = codec.decode_body(raw, content_type, api_version=info.api_version, kind=info.kind)
    else:
        body = codec.decode_body(raw, content_type)
    opts = rest.write_options(request)
    for _ in range(rest.MAX_UPDATE_RETRIES):
        current = await ctx.store.get(info, "", ri.name)
        new = _apply_body(request.method, content_type, body, current, info, ri)
        result = await _write_approval(ctx, info, ri, new, current, opts)
        if result is not None:
            return rest.respond_object(ctx, info, result, request)
    raise errors.Conflict.modified(info.plural, info.group, ri.name)


def _apply_body(
    method: str, content_type: str, body: Any, current: dict[str, Any], info: ResourceInfo, ri: RequestInfo
) -> dict[str, Any]:
    if method == "PUT":
        if not isinstance(body, dict):
            raise errors.BadRequest(message="the request body must be a CertificateSigningRequest")
        new = copy.deepcopy(body)
        wanted = (new.get("metadata") or {}).get("resourceVersion")
    else:
        if content_type == codec.JSON_PATCH:
            new = json_patch.apply(current, body)
        elif content_type == codec.MERGE_PATCH:
            new = merge_patch.apply(current, body)
        else:
            if not isinstance(body, dict):
                raise errors.BadRequest(message="strategic merge patch must be a JSON object")
            new = strategic.apply(current, body, None)
        if not isinstance(new, dict):
            raise errors.BadRequest(message="patch produced a non-object result")
        wanted = (new.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != current["metadata"].get("resourceVersion"):
        raise errors.Conflict.modified(info.plural, info.group, ri.name)
    name = (new.get("metadata") or {}).get("name")
    if name and name != ri.name:
        raise errors.BadRequest(
            message=f"the name of the object ({name}) does not match the name on the URL ({ri.name})"
        )
    return new


async def _write_approval(
    ctx: ServerContext,
    info: ResourceInfo,
    ri: RequestInfo,
    new: dict[str, Any],
    old: dict[str, Any],
    opts: rest.WriteOptions,
) -> dict[str, Any] | None:
    """csrApprovalStrategy, admission, ValidateCertificateSigningRequestApprovalUpdate, write.
    None when the object moved underneath (the caller retries)."""
    # Metadata is the stored object's: the approval endpoint changes conditions only.
    new["metadata"] = copy.deepcopy(old["metadata"])
    new["apiVersion"], new["kind"] = old.get("apiVersion", info.api_version), old.get("kind", info.kind)
    certificates.prepare_for_update(new, old, "approval", ctx.now())
    warnings: list[str] = []
    attrs = admission.Attributes(info, "UPDATE", "", ri.name, "approval", opts.dry_run, warnings=warnings)
    await ctx.admission.admit(ctx, attrs, new, old)
    changed_approval = [
        c
        for c in (new.get("status") or {}).get("conditions") or []
        if c.get("type") in ("Approved", "Denied")
    ] != [
        c
        for c in (old.get("status") or {}).get("conditions") or []
        if c.get("type") in ("Approved", "Denied")
    ]
    if changed_approval:
        await _require(attrs, "approve", _signer(old))
    causes = certificates.validate(new, old, allow_approval=True)
    if causes:
        raise errors.Invalid.for_object(info.kind, info.group, ri.name, causes)
    new["metadata"]["managedFields"] = managed_fields.update(
        old,
        new,
        manager=opts.field_manager,
        operation="Update",
        subresource="approval",
        api_version=info.api_version,
        schema=None,
        now=ctx.now(),
    )
    if not new["metadata"]["managedFields"]:
        new["metadata"].pop("managedFields")
    async with ctx.admission.validate(ctx, attrs, new, old) as admitted:
        if new == old:
            return old
        if opts.dry_run:
            return new
        try:
            result = await ctx.store.update(
                info, new, expected_revision=int(old["metadata"]["resourceVersion"])
            )
        except errors.Conflict:
            return None
        await admitted.committed()
    return result
