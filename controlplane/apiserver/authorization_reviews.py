"""authorization.k8s.io/v1 SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectAccessReview and SelfSubjectRulesReview: create-only, answered, never stored
(upstream's pkg/registry/authorization). `kubectl auth can-i` asks the self reviews.

The access reviews run the server's whole authorizer chain on the attributes in the spec and
answer `allowed` with the chain's reason; the rules review lists the RBAC rules that apply to
the caller in a namespace (cluster-wide ones included), as upstream's rule resolvers do.
They are registry entries (discovery, OpenAPI and authorization see them) answered by an
innermost middleware, after authentication and authorization of the review request itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from controlplane.api import errors
from controlplane.api.rbac.rules import PolicyRule
from controlplane.apiserver import app as app_module
from controlplane.apiserver import codec
from controlplane.apiserver.authentication_reviews import decode_body
from controlplane.apiserver.authn import UserInfo
from controlplane.apiserver.authz import Attributes, Authorizer

__all__ = ["GROUP", "RulesSource", "access_attributes", "middleware", "rules_status"]

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
KINDS = {
    "subjectaccessreviews": "SubjectAccessReview",
    "localsubjectaccessreviews": "LocalSubjectAccessReview",
    "selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "selfsubjectrulesreviews": "SelfSubjectRulesReview",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RulesSource(Protocol):
    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[PolicyRule], list[str]]: ...


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _invalid(kind: str, causes: list[errors.Cause]) -> errors.Invalid:
    return errors.Invalid.for_object(kind, GROUP, "", causes)


def _check_attributes(kind: str, spec: dict[str, Any]) -> None:
    """ValidateSubjectAccessReviewSpec's attribute checks (and the user check for SAR)."""
    causes: list[errors.Cause] = []
    has_resource = isinstance(spec.get("resourceAttributes"), dict)
    has_non_resource = isinstance(spec.get("nonResourceAttributes"), dict)
    if has_resource and has_non_resource:
        causes.append(
            errors.Cause(
                errors.FIELD_VALUE_INVALID,
                'Invalid value: "object": cannot be specified in combination with resourceAttributes',
                "spec.nonResourceAttributes",
            )
        )
    if not has_resource and not has_non_resource:
        causes.append(
            errors.Cause(
                errors.FIELD_VALUE_INVALID,
                'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified',
                "spec.resourceAttributes",
            )
        )
    if (
        kind in ("SubjectAccessReview", "LocalSubjectAccessReview")
        and not spec.get("user")
        and not spec.get("groups")
    ):
        causes.append(
            errors.Cause(
                errors.FIELD_VALUE_INVALID,
                'Invalid value: "": at least one of user or group must be specified',
                "spec.user",
            )
        )
    if causes:
        raise _invalid(kind, causes)


def _spec_user(spec: dict[str, Any]) -> UserInfo:
    extra = _dict(spec.get("extra"))
    return UserInfo(
        name=str(spec.get("user") or ""),
        uid=str(spec.get("uid") or ""),
        groups=tuple(str(g) for g in spec.get("groups") or ()),
        extra={str(k): tuple(str(x) for x in (v or ())) for k, v in extra.items()},
    )


def access_attributes(user: UserInfo, spec: Mapping[str, Any]) -> Attributes:
    """authorizationutil.ResourceAttributesFrom / NonResourceAttributesFrom."""
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        return Attributes(
            user=user,
            verb=str(resource.get("verb") or ""),
            api_group=str(resource.get("group") or ""),
            api_version=str(resource.get("version") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            namespace=str(resource.get("namespace") or ""),
            name=str(resource.get("name") or ""),
            resource_request=True,
        )
    non_resource = _dict(spec.get("nonResourceAttributes"))
    return Attributes(
        user=user,
        verb=str(non_resource.get("verb") or ""),
        path=str(non_resource.get("path") or ""),
        resource_request=False,
    )


def _respond(body: dict[str, Any], status: dict[str, Any]) -> web.Response:
    meta = _dict(body.get("metadata"))
    meta = dict(meta)
    meta.setdefault("creationTimestamp", None)
    out = {"kind": body["kind"], "apiVersion": API_VERSION, "metadata": meta, "spec": body.get("spec") or {}}
    out["status"] = status
    return codec.json_response(out, status=201)


async def _access_review(
    request: web.Request, kind: str, namespace: str, authorizer: Authorizer
) -> web.Response:
    body = await decode_body(request, kind, API_VERSION)
    spec = _dict(body.get("spec"))
    _check_attributes(kind, spec)
    user = request[app_module.USER] if kind == "SelfSubjectAccessReview" else _spec_user(spec)
    if kind == "LocalSubjectAccessReview":
        body_namespace = str(_dict(body.get("metadata")).get("namespace") or namespace)
        resource = spec.get("resourceAttributes")
        if body_namespace != namespace:
            raise errors.BadRequest(
                message=f"namespace of the request ({namespace}) does not match the object ({body_namespace})"
            )
        if not isinstance(resource, dict) or (resource.get("namespace") or "") != namespace:
            raise _invalid(
                kind,
                [
                    errors.Cause(
                        errors.FIELD_VALUE_INVALID,
                        f'Invalid value: "{(_dict(resource)).get("namespace") or ""}": must match metadata.namespace',
                        "spec.resourceAttributes.namespace",
                    )
                ],
            )
    decision = await authorizer.authorize(access_attributes(user, spec))
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return _respond(body, status)


def rules_status(rules: list[PolicyRule], resolution_errors: list[str]) -> dict[str, Any]:
    """SubjectRulesReviewStatus from RBAC rules: a rule with resources becomes a resource rule,
    one with URLs a non-resource rule (a rule may give both), as the RBAC authorizer's RulesFor."""
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    for r in rules:
        if r.resources:
            entry: dict[str, Any] = {"verbs": list(r.verbs)}
            if r.api_groups:
                entry["apiGroups"] = list(r.api_groups)
            entry["resources"] = list(r.resources)
            if r.resource_names:
                entry["resourceNames"] = list(r.resource_names)
            resource_rules.append(entry)
        if r.non_resource_urls:
            non_resource_rules.append({"verbs": list(r.verbs), "nonResourceURLs": list(r.non_resource_urls)})
    status: dict[str, Any] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }
    if resolution_errors:
        status["evaluationError"] = ", ".join(resolution_errors)
    return status


async def _rules_review(request: web.Request, rules: RulesSource) -> web.Response:
    kind = "SelfSubjectRulesReview"
    body = await decode_body(request, kind, API_VERSION)
    spec = _dict(body.get("spec"))
    namespace = str(spec.get("namespace") or "")
    found, resolution_errors = rules.rules_for(request[app_module.USER], namespace)
    return _respond(body, rules_status(found, resolution_errors))


def middleware(authorizer: Authorizer, rules: RulesSource) -> Any:
    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        ri = request.get(app_module.REQUEST_INFO)
        if ri is None or not ri.is_resource_request or ri.group != GROUP or ri.version != "v1":
            return await handler(request)
        kind = KINDS.get(ri.resource)
        if kind is None:
            return await handler(request)
        namespaced = ri.resource == "localsubjectaccessreviews"
        if ri.subresource or bool(ri.namespace) != namespaced:
            raise errors.NotFound(message="the server could not find the requested resource")
        if request.method != "POST" or ri.name:
            raise errors.MethodNotSupported(
                message="the server does not allow this method on the requested resource",
                kind=ri.resource,
                group=GROUP,
            )
        if kind == "SelfSubjectRulesReview":
            return await _rules_review(request, rules)
        return await _access_review(request, kind, ri.namespace, authorizer)

    return handle
