"""User impersonation (`kubectl --as`, `--as-group`, `--as-uid`), as upstream's
k8s.io/apiserver/pkg/endpoints/filters/impersonation.go.

The authenticated user must be allowed the `impersonate` verb on each thing it asks to act as:
`users` (or `serviceaccounts` in the account's namespace for `system:serviceaccount:<ns>:<n>`),
`groups`, `userextras/<key>` and `uids` (the last two in `authentication.k8s.io`). The first
denial answers 403 with upstream's message; once all are allowed the request continues as the
impersonated user, who is in `system:authenticated` (or `system:unauthenticated` for
`system:anonymous`) whatever groups were asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDictProxy

from controlplane.api import errors
from controlplane.apiserver import admission, authz
from controlplane.apiserver.authn import ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS_NAME, UserInfo
from controlplane.apiserver.serviceaccount_tokens import make_username, service_account_groups, split_username

__all__ = [
    "IMPERSONATE_EXTRA_PREFIX",
    "IMPERSONATE_GROUP",
    "IMPERSONATE_UID",
    "IMPERSONATE_USER",
    "ImpersonationRequest",
    "build_requests",
    "middleware",
]

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA_PREFIX = "Impersonate-Extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ImpersonationRequest:
    """One thing to act as; `kind` is ServiceAccount, User, Group, UserExtra or UID."""

    kind: str
    name: str
    namespace: str = ""
    extra_key: str = ""


def build_requests(headers: CIMultiDictProxy[str]) -> list[ImpersonationRequest]:
    """The impersonation requests in upstream's order; ValueError for groups, extras or a UID
    without a user."""
    out: list[ImpersonationRequest] = []
    username = headers.get(IMPERSONATE_USER, "")
    if username:
        sa = split_username(username)
        if sa is not None:
            out.append(ImpersonationRequest("ServiceAccount", sa[1], namespace=sa[0]))
        else:
            out.append(ImpersonationRequest("User", username))
    groups = headers.getall(IMPERSONATE_GROUP, [])
    out.extend(ImpersonationRequest("Group", group) for group in groups)
    has_extra = False
    prefix = IMPERSONATE_EXTRA_PREFIX.lower()
    for name, value in headers.items():
        if name.lower().startswith(prefix):
            has_extra = True
            # Header names cannot carry every key character: clients percent-encode them.
            key = unquote(name[len(prefix) :].lower())
            out.append(ImpersonationRequest("UserExtra", value, extra_key=key))
    uid = headers.get(IMPERSONATE_UID, "")
    if uid:
        out.append(ImpersonationRequest("UID", uid))
    if (groups or has_extra or uid) and not username:
        raise ValueError(f"requested {_describe(out)} without impersonating a user")
    return out


def _describe(requests: list[ImpersonationRequest]) -> str:
    return "[" + " ".join(f"{{{r.kind} {r.namespace} {r.name}}}" for r in requests) + "]"


def _attributes(requestor: UserInfo, req: ImpersonationRequest) -> authz.Attributes:
    resource, group, sub = {
        "ServiceAccount": ("serviceaccounts", "", ""),
        "User": ("users", "", ""),
        "Group": ("groups", "", ""),
        "UserExtra": ("userextras", AUTHENTICATION_GROUP, req.extra_key),
        "UID": ("uids", AUTHENTICATION_GROUP, ""),
    }[req.kind]
    return authz.Attributes(
        user=requestor,
        verb="impersonate",
        api_group=group,
        api_version="v1",
        resource=resource,
        subresource=sub,
        namespace=req.namespace,
        name=req.name,
        resource_request=True,
    )


async def impersonate(
    authorizer: authz.Authorizer,
    requestor: UserInfo,
    requests: list[ImpersonationRequest],
    groups_given: bool,
) -> UserInfo:
    """Authorize each request (Forbidden on the first denial) and build the user acted as."""
    username = ""
    uid = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for req in requests:
        if req.kind == "ServiceAccount":
            username = make_username(req.namespace, req.name)
            if not groups_given:
                # A service account's groups are a fixed function of its namespace.
                groups = list(service_account_groups(req.namespace))
        elif req.kind == "User":
            username = req.name
        elif req.kind == "Group":
            groups.append(req.name)
        elif req.kind == "UserExtra":
            extra.setdefault(req.extra_key, []).append(req.name)
        else:
            uid = req.name
        attrs = _attributes(requestor, req)
        decision = await authorizer.authorize(attrs)
        if not decision.allowed:
            raise authz.forbidden_error(attrs, decision.reason)
    marker = ALL_UNAUTHENTICATED if username == ANONYMOUS_NAME else ALL_AUTHENTICATED
    if marker not in groups:
        groups.append(marker)
    return UserInfo(
        name=username, uid=uid, groups=tuple(groups), extra={k: tuple(v) for k, v in extra.items()}
    )


def middleware(authorizer: authz.Authorizer, *, user_key: web.RequestKey[UserInfo]) -> Any:
    """After authentication (and audit, which records the impersonated user), before authorization."""

    @web.middleware
    async def impersonation(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            requests = build_requests(request.headers)
        except ValueError as exc:
            # Upstream answers this client error with an InternalError too.
            raise errors.InternalError(message=f"Internal error occurred: {exc}") from exc
        if not requests:
            return await handler(request)
        requestor = request.get(user_key)
        if requestor is None:
            raise errors.InternalError(message="Internal error occurred: no user found for request")
        user = await impersonate(
            authorizer, requestor, requests, groups_given=bool(request.headers.getall(IMPERSONATE_GROUP, []))
        )
        request[user_key] = user
        admission.REQUEST_USER.set(
            {
                "username": user.name,
                "uid": user.uid,
                "groups": list(user.groups),
                "extra": {k: list(v) for k, v in user.extra.items()},
            }
        )
        return await handler(request)

    return impersonation
